"""Cheaper dropout on CPU: what a CPU training step spends outside its matrix products.

On CPU, ``bernoulli_`` draws a dropout mask at about 8 ns per element, and a bf16 step of
``minilm-l6`` spent about a fifth of its time there. Here a mask is cut from 64-bit random
words, four 16-bit slices each: a value is kept where its slice is at least p · 65,536
(as int16: p · 65,536 − 32,768), so the dropout probability is p to 1/65,536 (0.1 →
0.100006) and the kept values are scaled by 65,536 / (65,536 − p · 65,536), keeping every
expectation. The same distribution as ``torch.nn.Dropout``; another random stream, drawn
from torch's global generator, so a run stays repeatable from its seed.

``for_cpu_training`` puts it in a model's every dropout module, and in its attention: the
attention probabilities' dropout happens inside the attention function, which on CPU is
PyTorch's ``scaled_dot_product_attention``; transformers' eager attention (the same
products) with this dropout is registered as the ``noisebench`` attention. Measured in
``benchmarks/bench_levers.py``: 1.37x the step with ``bernoulli_`` masks and the default
attention (docs/performance.md).
"""

from __future__ import annotations

import torch

ATTENTION = "noisebench"
SLICES = 65536  # values of a 16-bit slice


def keep_mask(shape: torch.Size, p: float) -> tuple[torch.Tensor, float]:
    """A boolean mask of ``shape`` keeping each value with probability 1 − p (p to
    1/65,536), and the scale that keeps the expectation.

    >>> torch.manual_seed(0) is not None
    True
    >>> mask, scale = keep_mask(torch.Size([1000, 1000]), 0.1)
    >>> round(1 - mask.float().mean().item(), 3), round(scale, 6)
    (0.1, 1.111119)
    """
    dropped = round(p * SLICES)
    count = 1
    for size in shape:
        count *= size
    words = torch.randint(-(2**63), 2**63 - 1, ((count + 3) // 4,), dtype=torch.int64)
    keep = words.view(torch.int16)[:count].view(shape) >= dropped - SLICES // 2
    return keep, SLICES / (SLICES - dropped)


class FastDropout(torch.nn.Module):
    """``torch.nn.Dropout`` with ``keep_mask``'s masks."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep, scale = keep_mask(x.shape, self.p)
        return x * keep.to(x.dtype) * scale


def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' eager attention, softmax(Q·Kᵀ·scaling + mask)·V, its dropout on the
    probabilities with ``keep_mask``."""
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask  # eager_mask's: 0 or the dtype's minimum
    weights = torch.nn.functional.softmax(weights, dim=-1)
    if module.training and dropout > 0:
        keep, scale = keep_mask(weights.shape, dropout)
        weights = weights * keep.to(weights.dtype) * scale
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def register() -> None:
    """The ``noisebench`` attention, with the eager (additive) mask, in transformers'
    registries (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(ATTENTION, attention)
    AttentionMaskInterface.register(ATTENTION, eager_mask)


def for_cpu_training(model: torch.nn.Module) -> str | None:
    """``model`` with ``FastDropout`` in place of every ``torch.nn.Dropout`` and, where
    its attention is PyTorch's ``sdpa`` or the eager one, the ``noisebench`` attention.
    Returns the attention it had (``restore`` puts it back before the model is saved), or
    None where it was left alone."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is torch.nn.Dropout:
                setattr(module, name, FastDropout(child.p).train(child.training))
    config = getattr(model, "config", None)
    had = getattr(config, "_attn_implementation", None)
    if had not in ("sdpa", "eager"):
        return None
    register()
    config._attn_implementation = ATTENTION
    return had


def restore(model: torch.nn.Module, attention: str | None) -> None:
    """The attention ``for_cpu_training`` replaced, back (the saved config names it)."""
    if attention is not None:
        model.config._attn_implementation = attention
