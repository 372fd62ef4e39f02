"""What each lever on a bf16 CPU training step buys, alone and together, against a plain
``Trainer`` with ``bf16=True`` in the same process (issue 37).

    python benchmarks/bench_levers.py                      # 1,024 sentences, 3 rounds
    python benchmarks/bench_levers.py --rounds 5 --compile  # with torch.compile (slow start)

Same model (``minilm-l6``, same initial weights), the first N sentences of CoNLL-2003
train, batch 32 grouped by length, one epoch per measurement. The step is noisebench's
(forward under bf16 autocast, the loss in fp32 on the words' first sub-tokens, gradient
clipping at 1, fused AdamW), written out here so each lever can be switched alone:

- ``fast dropout``: dropout masks from 64-bit random words cut into 16-bit ones (a word
  is kept where its 16 bits are at or above p · 65536: p to 1/65,536) instead of
  ``bernoulli_`` per element; the same distribution, another random stream;
- ``bf16 weights``: the model held in bf16 between steps, with fp32 master weights in
  the optimizer (gradients cast up, weights cast down once per step) instead of casting
  every weight at every forward;
- ``eager attention``: transformers' eager attention in place of its default, PyTorch's
  ``scaled_dot_product_attention`` (the same products; on CPU with dropout that takes
  the math path, without it a fused kernel);
- ``fast attention``: the eager attention with its probabilities' dropout masks made as
  ``fast dropout`` makes them (``fast_attention``, registered with transformers);
- ``compile``: ``torch.compile`` (inductor), its first step (compiling) shown apart.

A 2-core cloud CPU's speed wanders by ±20% from one epoch to the next, so the variants
run in interleaved rounds after a warm-up epoch, and each row is the median over rounds;
the ``Trainer`` and ``noisebench train``'s own loop (which does more per step than the
bare step: masking, per-step logs, its collation) run once per round too. Then the matrix
products' share of a step and their achieved throughput against the measured peak of the
step's largest product.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from bench_precision import matmul_ms  # benchmarks/ is on a script's path
from bench_train import model_flops, ours, prepared_run, trainer


class FastDropout(torch.nn.Module):
    """Dropout whose keep-mask comes from 16-bit slices of 64-bit random words."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        dropped = round(p * 65536)
        self.threshold = dropped - 32768  # int16: keep where bits >= threshold
        self.scale = 65536 / (65536 - dropped)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        n = x.numel()
        words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64)
        keep = words.view(torch.int16)[:n].view(x.shape) >= self.threshold
        return x * keep.to(x.dtype) * self.scale


def fast_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                   **kwargs):  # fmt: skip
    """BERT's eager attention (softmax(Q·Kᵀ·scale + mask)·V), its dropout on the
    attention probabilities by ``FastDropout``'s masks: registered with transformers as
    the ``noisebench`` attention (with the eager, additive mask)."""
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = torch.nn.functional.softmax(weights, dim=-1)
    if module.training and dropout > 0:
        drop = FastDropout(dropout)
        weights = drop(weights)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register("noisebench", fast_attention)
    AttentionMaskInterface.register("noisebench", eager_mask)


def swap_dropout(model: torch.nn.Module, make) -> None:
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Dropout):
                setattr(module, name, make(child.p))


def batches_of(prepared, tokenizer) -> list[tuple]:
    """(input_ids, attention_mask, labels) of batches of 32 grouped by length, shuffled."""
    from noisebench.data import sources
    from noisebench.training.batches import encode

    encoded = encode(tokenizer, prepared.dataset["train"], 128, sources.home() / "tokenized")
    lengths = np.array([len(ids) for ids in encoded.input_ids])
    order = np.argsort(lengths, kind="stable")
    made = []
    for start in range(0, len(order), 32):
        rows = order[start : start + 32]
        width = int(lengths[rows].max())
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        labels = torch.full((len(rows), width), -100)
        for r, row in enumerate(rows):
            tokens = torch.as_tensor(encoded.input_ids[row])
            ids[r, : len(tokens)], mask[r, : len(tokens)] = tokens, 1
            starts, tags = encoded.word_starts[row], encoded.tags[row]
            kept = starts >= 0
            labels[r, torch.as_tensor(starts[kept])] = torch.as_tensor(tags[kept])
        made.append((ids, mask, labels))
    shuffled = np.random.default_rng(0).permutation(len(made))
    return [made[i] for i in shuffled]


def epoch(prepared, batches, levers: frozenset[str]) -> tuple[float, float]:
    """Sentences/s of one epoch with ``levers`` after its first step, and that step's
    seconds."""
    from noisebench.training.evaluate import load_model

    torch.manual_seed(0)
    model, _ = load_model(prepared.model_path, prepared.labels)
    model.train()
    if "fast dropout" in levers:
        swap_dropout(model, FastDropout)
    if "eager attention" in levers:
        model.config._attn_implementation = "eager"
    if "fast attention" in levers:
        model.config._attn_implementation = "noisebench"
    params = list(model.parameters())
    master = None
    if "bf16 weights" in levers:
        master = [p.detach().float().clone() for p in params]
        model.to(torch.bfloat16)
    optimizer = torch.optim.AdamW(master or params, lr=5e-5, weight_decay=0.01, fused=True)
    forward = torch.compile(model, dynamic=True) if "compile" in levers else model
    cast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=master is None)

    def step(ids, mask, labels) -> None:
        with cast:
            logits = forward(input_ids=ids, attention_mask=mask).logits
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten())
        loss.backward()
        if master is not None:
            for param, kept in zip(params, master, strict=True):
                kept.grad, param.grad = param.grad.float(), None
        torch.nn.utils.clip_grad_norm_(master or params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if master is not None:
            with torch.no_grad():
                for param, kept in zip(params, master, strict=True):
                    param.copy_(kept)

    started = time.perf_counter()
    step(*batches[0])
    first = time.perf_counter() - started
    started = time.perf_counter()
    for batch in batches[1:]:
        step(*batch)
    sentences = sum(len(b[0]) for b in batches[1:])
    return sentences / (time.perf_counter() - started), first


def matrix_share(prepared, batches) -> tuple[float, float]:
    """One bf16 step's share of CPU time in matrix products, and their throughput
    (GFLOP/s) over 10 steps (``torch.profiler``)."""
    from torch.profiler import ProfilerActivity, profile

    from noisebench.training.evaluate import load_model

    torch.manual_seed(0)
    model, _ = load_model(prepared.model_path, prepared.labels)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)

    def step(ids, mask, labels) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(input_ids=ids, attention_mask=mask).logits
        torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for batch in batches[:2]:
        step(*batch)
    measured = batches[2:12]
    with profile(activities=[ProfilerActivity.CPU]) as profiled:
        for batch in measured:
            step(*batch)
    events = profiled.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matrix = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm",
                                                                     "aten::bmm"))  # fmt: skip
    tokens = sum(int(b[1].sum()) for b in measured)
    pairs = sum(int((b[1].sum(1) ** 2).sum()) for b in measured)
    flops = model_flops(model, tokens, pairs)
    return matrix / total, flops / (matrix / 1e6) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also torch.compile (slow start)")
    args = parser.parse_args()
    from noisebench.training.evaluate import load_model

    capabilities = dict(torch.cpu.get_capabilities())
    flags = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if capabilities.get(f)]
    print(f"{capabilities.get('cpu_name', 'CPU')}, {torch.get_num_threads()} threads, torch"
          f" {torch.__version__} ({', '.join(flags) or 'no native bf16'})")  # fmt: skip
    variants = {
        "noisebench's step (bf16 autocast)": frozenset(),
        "+ fast dropout": frozenset({"fast dropout"}),
        "+ bf16 weights": frozenset({"bf16 weights"}),
        "+ fast dropout + bf16 weights": frozenset({"fast dropout", "bf16 weights"}),
        "+ eager attention": frozenset({"eager attention"}),
        "+ fast dropout + eager attention, its dropout fast": frozenset(
            {"fast dropout", "fast attention"}
        ),
        "+ all three": frozenset({"fast dropout", "fast attention", "bf16 weights"}),
    }
    if args.compile:
        variants["+ compile"] = frozenset({"compile"})
        variants["+ compile + fast dropout"] = frozenset({"compile", "fast dropout"})
    register_attention()
    with tempfile.TemporaryDirectory() as folder:
        prepared = prepared_run(args.sentences, Path(folder) / "runs", "bf16")
        _, tokenizer = load_model(prepared.model_path, prepared.labels)
        batches = batches_of(prepared, tokenizer)
        epoch(prepared, batches, frozenset())  # warm-up: thread pools, allocator, caches
        loop = "noisebench train's loop (bf16)"
        names = ["Trainer bf16=True", loop, *variants]
        speeds: dict[str, list[float]] = {name: [] for name in names}
        firsts: dict[str, float] = {}
        for round_ in range(args.rounds):
            row = trainer(prepared, "group_by_length", Path(folder) / f"t{round_}", bf16=True)
            speeds["Trainer bf16=True"].append(row["sentences_per_second"])
            own = replace(prepared, run_dir=Path(folder) / f"loop{round_}")
            speeds[loop].append(ours(own)["sentences_per_second"])
            for name, levers in variants.items():
                speed, first = epoch(prepared, batches, levers)
                speeds[name].append(speed)
                firsts[name] = max(firsts.get(name, 0.0), first)
            shown = ", ".join(f"{n.split(' (')[0]} {s[-1]:.0f}" for n, s in speeds.items())
            print(f"round {round_ + 1}: {shown}", flush=True)
        baseline = statistics.median(speeds["Trainer bf16=True"])
        bare = statistics.median(speeds["noisebench's step (bf16 autocast)"])
        print(f"\n{args.sentences} CoNLL-2003 sentences, minilm-l6, batch 32; median of"
              f" {args.rounds} rounds\n")  # fmt: skip
        print("| step | sentences/s (median; range) | vs Trainer bf16=True | vs our step |")
        print("|---|---:|---:|---:|")
        for name, found in speeds.items():
            median = statistics.median(found)
            extra = f" (first step {firsts[name]:.0f} s)" if "compile" in name else ""
            print(f"| {name}{extra} | {median:.1f} ({min(found):.0f}–{max(found):.0f}) |"
                  f" {median / baseline:.2f}x | {median / bare:.2f}x |")  # fmt: skip
        share, achieved = matrix_share(prepared, batches)
        peak_ms = matmul_ms(torch.bfloat16)
        peak = 2 * 2048 * 384 * 1536 / (peak_ms / 1e3) / 1e9
        print(f"\nmatrix products: {share:.0%} of a bf16 step's CPU time, at {achieved:.0f}"
              f" GFLOP/s against {peak:.0f} GFLOP/s for a (2048 x 384) @ (384 x 1536)"
              f" product ({achieved / peak:.0%} of it)")  # fmt: skip


if __name__ == "__main__":
    main()
