"""Dropout masks from random words (cpu_speed): the same dropout, and the same attention."""

from __future__ import annotations

import pytest
import torch

from noisebench.training import cpu_speed


def test_masks_drop_p_and_keep_the_expectation():
    torch.manual_seed(0)
    keep, scale = cpu_speed.keep_mask(torch.Size([2000, 1000]), 0.1)
    dropped = 1 - keep.float().mean().item()
    # p is 6,554 / 65,536 = 0.100006; 2e6 draws: standard error 0.0002
    assert dropped == pytest.approx(6554 / 65536, abs=0.001)
    assert scale == 65536 / (65536 - 6554)
    layer = cpu_speed.FastDropout(0.1).train()
    ones = torch.ones(1000, 1000)
    out = layer(ones)
    assert out.unique().tolist() == [0.0, pytest.approx(scale)]
    assert out.mean().item() == pytest.approx(1.0, abs=0.005)
    assert torch.equal(layer.eval()(ones), ones)  # evaluation: nothing dropped
    # repeatable from the seed, and another mask each call
    torch.manual_seed(3)
    first, again = layer.train()(ones), layer(ones)
    torch.manual_seed(3)
    assert torch.equal(layer(ones), first) and not torch.equal(first, again)
    assert torch.equal(cpu_speed.FastDropout(0.0).train()(ones), ones)


def bert(tiny_model):
    from transformers import BertForTokenClassification

    torch.manual_seed(0)
    return BertForTokenClassification.from_pretrained(tiny_model, num_labels=3)


def test_the_attention_is_transformers_own_in_evaluation(tiny_model):
    """Evaluation: the same logits as the eager attention, and as the default (sdpa) to
    float error, padding masked; training: its probabilities dropped at p."""
    model = bert(tiny_model).eval()
    ids = torch.tensor([[2, 5, 6, 7, 8, 3], [2, 9, 10, 3, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        default = model(input_ids=ids, attention_mask=mask).logits
        model.config._attn_implementation = "eager"
        eager = model(input_ids=ids, attention_mask=mask).logits
        had = cpu_speed.for_cpu_training(model)
        assert had == "eager" and model.config._attn_implementation == cpu_speed.ATTENTION
        ours = model(input_ids=ids, attention_mask=mask).logits
        alone = model(input_ids=ids[1:, :4], attention_mask=mask[1:, :4]).logits
    assert torch.equal(ours, eager)
    torch.testing.assert_close(ours, default, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours[1, :4], alone[0], atol=1e-5, rtol=1e-5)  # padding unseen
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert not dropouts and any(isinstance(m, cpu_speed.FastDropout) for m in model.modules())
    cpu_speed.restore(model, had)
    assert model.config._attn_implementation == "eager"


def test_the_attention_drops_its_probabilities_at_p():
    class Module(torch.nn.Module):
        pass

    module = Module().train()
    torch.manual_seed(0)
    query = key = torch.randn(4, 2, 30, 8)
    value = torch.eye(30).expand(4, 2, 30, 30)  # the output is the probabilities themselves
    out, weights = cpu_speed.attention(module, query, key, value, None, dropout=0.25)
    probabilities = out.transpose(1, 2)
    dropped = (probabilities == 0).float().mean().item()
    assert dropped == pytest.approx(0.25, abs=0.02)
    kept = probabilities[probabilities > 0]
    full = torch.softmax(query @ key.transpose(2, 3) * 8**-0.5, dim=-1)
    assert torch.allclose(kept, (full / 0.75)[probabilities > 0], rtol=1e-4)
    assert torch.equal(weights, probabilities)
