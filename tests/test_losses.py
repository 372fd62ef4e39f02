"""Every loss against a float64 NumPy reference written here, plus its corners."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from noisebench.training.losses import LOSSES, GeneralizedCrossEntropy, build_loss

IGNORE = -100
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def weights(targets: np.ndarray, num_classes: int, s: float) -> np.ndarray:
    w = np.full((len(targets), num_classes), s / (num_classes - 1))
    w[np.arange(len(targets)), targets] = 1 - s
    return w


def reference_weighted(name, logits, w, q=None, alpha=None, beta=None):
    """Per-token loss in float64 for per-token target weights ``w (N, C)``."""
    z = logits.astype(np.float64)
    log_p = z - z.max(1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(1, keepdims=True))
    p = np.exp(log_p)
    if name == "mae":
        q = 1.0
    if name == "ce" or (name in ("gce", "sgce") and q == 0):
        return -(w * log_p).sum(1)
    if name in ("gce", "sgce", "mae"):
        return (w * (1 - p**q) / q).sum(1)
    reverse = -(p * np.log(np.maximum(w, 1e-4))).sum(1)
    if name == "sce":
        return (0.1 if alpha is None else alpha) * -(w * log_p).sum(1) + (
            1.0 if beta is None else beta
        ) * reverse
    return (1.0 if alpha is None else alpha) * (w * log_p).sum(1) / log_p.sum(1) + (
        1.0 if beta is None else beta
    ) * reverse


def reference(name, logits, targets, q=None, s=0.0, alpha=None, beta=None):
    """Per-token loss in float64, straight from the definitions; targets all valid."""
    w = weights(targets, logits.shape[1], s)
    return reference_weighted(name, logits, w, q=q, alpha=alpha, beta=beta)


CASES = [
    ("ce", {}),
    ("ce", {"s": 0.1}),
    ("ce", {"s": 0.5}),
    ("mae", {}),
    ("mae", {"s": 0.2}),
    ("gce", {"q": 0.0}),
    ("gce", {"q": 0.2}),
    ("gce", {"q": 0.7}),
    ("gce", {"q": 1.0}),
    ("gce", {"q": 2.5}),
    ("sgce", {"q": 0.0, "s": 0.1}),
    ("sgce", {"q": 1e-4, "s": 0.1}),
    ("sgce", {"q": 0.01, "s": 0.1}),
    ("sgce", {"q": 0.7, "s": 0.0}),
    ("sgce", {"q": 0.8, "s": 0.1}),
    ("sgce", {"q": 1.0, "s": 0.2}),
    ("sgce", {"q": 0.6, "s": 0.9}),
    ("sce", {}),
    ("sce", {"s": 0.1, "alpha": 0.5, "beta": 2.0}),
    ("nce+rce", {}),
    ("nce+rce", {"s": 0.15}),
]


def random_batch(num_classes, n=64, seed=0, scale=4.0):
    generator = torch.Generator().manual_seed(seed + num_classes)
    logits = scale * torch.randn(n, num_classes, generator=generator)
    targets = torch.randint(0, num_classes, (n,), generator=generator)
    return logits, targets


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("num_classes", [2, 9, 37])
@pytest.mark.parametrize(("name", "params"), CASES)
def test_loss_matches_float64_reference(name, params, num_classes, device):
    logits, targets = random_batch(num_classes)
    expected = reference(name, logits.numpy(), targets.numpy(), **params)
    logits, targets = logits.to(device), targets.to(device)
    none = build_loss(name, reduction="none", **params)(logits, targets).cpu()
    torch.testing.assert_close(none, torch.from_numpy(expected).float(), rtol=1e-6, atol=1e-6)
    mean = build_loss(name, **params)(logits, targets)
    total = build_loss(name, reduction="sum", **params)(logits, targets)
    assert mean.dtype == total.dtype == torch.float32
    assert mean.item() == pytest.approx(expected.mean(), rel=1e-6, abs=1e-6)
    assert total.item() == pytest.approx(expected.sum(), rel=1e-6, abs=1e-5)


def reference_gradient(name, logits, targets, **params):
    """d(mean loss)/d(logits) by float64 autograd through the straightforward formula."""
    z = logits.double().requires_grad_(True)
    log_p = torch.log_softmax(z, 1)
    w = torch.from_numpy(weights(targets.numpy(), z.shape[1], params.get("s", 0.0)))
    q = params.get("q", 1.0 if name == "mae" else None)
    if name == "ce" or q == 0:
        per_token = -(w * log_p).sum(1)
    else:
        per_token = (w * (1 - torch.exp(q * log_p)) / q).sum(1)
    per_token.mean().backward()
    return z.grad


@pytest.mark.parametrize("num_classes", [2, 9, 37])
@pytest.mark.parametrize(
    ("name", "params"),
    [c for c in CASES if c[0] in ("ce", "mae", "gce", "sgce")],
)
@pytest.mark.parametrize("device", DEVICES)
def test_closed_form_gradient_matches_float64_autograd(name, params, num_classes, device):
    logits, targets = random_batch(num_classes, seed=1)
    leaf = logits.clone().to(device).requires_grad_(True)
    build_loss(name, **params)(leaf, targets.to(device)).backward()
    expected = reference_gradient(name, logits, targets, **params)
    torch.testing.assert_close(leaf.grad.cpu().double(), expected, rtol=1e-5, atol=1e-7)


def test_gce_gradient_is_ce_gradient_weighted_by_p_y_to_the_q():
    logits, targets = random_batch(9, seed=2)
    q = 0.7
    gce_logits = logits.clone().requires_grad_(True)
    build_loss("gce", q=q, reduction="sum")(gce_logits, targets).backward()
    ce_logits = logits.clone().requires_grad_(True)
    F.cross_entropy(ce_logits, targets, reduction="none").sum().backward()
    p_y = torch.softmax(logits, 1).gather(1, targets[:, None])
    torch.testing.assert_close(gce_logits.grad, p_y**q * ce_logits.grad, rtol=1e-5, atol=1e-7)


def test_autograd_function_passes_gradcheck_in_float64():
    logits, targets = random_batch(5, n=6, seed=3)
    logits = logits.double().requires_grad_(True)
    valid = torch.tensor([True, True, False, True, True, True])
    for q, target_extra, other in [(0.7, 1.0, 0.0), (0.8, 0.875, 0.025), (0.01, 0.7, 0.05)]:
        assert torch.autograd.gradcheck(
            lambda z, q=q, a=target_extra, o=other: GeneralizedCrossEntropy.apply(
                z, targets, valid, q, a, o
            ),
            (logits,),
        )


def test_identities_between_losses():
    logits, targets = random_batch(9, seed=4)

    def value(name, **params):
        return build_loss(name, reduction="none", **params)(logits, targets)

    torch.testing.assert_close(value("mae"), value("gce", q=1.0), rtol=0, atol=1e-6)
    torch.testing.assert_close(value("sgce", q=0.7, s=0.0), value("gce", q=0.7), rtol=0, atol=0)
    torch.testing.assert_close(value("gce", q=0.0), value("ce"), rtol=0, atol=1e-6)
    torch.testing.assert_close(value("sgce", q=0.0, s=0.1), value("ce", s=0.1), rtol=0, atol=0)
    ce = F.cross_entropy(logits, targets)
    assert build_loss("ce")(logits, targets).item() == pytest.approx(ce.item(), rel=1e-6)


@pytest.mark.parametrize("s", [0.0, 0.1, 0.2])
def test_sgce_is_continuous_in_q(s):
    logits, targets = random_batch(9, seed=5, scale=1.0)
    at_zero = build_loss("sgce", q=0.0, s=s)(logits, targets)
    near_zero = build_loss("sgce", q=1e-4, s=s)(logits, targets)
    assert abs(near_zero.item() - at_zero.item()) < 1e-3


@pytest.mark.parametrize(("name", "params"), CASES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sequence_input_equals_flattened_call(name, params, reduction):
    generator = torch.Generator().manual_seed(6)
    logits = 3 * torch.randn(4, 7, 9, generator=generator)
    targets = torch.randint(0, 9, (4, 7), generator=generator)
    targets[0, :3] = IGNORE
    loss = build_loss(name, reduction=reduction, **params)
    batched = loss(logits, targets)
    flat = loss(logits.reshape(-1, 9), targets.reshape(-1))
    if reduction == "none":
        assert batched.shape == (4, 7)
        flat = flat.reshape(4, 7)
    torch.testing.assert_close(batched, flat, rtol=0, atol=0)


@pytest.mark.parametrize(("name", "params"), CASES)
def test_ignored_targets_contribute_nothing(name, params):
    logits, targets = random_batch(9, seed=7)
    ignored = torch.zeros(len(targets), dtype=torch.bool)
    ignored[::3] = True
    with_ignored = targets.masked_fill(ignored, IGNORE)
    leaf = logits.clone().requires_grad_(True)
    mean = build_loss(name, **params)(leaf, with_ignored)
    mean.backward()
    kept = build_loss(name, **params)(logits[~ignored], targets[~ignored])
    assert mean.item() == pytest.approx(kept.item(), rel=1e-6)
    assert torch.all(leaf.grad[ignored] == 0)
    none = build_loss(name, reduction="none", **params)(logits, with_ignored)
    assert torch.all(none[ignored] == 0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("name", "params"), CASES)
def test_all_ignored_batch_gives_zero_not_nan(name, params, device):
    logits = torch.randn(5, 9, device=device, requires_grad=True)
    targets = torch.full((5,), IGNORE, device=device)
    loss = build_loss(name, **params)(logits, targets)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.all(logits.grad == 0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("name", "params"), CASES)
def test_extreme_logits_stay_finite_in_every_dtype(name, params, dtype, device):
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, -1e4], [0.0, 0.0, 1e4]], dtype=dtype)
    logits = logits.to(device).requires_grad_(True)
    targets = torch.tensor([1, 1, 0], device=device)  # two of three badly wrong
    loss = build_loss(name, **params)(logits, targets)
    loss.backward()
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    assert logits.grad.dtype == dtype
    assert torch.all(torch.isfinite(logits.grad))


@pytest.mark.parametrize(("name", "params"), CASES)
def test_single_logit_binary_case(name, params):
    generator = torch.Generator().manual_seed(8)
    z = 3 * torch.randn(32, 1, generator=generator)
    targets = torch.randint(0, 2, (32,), generator=generator)
    two_class = torch.cat([torch.zeros_like(z), z], dim=1)
    expected = reference(name, two_class.numpy(), targets.numpy(), **params)
    got = build_loss(name, reduction="none", **params)(z, targets)
    torch.testing.assert_close(got, torch.from_numpy(expected).float(), rtol=1e-6, atol=1e-6)
    if name == "ce" and not params:
        bce = F.binary_cross_entropy_with_logits(z.squeeze(1), targets.float())
        assert build_loss("ce")(z, targets).item() == pytest.approx(bce.item(), rel=1e-6)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: build_loss("focal"), r"unknown loss 'focal'; choose one of ce, mae, gce, sgce"),
        (lambda: build_loss("gce", q=-0.1), r"q must be a finite number >= 0, got -0.1"),
        (lambda: build_loss("sgce", s=1.0), r"s \(label smoothing\) must be in \[0, 1\), got 1.0"),
        (lambda: build_loss("ce", s=-0.1), r"must be in \[0, 1\), got -0.1"),
        (lambda: build_loss("ce", q=0.5), r"loss 'ce' takes no q \(only gce and sgce do\)"),
        (lambda: build_loss("ce", reduction="avg"), r"reduction must be one of"),
        (lambda: build_loss("sce", alpha=-1), r"alpha and beta must be >= 0"),
    ],
)
def test_bad_parameters_raise_value_error_with_the_valid_range(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("name", list(LOSSES))
def test_bad_inputs_raise_value_error(name):
    loss = build_loss(name)
    with pytest.raises(ValueError, match=r"must agree: got \(4, 3\) and \(5,\)"):
        loss(torch.randn(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="C >= 2 classes"):
        loss(torch.randn(4, 0), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer class ids"):
        loss(torch.randn(4, 3), torch.zeros(4))
    if name != "ce":  # plain CE defers to F.cross_entropy's own check
        with pytest.raises(ValueError, match=r"target 3 is outside \[0, 3\) classes"):
            loss(torch.randn(4, 3), torch.tensor([0, 1, 3, 2]))


def test_registry_and_build_loss_defaults():
    assert list(LOSSES) == ["ce", "mae", "gce", "sgce", "sce", "nce+rce"]
    assert build_loss("gce").q == 0.7 and build_loss("gce").s == 0.0
    assert build_loss("sgce").q == 0.7 and build_loss("sgce").s == 0.1
    assert math.isclose(build_loss("sce").alpha, 0.1) and build_loss("sce").beta == 1.0
    assert build_loss("nce+rce").alpha == build_loss("nce+rce").beta == 1.0


@pytest.fixture
def fused_on_cpu(monkeypatch):
    """The compiled GCE/SGCE kernels (a GPU's path) run on the CPU, for exactness tests."""
    from noisebench.training import losses

    monkeypatch.setattr(losses, "FUSED_DEVICES", {"cpu", "cuda"})


@pytest.mark.slow
@pytest.mark.parametrize("num_classes", [2, 9, 37])
def test_fused_kernels_match_the_float64_reference(fused_on_cpu, num_classes):
    from torch._dynamo.utils import counters

    warm_up = random_batch(num_classes)[0].requires_grad_(True)
    build_loss("sgce")(warm_up, random_batch(num_classes)[1]).backward()  # compiles, once
    graphs = counters["stats"]["unique_graphs"]
    cases = [c for c in CASES if c[0] in ("mae", "gce", "sgce") and c[1].get("q") != 0.0]
    for name, params in cases:
        logits, targets = random_batch(num_classes)
        expected = reference(name, logits.numpy(), targets.numpy(), **params)
        none = build_loss(name, reduction="none", **params)(logits, targets)
        torch.testing.assert_close(none, torch.from_numpy(expected).float(), rtol=1e-6, atol=1e-6)

        logits, targets = random_batch(num_classes, seed=1)
        leaf = logits.clone().requires_grad_(True)
        targets_with_ignored = targets.clone()
        targets_with_ignored[:3] = IGNORE
        build_loss(name, **params)(leaf, targets_with_ignored).backward()
        expected = reference_gradient(name, logits[3:], targets[3:], **params)  # mean of 61
        assert leaf.grad[:3].abs().max() == 0  # ignored tokens get no gradient
        torch.testing.assert_close(leaf.grad[3:].double(), expected, rtol=1e-5, atol=1e-7)
    # the same kernels for every q and s (the CE start ramps q each step) and token count
    assert counters["stats"]["unique_graphs"] == graphs


def test_without_a_compiler_the_fused_path_falls_back_with_a_warning(monkeypatch):
    from noisebench.training import losses

    monkeypatch.setattr(losses, "FUSED_DEVICES", {"cpu"})

    def no_compiler(function):
        raise torch._inductor.exc.InductorError(RuntimeError("Compiler: cc is not found"), None)

    monkeypatch.setattr(losses, "_compiled", no_compiler)
    logits, targets = random_batch(9)
    with pytest.warns(UserWarning, match="not available on cpu .*cc is not found"):
        value = build_loss("sgce", q=0.7, s=0.1)(logits, targets)
    assert not losses.FUSED_DEVICES  # not tried again in this process
    eager = losses.GeneralizedCrossEntropy.apply
    expected = eager(logits, targets, torch.ones(64, dtype=torch.bool), 0.7, 0.8875, 0.0125)
    assert value.item() == pytest.approx(expected.mean().item(), rel=1e-6)


def test_an_error_that_is_not_the_compilers_keeps_the_fused_path(monkeypatch):
    from noisebench.training import losses

    monkeypatch.setattr(losses, "FUSED_DEVICES", {"cpu"})

    def broken_kernel(function):
        raise ValueError("a bug in the kernel")

    monkeypatch.setattr(losses, "_compiled", broken_kernel)
    logits, targets = random_batch(9)
    with pytest.raises(ValueError, match="a bug in the kernel"):
        build_loss("gce", q=0.7)(logits, targets)
    assert {"cpu"} == losses.FUSED_DEVICES


def random_soft(n, num_classes, seed):
    """Soft targets: mostly one-hot rows, some spread over two or three classes."""
    rng = np.random.default_rng(seed)
    soft = np.zeros((n, num_classes))
    soft[np.arange(n), rng.integers(0, num_classes, n)] = 1.0
    spread = rng.random(n) < 0.5
    mix = rng.dirichlet(np.ones(num_classes), size=n)
    soft[spread] = 0.8 * soft[spread] + 0.2 * mix[spread]
    return soft


@pytest.mark.parametrize("num_classes", [2, 9])
@pytest.mark.parametrize(("name", "params"), CASES)
def test_soft_targets_match_float64_reference(name, params, num_classes):
    logits, targets = random_batch(num_classes, seed=5)
    soft = random_soft(len(targets), num_classes, seed=num_classes)
    s = params.get("s", 0.0)
    other = s / (num_classes - 1)
    w = (1 - s - other) * soft + other  # the one smoothing convention, on soft targets
    rest = {k: v for k, v in params.items() if k != "s"}
    expected = reference_weighted(name, logits.numpy(), w, **rest)
    targets[::7] = IGNORE  # ignored tokens count for nothing, soft or not
    expected[::7] = 0.0
    soft_tensor = torch.from_numpy(soft).float()
    none = build_loss(name, reduction="none", **params)(logits, targets, soft_tensor)
    torch.testing.assert_close(none, torch.from_numpy(expected).float(), rtol=1e-5, atol=1e-6)
    mean = build_loss(name, **params)(logits, targets, soft_tensor)
    assert mean.item() == pytest.approx(expected.sum() / int((targets != IGNORE).sum()), rel=1e-5)


@pytest.mark.parametrize(("name", "params"), CASES)
def test_one_hot_soft_targets_give_the_hard_target_loss_and_gradient(name, params):
    logits, targets = random_batch(9, seed=6)
    one_hot = F.one_hot(targets, 9).float()
    hard_leaf = logits.clone().requires_grad_(True)
    soft_leaf = logits.clone().requires_grad_(True)
    hard = build_loss(name, **params)(hard_leaf, targets)
    soft = build_loss(name, **params)(soft_leaf, targets, one_hot)
    hard.backward()
    soft.backward()
    assert soft.item() == pytest.approx(hard.item(), rel=1e-5, abs=1e-6)
    torch.testing.assert_close(soft_leaf.grad, hard_leaf.grad, rtol=1e-4, atol=1e-6)


def test_soft_target_gradient_matches_float64_autograd():
    logits, targets = random_batch(9, seed=7)
    soft = torch.from_numpy(random_soft(len(targets), 9, seed=3))
    leaf = logits.clone().requires_grad_(True)
    build_loss("sgce", q=0.7, s=0.1)(leaf, targets, soft.float()).backward()
    z = logits.double().requires_grad_(True)
    w = 0.9 * soft + 0.1 / 8 * (1 - soft)  # (1 - s) on the soft target, s / (C - 1) off it
    per_token = (w * (1 - torch.exp(0.7 * torch.log_softmax(z, 1))) / 0.7).sum(1)
    per_token.mean().backward()
    torch.testing.assert_close(leaf.grad.double(), z.grad, rtol=1e-4, atol=1e-7)


def test_soft_targets_of_the_wrong_shape_are_refused():
    logits, targets = random_batch(9)
    with pytest.raises(ValueError, match=r"soft targets must be shaped \(\.\.\., 9\)"):
        build_loss("ce")(logits, targets, torch.ones(len(targets), 5))


@pytest.mark.parametrize("q", [0.3, 0.7])
def test_gce_minimiser_of_a_soft_target_is_w_to_the_one_over_one_minus_q(q):
    """The optimum of sum_c w_c (1 - p_c^q) / q is p ∝ w^(1/(1-q)), not w (targets.py):
    noisebench's soft-target GCE has zero gradient there, not at p = w, and any other
    point of the simplex costs more."""
    w = torch.tensor([[0.7, 0.2, 0.1]], dtype=torch.float64)
    optimum = w ** (1 / (1 - q))
    optimum = optimum / optimum.sum()
    loss = build_loss("gce", q=q)
    target = torch.tensor([0])

    def value_and_gradient(p):
        leaf = p.log().float().clone().requires_grad_(True)
        value = loss(leaf, target, w.float())
        value.backward()
        return value.item(), leaf.grad.abs().max().item()

    at_optimum, gradient_at_optimum = value_and_gradient(optimum)
    at_w, gradient_at_w = value_and_gradient(w)
    assert gradient_at_optimum < 1e-6 < 1e-2 < gradient_at_w
    assert at_optimum < at_w
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):  # nearby points of the simplex all cost more
        nearby = optimum.log() + 0.05 * torch.randn(1, 3, generator=generator, dtype=torch.float64)
        assert value_and_gradient(torch.softmax(nearby, 1))[0] > at_optimum
