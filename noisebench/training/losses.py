"""Noise-robust classification losses for token classifiers, in pure torch.

    from noisebench.training.losses import build_loss
    loss = build_loss("sgce", q=0.7, s=0.1)
    value = loss(logits, labels)          # logits (B, T, C) or (N, C); labels (B, T) or (N,)

Every loss works from ``log_softmax`` in float32 (``p^q = exp(q log p)``), so no finite
logit gives NaN or inf, whatever the input dtype (float32, float16, bfloat16); the loss
is returned in **float32** and the gradient in the logits' dtype. ``ignore_index``
targets (default -100) contribute nothing; ``reduction="mean"`` averages over the
non-ignored targets (an all-ignored batch gives 0, not NaN), ``"sum"`` adds them up, and
``"none"`` returns one value per target (0 where ignored), shaped like ``targets``.

One label-smoothing convention for every loss: the target class gets weight ``1 - s``,
every other class ``s / (C - 1)``. With ``w`` those weights, ``p = softmax(logits)``:

=========== ===================================================== =======================
name        per-token loss                                         parameters
=========== ===================================================== =======================
``ce``      ``-sum_c w_c log p_c``                                 s
``mae``     ``sum_c w_c (1 - p_c)``; ``1 - p_y`` at s = 0          s
``gce``     ``(1 - p_y^q) / q``; CE at q = 0                       q (default 0.7)
``sgce``    ``sum_c w_c (1 - p_c^q) / q``; smoothed CE at q = 0    q (0.7), s (0.1)
``sce``     ``alpha CE + beta RCE``                                alpha (0.1), beta (1), s
``nce+rce`` ``alpha NCE + beta RCE``                               alpha (1), beta (1), s
=========== ===================================================== =======================

``RCE = -sum_c p_c log(max(w_c, 1e-4))`` (reverse cross-entropy, Wang et al. 2019) and
``NCE = (-sum_c w_c log p_c) / (-sum_c log p_c)`` (normalised CE, Ma et al. 2020).

Soft targets: ``loss(logits, targets, soft)`` with ``soft (..., C)``, one target
distribution per token (``targets.py``: span-aware smoothing), replaces the one-hot of
``targets`` in every formula above: ``w = (1 - s - o) soft + o`` with ``o = s / (C - 1)``
(the same convention: a one-hot ``soft`` gives exactly the hard-target loss), and ``p_y``
terms become ``sum_c w_c ...``. ``targets`` still says which tokens count (ignore_index).
This path runs through autograd (the closed forms above are for hard targets).

A single logit per token (``C = 1``) is the binary case: it is read as the logit of
class 1 against a fixed 0 for class 0, so ``ce`` is exactly binary cross-entropy with
logits, and every other loss works on the same two probabilities.

GCE and SGCE run through ``GeneralizedCrossEntropy``, an autograd function with the
closed-form gradient ``dL/dz_j = p_j sum_c w_c p_c^q - w_j p_j^q`` (for GCE
``p_y^q (p_j - [j = y])``: CE's gradient weighted by ``p_y^q``), so they cost about one
cross-entropy.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from noisebench.errors import one_line

IGNORE_INDEX = -100
REDUCTIONS = ("mean", "sum", "none")
RCE_CLAMP = 1e-4
PRECISE_Q = 0.05  # below this q, SGCE sums expm1 per class to avoid cancellation
# Devices on which GCE and SGCE run as compiled kernels (``FusedGeneralizedCrossEntropy``):
# on a GPU the closed form's many small kernels cost more than their arithmetic (on CPU
# the compiled kernels measured slower). NOISEBENCH_FUSED_LOSSES=0 turns them off.
FUSED_DEVICES = set() if os.environ.get("NOISEBENCH_FUSED_LOSSES") == "0" else {"cuda"}


class TokenLoss(nn.Module):
    """Shared shape handling, smoothing weights and reduction of every loss here."""

    takes_q = False

    def __init__(
        self, s: float = 0.0, ignore_index: int = IGNORE_INDEX, reduction: str = "mean"
    ) -> None:
        super().__init__()
        if not 0.0 <= s < 1.0:
            raise ValueError(f"s (label smoothing) must be in [0, 1), got {s}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.s = float(s)
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, logits: Tensor, targets: Tensor, soft: Tensor | None = None) -> Tensor:
        flat_logits, flat_targets, valid = self._flatten(logits, targets)
        if soft is None:
            per_token = self.per_token(flat_logits, flat_targets, valid)  # (N,), 0 if ignored
        else:
            per_token = self.per_token_soft(flat_logits, self._soft_weights(soft, logits), valid)
        return self._reduce(per_token, valid, targets.shape)

    def per_token(self, logits: Tensor, targets: Tensor, valid: Tensor) -> Tensor:
        """``logits (N, C)`` float32, ``targets (N,)`` with ignored ones set to 0."""
        raise NotImplementedError

    def per_token_soft(self, logits: Tensor, weights: Tensor, valid: Tensor) -> Tensor:
        """``logits (N, C)`` float32, ``weights (N, C)``: each token's smoothed target."""
        raise NotImplementedError

    def _soft_weights(self, soft: Tensor, logits: Tensor) -> Tensor:
        """``w = (1 - s - o) soft + o`` as ``(N, C)`` float32."""
        classes = max(logits.shape[-1], 2)
        if soft.shape != (*logits.shape[:-1], classes):
            raise ValueError(
                f"soft targets must be shaped (..., {classes}) like the logits, got"
                f" {tuple(soft.shape)} for logits {tuple(logits.shape)}"
            )
        target_extra, other = self.smoothing_weights(classes)
        weights = soft.reshape(-1, classes).float()
        return weights * target_extra + other if self.s else weights

    def extra_repr(self) -> str:
        return f"s={self.s}, ignore_index={self.ignore_index}, reduction={self.reduction!r}"

    def _flatten(self, logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        check_inputs(logits, targets)
        logits = flat_logits(logits)  # (N, C)
        targets = targets.reshape(-1)  # (N,)
        valid = targets != self.ignore_index
        safe_targets = torch.where(valid, targets, 0)
        if safe_targets.device.type == "cpu" and safe_targets.numel():
            low, high = torch.aminmax(safe_targets)
            low, high = int(low), int(high)
            if low < 0 or high >= logits.shape[1]:
                bad = low if low < 0 else high
                raise ValueError(f"target {bad} is outside [0, {logits.shape[1]}) classes")
        return logits, safe_targets, valid

    def _reduce(self, per_token: Tensor, valid: Tensor, shape: torch.Size) -> Tensor:
        if self.reduction == "none":
            return per_token.reshape(shape)
        total = per_token.sum()
        if self.reduction == "sum":
            return total
        return total / valid.sum().clamp_min(1)

    def smoothing_weights(self, num_classes: int) -> tuple[float, float]:
        return smoothing_weights(self.s, num_classes)


def smoothing_weights(s: float, num_classes: int) -> tuple[float, float]:
    """``(extra weight of the target class, weight of every class)``: ``w_c =
    other + target_extra [c = y]`` with ``other = s / (C - 1)``."""
    other = s / (num_classes - 1)
    return 1.0 - s - other, other


def flat_logits(logits: Tensor) -> Tensor:
    """``(..., C)`` -> ``(N, C)`` float32; a single logit (binary) becomes the logit of
    class 1 against a fixed 0 for class 0."""
    logits = logits.reshape(-1, logits.shape[-1]).float()
    if logits.shape[1] == 1:
        logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
    return logits


def check_inputs(logits: Tensor, targets: Tensor) -> None:
    """Shapes ``(..., C)`` and ``(...)``, integer targets, C >= 1 (1 = binary)."""
    if logits.dim() < 1 or logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits (..., C) and targets (...) must agree: got {tuple(logits.shape)}"
            f" and {tuple(targets.shape)}"
        )
    if targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise ValueError(f"targets must hold integer class ids, got {targets.dtype}")
    if logits.shape[-1] == 0:
        raise ValueError("logits need C >= 2 classes (or C = 1 for the binary case)")


class CrossEntropy(TokenLoss):
    """Cross-entropy with label smoothing ``s``: ``-sum_c w_c log p_c``.

    At s = 0 this is ``F.cross_entropy`` itself.

    >>> logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    >>> targets = torch.tensor([0, 2])
    >>> round(CrossEntropy()(logits, targets).item(), 6)
    0.813933
    >>> round(CrossEntropy(s=0.1)(logits, targets).item(), 6)
    0.913933
    """

    def forward(self, logits: Tensor, targets: Tensor, soft: Tensor | None = None) -> Tensor:
        if soft is None and self.s == 0.0 and self.reduction != "none":
            return plain_cross_entropy(logits, targets, self.ignore_index, self.reduction)
        return super().forward(logits, targets, soft)

    def per_token(self, logits: Tensor, targets: Tensor, valid: Tensor) -> Tensor:
        return smoothed_cross_entropy(logits, targets, valid, self.s)

    def per_token_soft(self, logits: Tensor, weights: Tensor, valid: Tensor) -> Tensor:
        return soft_cross_entropy(logits, weights) * valid


def plain_cross_entropy(
    logits: Tensor, targets: Tensor, ignore_index: int, reduction: str
) -> Tensor:
    """``F.cross_entropy`` summed, or averaged over non-ignored targets (0 if none):
    its fused kernels are the fastest path, and its own mean gives NaN on an all-ignored
    batch."""
    check_inputs(logits, targets)
    total = F.cross_entropy(
        flat_logits(logits),  # binary: BCE with logits, via the two-class softmax
        targets.reshape(-1),
        ignore_index=ignore_index,
        reduction="sum",
    )
    if reduction == "sum":
        return total
    return total / (targets != ignore_index).sum().clamp_min(1)


def smoothed_cross_entropy(logits: Tensor, targets: Tensor, valid: Tensor, s: float) -> Tensor:
    """Per-token ``-sum_c w_c log p_c``, ``(N,)``, zero where ``valid`` is false."""
    if s == 0.0:
        return F.cross_entropy(logits, targets, reduction="none") * valid
    target_extra, other = smoothing_weights(s, logits.shape[1])
    log_p = torch.log_softmax(logits, dim=1)  # (N, C)
    log_p_y = log_p.gather(1, targets[:, None]).squeeze(1)
    return -(target_extra * log_p_y + other * log_p.sum(1)) * valid


def soft_cross_entropy(logits: Tensor, weights: Tensor) -> Tensor:
    """Per-token ``-sum_c w_c log p_c``, ``(N,)``."""
    return -(weights * torch.log_softmax(logits, dim=1)).sum(1)


class GeneralizedCrossEntropy(torch.autograd.Function):
    """Per-token ``sum_c w_c (1 - p_c^q) / q`` with its closed-form gradient.

    ``forward(logits (N, C) float32, targets (N,), valid (N,) bool, q > 0, target_extra,
    other)`` returns ``(N,)``, zero where ``valid`` is false; ``w_c = other +
    target_extra [c = y]``.

    On CPU a fresh ``(N, C)`` buffer and each pass over it cost more than the arithmetic,
    so the forward pass keeps ``exp(z - max z)`` unnormalised in the one buffer it
    allocates and folds the softmax normaliser into per-token factors of the backward
    pass: GCE makes 2 ``(N, C)`` buffers in forward and backward together, SGCE 3,
    ``F.cross_entropy`` 3.
    """

    @staticmethod
    def forward(ctx, logits, targets, valid, q, target_extra, other):
        index = targets[:, None]  # (N, 1)
        exp_z = logits - logits.amax(dim=1, keepdim=True)  # (N, C): z - max z for now
        shifted_y = exp_z.gather(1, index)  # (N, 1)
        log_p = None
        if other > 0.0 and q < PRECISE_Q:
            log_p = exp_z - torch.logsumexp(exp_z, dim=1, keepdim=True)
        exp_qz = (exp_z * q).exp_() if other > 0.0 else None  # (N, C): p^q * normaliser^q
        normaliser = exp_z.exp_().sum(dim=1, keepdim=True)  # (N, 1); exp_z is p * normaliser
        log_normaliser = normaliser.log_()
        log_p_y = shifted_y - log_normaliser  # (N, 1)
        # 1 - p^q = -expm1(q log p): exact for small q, where 1 - exp(.) would cancel.
        loss = torch.expm1(q * log_p_y).mul_(-target_extra / q)  # (N, 1)
        sum_p_q = None
        if exp_qz is not None:
            sum_p_q = exp_qz.sum(dim=1, keepdim=True).mul_((-q * log_normaliser).exp_())
            if log_p is not None:
                loss -= torch.expm1(q * log_p).sum(dim=1, keepdim=True) * (other / q)
            else:
                loss += (logits.shape[1] - sum_p_q) * (other / q)
        ctx.save_for_backward(exp_z, log_normaliser, log_p_y, index, valid, exp_qz, sum_p_q)
        ctx.constants = (q, target_extra, other)
        return loss.squeeze(1) * valid

    @staticmethod
    def backward(ctx, grad_output):
        exp_z, log_normaliser, log_p_y, index, valid, exp_qz, sum_p_q = ctx.saved_tensors
        q, target_extra, other = ctx.constants
        scale = (grad_output * valid)[:, None]  # (N, 1)
        target_part = (q * log_p_y).exp_().mul_(target_extra * scale)  # (N, 1): w_y p_y^q
        to_p = (-log_normaliser).exp_()  # (N, 1): exp_z * to_p = p
        if exp_qz is None:  # GCE: p_y^q (p - onehot)
            grad = exp_z * (target_part * to_p)
        else:  # p_j sum_c w_c p_c^q - w_j p_j^q
            other_part = other * scale  # (N, 1)
            grad = exp_z * ((target_part + other_part * sum_p_q) * to_p)
            to_p_q = (-q * log_normaliser).exp_()  # (N, 1): exp_qz * to_p_q = p^q
            grad.addcmul_(exp_qz, other_part * to_p_q, value=-1.0)
        grad.scatter_add_(1, index, -target_part)
        return grad, None, None, None, None, None


def _fused_forward(logits, targets, valid, q, target_extra, other):
    """Per-token ``sum_c w_c (1 - p_c^q) / q`` and ``log p``, for ``torch.compile``.
    ``q``, ``target_extra``, ``other``: 0-d tensors, so a new q (the CE start's ramp)
    reuses the compiled kernel. ``-expm1(q log p) / q`` is exact for every q > 0."""
    log_p = torch.log_softmax(logits, dim=1)  # (N, C)
    log_p_y = log_p.gather(1, targets[:, None])  # (N, 1)
    loss = _expm1(q * log_p_y) * (-target_extra / q)
    loss = loss - _expm1(q * log_p).sum(dim=1, keepdim=True) * (other / q)
    return loss.squeeze(1) * valid, log_p


def _expm1(x):
    """``exp(x) - 1`` to float32 precision near 0 as well: compiled CPU kernels compute
    ``torch.expm1`` as ``exp(x) - 1`` (relative error 2e-4 at x = -1e-4, measured), so
    below |x| = 0.1 a Taylor polynomial (relative error under 2e-8 there) takes over."""
    series = x * (1 + x / 2 * (1 + x / 3 * (1 + x / 4 * (1 + x / 5 * (1 + x / 6)))))
    return torch.where(x.abs() < 0.1, series, torch.exp(x) - 1)


def _fused_backward(grad_output, log_p, targets, valid, q, target_extra, other):
    """``dL/dz_j = p_j sum_c w_c p_c^q - w_j p_j^q``, scaled by the incoming gradient."""
    scale = (grad_output * valid)[:, None]  # (N, 1)
    p_q = torch.exp(q * log_p)  # (N, C)
    is_target = torch.arange(log_p.shape[1], device=log_p.device) == targets[:, None]
    p_q_y = (p_q * is_target).sum(dim=1, keepdim=True)  # (N, 1)
    weighted = target_extra * p_q_y + other * p_q.sum(dim=1, keepdim=True)
    grad = log_p.exp() * weighted - other * p_q - is_target * (target_extra * p_q_y)
    return grad * scale


@functools.cache
def _compiled(function):
    """``function`` compiled once per process (lazily: importing stays quick)."""
    return torch.compile(function, dynamic=True, fullgraph=True)


class FusedGeneralizedCrossEntropy(torch.autograd.Function):
    """``GeneralizedCrossEntropy`` as two compiled kernels (forward, backward): the same
    function and gradient, for devices in ``FUSED_DEVICES`` (the GPU). Its inputs and
    outputs are those of ``GeneralizedCrossEntropy``."""

    @staticmethod
    def forward(ctx, logits, targets, valid, q, target_extra, other):
        constants = [torch.full((), v, device=logits.device) for v in (q, target_extra, other)]
        # detached: one kernel whether or not the logits need a gradient
        loss, log_p = _compiled(_fused_forward)(logits.detach(), targets, valid, *constants)
        ctx.save_for_backward(log_p, targets, valid, *constants)
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        log_p, targets, valid, *constants = ctx.saved_tensors
        grad = _compiled(_fused_backward)(grad_output, log_p, targets, valid, *constants)
        return grad, None, None, None, None, None


class GCE(TokenLoss):
    """Generalized cross-entropy (Zhang & Sabuncu 2018): ``(1 - p_y^q) / q``.

    ``q`` in [0, inf): q = 0 is exactly cross-entropy, q = 1 is MAE (``1 - p_y``). Its
    gradient is CE's weighted by ``p_y^q``, which down-weights tokens the model
    disagrees with: the noise-robustness. With smoothing ``s`` it is SGCE.

    Unlike the published GCE listing of the reference study, which never reads the
    targets, this is the per-token loss of the paper, averaged over tokens.

    >>> logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    >>> targets = torch.tensor([0, 2])
    >>> round(GCE(q=0.7)(logits, targets).item(), 6)
    0.536945
    >>> round(GCE(q=0.0)(logits, targets).item(), 6)  # cross-entropy
    0.813933
    """

    takes_q = True
    default_q = 0.7

    def __init__(self, q: float | None = None, s: float = 0.0, **kwargs) -> None:
        super().__init__(s=s, **kwargs)
        q = self.default_q if q is None else q
        if not (q >= 0.0 and math.isfinite(q)):
            raise ValueError(f"q must be a finite number >= 0, got {q}")
        self.q = float(q)

    def forward(self, logits: Tensor, targets: Tensor, soft: Tensor | None = None) -> Tensor:
        if soft is None and self.q == 0.0 and self.s == 0.0 and self.reduction != "none":
            return plain_cross_entropy(logits, targets, self.ignore_index, self.reduction)
        return super().forward(logits, targets, soft)

    def per_token_soft(self, logits: Tensor, weights: Tensor, valid: Tensor) -> Tensor:
        """``sum_c w_c (1 - p_c^q) / q`` (``-expm1(q log p) / q``: exact for small q)."""
        if self.q == 0.0:
            return soft_cross_entropy(logits, weights) * valid
        log_p = torch.log_softmax(logits, dim=1)
        return -(weights * torch.expm1(self.q * log_p)).sum(1) * (valid / self.q)

    def per_token(self, logits: Tensor, targets: Tensor, valid: Tensor) -> Tensor:
        if self.q == 0.0:
            return smoothed_cross_entropy(logits, targets, valid, self.s)
        target_extra, other = self.smoothing_weights(logits.shape[1])
        arguments = (logits, targets, valid, self.q, target_extra, other)
        if logits.device.type in FUSED_DEVICES:
            try:
                return FusedGeneralizedCrossEntropy.apply(*arguments)
            except torch._dynamo.exc.TorchDynamoException as error:  # no compiler here
                FUSED_DEVICES.discard(logits.device.type)
                warnings.warn(
                    f"compiled GCE/SGCE kernels are not available on {logits.device.type}"
                    f" ({one_line(error)}); using the eager ones",
                    stacklevel=2,
                )
        return GeneralizedCrossEntropy.apply(*arguments)

    def extra_repr(self) -> str:
        return f"q={self.q}, " + super().extra_repr()


class SGCE(GCE):
    """Smooth GCE: ``sum_c w_c (1 - p_c^q) / q``, GCE against the smoothed targets.

    Defaults q = 0.7, s = 0.1. Equals GCE at s = 0 and smoothed cross-entropy at q = 0.
    The reference study's SGCE listing averages over tokens *and* classes (a 1/C scale
    on the loss and its gradient); this one sums over classes and averages over tokens,
    so its scale matches CE and GCE and learning rates carry over.

    >>> logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    >>> targets = torch.tensor([0, 2])
    >>> round(SGCE(q=0.7, s=0.1)(logits, targets).item(), 6)
    0.577876
    """

    def __init__(self, q: float | None = None, s: float = 0.1, **kwargs) -> None:
        super().__init__(q=q, s=s, **kwargs)


class MAE(GCE):
    """Mean absolute error (the unhinged loss): ``1 - p_y``, i.e. GCE at q = 1.

    With smoothing ``s``: ``sum_c w_c (1 - p_c)``.

    >>> logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    >>> targets = torch.tensor([0, 2])
    >>> round(MAE()(logits, targets).item(), 6)
    0.461754
    """

    takes_q = False

    def __init__(self, s: float = 0.0, **kwargs) -> None:
        super().__init__(q=1.0, s=s, **kwargs)

    def extra_repr(self) -> str:
        return TokenLoss.extra_repr(self)


def reverse_cross_entropy(p: Tensor, p_y: Tensor, target_extra: float, other: float) -> Tensor:
    """``-sum_c p_c log(max(w_c, 1e-4))`` per token, from ``p (N, C)`` and ``p_y (N,)``."""
    log_target = math.log(max(target_extra + other, RCE_CLAMP))
    log_other = math.log(max(other, RCE_CLAMP))
    return -(p_y * log_target + (p.sum(1) - p_y) * log_other)


def soft_reverse(log_p: Tensor, weights: Tensor) -> Tensor:
    """``-sum_c p_c log(max(w_c, 1e-4))`` per token, for per-token weights ``(N, C)``."""
    return -(log_p.exp() * weights.clamp_min(RCE_CLAMP).log()).sum(1)


class SCE(TokenLoss):
    """Symmetric cross-entropy (Wang et al. 2019): ``alpha CE + beta RCE``.

    ``RCE = -sum_c p_c log(max(w_c, 1e-4))``; without smoothing ``-log(1e-4) (1 - p_y)``.
    Defaults alpha = 0.1, beta = 1.0.

    >>> logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    >>> targets = torch.tensor([0, 2])
    >>> round(SCE()(logits, targets).item(), 5)
    4.33431
    """

    def __init__(self, alpha: float = 0.1, beta: float = 1.0, s: float = 0.0, **kwargs) -> None:
        super().__init__(s=s, **kwargs)
        if alpha < 0 or beta < 0:
            raise ValueError(f"alpha and beta must be >= 0, got {alpha} and {beta}")
        self.alpha, self.beta = float(alpha), float(beta)

    def per_token(self, logits: Tensor, targets: Tensor, valid: Tensor) -> Tensor:
        target_extra, other = self.smoothing_weights(logits.shape[1])
        log_p = torch.log_softmax(logits, dim=1)  # (N, C)
        log_p_y = log_p.gather(1, targets[:, None]).squeeze(1)
        cross_entropy = -(target_extra * log_p_y + other * log_p.sum(1))
        p = log_p.exp()
        reverse = reverse_cross_entropy(p, log_p_y.exp(), target_extra, other)
        return (self.alpha * cross_entropy + self.beta * reverse) * valid

    def per_token_soft(self, logits: Tensor, weights: Tensor, valid: Tensor) -> Tensor:
        log_p = torch.log_softmax(logits, dim=1)
        cross_entropy = -(weights * log_p).sum(1)
        return (self.alpha * cross_entropy + self.beta * soft_reverse(log_p, weights)) * valid

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, " + super().extra_repr()


class NCEandRCE(SCE):
    """Active-passive loss (Ma et al. 2020): ``alpha NCE + beta RCE``.

    ``NCE = (-sum_c w_c log p_c) / (-sum_c log p_c)``, in [0, 1]. Defaults alpha = beta = 1.

    >>> logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    >>> targets = torch.tensor([0, 2])
    >>> round(NCEandRCE()(logits, targets).item(), 5)
    4.48439
    """

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, s: float = 0.0, **kwargs) -> None:
        super().__init__(alpha=alpha, beta=beta, s=s, **kwargs)

    def per_token(self, logits: Tensor, targets: Tensor, valid: Tensor) -> Tensor:
        target_extra, other = self.smoothing_weights(logits.shape[1])
        log_p = torch.log_softmax(logits, dim=1)  # (N, C)
        log_p_y = log_p.gather(1, targets[:, None]).squeeze(1)
        sum_log_p = log_p.sum(1)
        normalised = (target_extra * log_p_y + other * sum_log_p) / sum_log_p
        reverse = reverse_cross_entropy(log_p.exp(), log_p_y.exp(), target_extra, other)
        return (self.alpha * normalised + self.beta * reverse) * valid

    def per_token_soft(self, logits: Tensor, weights: Tensor, valid: Tensor) -> Tensor:
        log_p = torch.log_softmax(logits, dim=1)
        normalised = (weights * log_p).sum(1) / log_p.sum(1)
        return (self.alpha * normalised + self.beta * soft_reverse(log_p, weights)) * valid


LOSSES: dict[str, type[TokenLoss]] = {
    "ce": CrossEntropy,
    "mae": MAE,
    "gce": GCE,
    "sgce": SGCE,
    "sce": SCE,
    "nce+rce": NCEandRCE,
}


def build_loss(name: str, q: float | None = None, s: float | None = None, **kwargs) -> TokenLoss:
    """The loss called ``name`` (see ``LOSSES``), as an ``nn.Module``.

    ``q`` only for ``gce`` and ``sgce``; ``s`` (label smoothing, in [0, 1)) for all;
    other keyword arguments (``ignore_index``, ``reduction``, ``alpha``, ``beta``) pass
    through. Unknown names and out-of-range parameters raise ``ValueError``.

    >>> build_loss("sgce", q=0.8, s=0.1)
    SGCE(q=0.8, s=0.1, ignore_index=-100, reduction='mean')
    """
    try:
        loss_class = LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}") from None
    if q is not None:
        if not loss_class.takes_q:
            raise ValueError(f"loss {name!r} takes no q (only gce and sgce do)")
        kwargs["q"] = q
    if s is not None:
        kwargs["s"] = s
    return loss_class(**kwargs)


def trainer_loss_func(loss: TokenLoss):
    """A ``compute_loss_func`` for a Hugging Face ``Trainer`` (transformers >= 4.46).

    The Trainer passes ``num_items_in_batch``, the count of non-ignored labels over all
    gradient-accumulation micro-batches; dividing the summed loss by it makes 2
    micro-batches of 16 give the same update as one batch of 32.
    """
    summed = copy.copy(loss)
    summed.reduction = "sum"

    def compute_loss(outputs, labels: Tensor, num_items_in_batch=None) -> Tensor:
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs.logits
        if num_items_in_batch is None:
            return loss(logits, labels)
        return summed(logits, labels) / num_items_in_batch

    return compute_loss
