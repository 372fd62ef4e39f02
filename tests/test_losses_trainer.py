"""A noisebench loss inside a plain Hugging Face Trainer, as the README shows."""

import pytest
import torch
from datasets import Dataset
from transformers import BertConfig, BertForTokenClassification, Trainer, TrainingArguments

from noisebench.training.losses import build_loss, trainer_loss_func

NUM_LABELS = 5
# 4 sentences padded to 8 ids; very different numbers of labelled words per sentence,
# so averaging per micro-batch and averaging per token give different updates.
INPUT_IDS = [
    [1, 5, 6, 7, 8, 9, 10, 2],
    [1, 11, 2, 0, 0, 0, 0, 0],
    [1, 12, 13, 14, 2, 0, 0, 0],
    [1, 15, 16, 17, 18, 19, 2, 0],
]
LABELS = [
    [-100, 1, 2, 0, 3, 4, 0, -100],
    [-100, 4, -100, -100, -100, -100, -100, -100],
    [-100, 0, 1, -100, -100, -100, -100, -100],
    [-100, 3, 3, 2, 1, 0, -100, -100],
]


def tiny_bert() -> BertForTokenClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=24,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        num_labels=NUM_LABELS,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertForTokenClassification(config)


def dataset() -> Dataset:
    mask = [[int(i != 0) for i in row] for row in INPUT_IDS]
    return Dataset.from_dict({"input_ids": INPUT_IDS, "attention_mask": mask, "labels": LABELS})


def one_step(tmp_path, loss_func, batch_size: int, accumulation: int):
    model = tiny_bert()
    args = TrainingArguments(
        output_dir=str(tmp_path / f"out-{batch_size}-{accumulation}"),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        learning_rate=0.5,
        optim="sgd",
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,
        use_cpu=True,
        report_to=[],
        seed=0,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset(), compute_loss_func=loss_func)
    result = trainer.train()
    return result.training_loss, {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.slow
def test_one_training_step_gives_finite_loss_and_gradients():
    model = tiny_bert()
    batch = dataset()[:]
    outputs = model(
        input_ids=torch.tensor(batch["input_ids"]),
        attention_mask=torch.tensor(batch["attention_mask"]),
    )
    labels = torch.tensor(batch["labels"])
    loss = trainer_loss_func(build_loss("sgce", q=0.7, s=0.1))(outputs, labels)
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.all(torch.isfinite(g)) for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "params"), [("sgce", {"q": 0.7, "s": 0.1}), ("ce", {})])
def test_gradient_accumulation_matches_one_big_batch(tmp_path, name, params):
    loss_func = trainer_loss_func(build_loss(name, **params))
    _, big_batch = one_step(tmp_path, loss_func, batch_size=4, accumulation=1)
    _, accumulated = one_step(tmp_path, loss_func, batch_size=2, accumulation=2)
    before = tiny_bert().state_dict()
    moved = [k for k in big_batch if not torch.equal(big_batch[k], before[k])]
    assert moved, "the step changed no weight"
    for key in big_batch:
        torch.testing.assert_close(accumulated[key], big_batch[key], rtol=1e-5, atol=1e-6)

    # the same loss averaged per micro-batch (ignoring num_items_in_batch) does differ
    loss = build_loss(name, **params)

    def per_micro_batch(outputs, labels, num_items_in_batch=None):
        return loss(outputs.logits, labels)

    _, naive = one_step(tmp_path, per_micro_batch, batch_size=2, accumulation=2)
    assert not all(torch.allclose(naive[k], big_batch[k], atol=1e-6) for k in moved)
