"""bf16 against fp32 on this CPU, in one process: training and prediction.

    python benchmarks/bench_precision.py                   # 2,048 CoNLL-2003 sentences
    python benchmarks/bench_precision.py --sentences 512   # a quicker look

Same model (``minilm-l6``, same initial weights), same sentences, batch 32, one epoch,
length-grouped batches in every loop: our loop with ``--precision fp32`` and ``bf16``
(the loop's own clock, evaluation excluded) against a plain ``Trainer`` in fp32 (its
default) and with ``bf16=True`` (``group_by_length``; its ``train_runtime``). Then
``predict`` on the validation split in both formats (sentences/s, how many argmax
predictions agree, the largest probability difference), a matrix product of the step's
shape in both, and where the time of one bf16 training step goes (``torch.profiler``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_train import ours, prepared_run, trainer  # benchmarks/ is on a script's path

# what the profile's operators are, by the name's start (the rest is "other")
KINDS = {
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear",
                        "mkldnn", "aten::_addmm", "aten::baddbmm"),
    "format conversions": ("aten::to", "aten::_to_copy", "aten::copy_"),
    "dropout (random masks)": ("aten::bernoulli", "aten::dropout", "aten::native_dropout"),
    "softmax, GELU": ("aten::softmax", "aten::_softmax", "aten::gelu",
                      "aten::scaled_dot_product", "aten::_scaled_dot_product"),
    "layer norm": ("aten::layer_norm", "aten::native_layer_norm"),
    "optimizer (fused AdamW, zero_grad)": ("aten::_fused_adamw", "Optimizer"),
    "loss": ("aten::log_softmax", "aten::_log_softmax", "aten::nll_loss", "aten::gather"),
}  # fmt: skip


def matmul_ms(dtype: torch.dtype, repeats: int = 20) -> float:
    """A (2048 x 384) @ (384 x 1536) product (one batch's feed-forward up-projection)."""
    a, b = torch.randn(2048, 384, dtype=dtype), torch.randn(384, 1536, dtype=dtype)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return (time.perf_counter() - start) / repeats * 1000


def prediction(prepared, precision: str) -> tuple[float, object]:
    """Sentences/s of ``predict`` on CoNLL-2003's whole validation split, and what it made."""
    from noisebench.data import loading, sources
    from noisebench.training.batches import encode
    from noisebench.training.evaluate import load_model, predict, tokens_of

    torch.manual_seed(0)
    model, tokenizer = load_model(prepared.model_path, prepared.labels)
    split = loading.load("conll2003")["validation"]
    encoded = encode(tokenizer, split, 128, sources.home() / "tokenized")
    tokens, pad = tokens_of(split), tokenizer.pad_token_id or 0
    device = torch.device("cpu")
    predict(model, encoded, tokens, prepared.labels, device, pad, precision)  # warm
    start = time.perf_counter()
    made = predict(model, encoded, tokens, prepared.labels, device, pad, precision)
    return len(tokens) / (time.perf_counter() - start), made


def profile_step(prepared) -> dict[str, float]:
    """Shares of one bf16 training step's CPU time (3 steps after 2 warm ones)."""
    from noisebench.data import sources
    from noisebench.training.batches import collate, encode, length_grouped_batches
    from noisebench.training.evaluate import load_model
    from noisebench.training.losses import build_loss
    from noisebench.training.precision import autocast

    torch.manual_seed(0)
    model, tokenizer = load_model(prepared.model_path, prepared.labels)
    model.train()
    encoded = encode(tokenizer, prepared.dataset["train"], 128, sources.home() / "tokenized")
    batches = length_grouped_batches(encoded.lengths(), 32, np.random.default_rng(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
    loss_fn = build_loss("ce")
    cpu = torch.device("cpu")

    def step(indices):
        batch = collate(encoded, indices, tokenizer.pad_token_id or 0, with_labels=True)
        labels = batch.pop("labels")
        with autocast("bf16", cpu):
            logits = model(**batch).logits
        loss_fn(logits, labels).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    full = [b for b in batches if len(b) == 32] or batches
    steps = (full * 5)[:5]  # 2 warm steps, 3 profiled
    for indices in steps[:2]:
        step(indices)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        for indices in steps[2:]:
            step(indices)
    events = profiler.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    shares = dict.fromkeys([*KINDS, "other"], 0.0)
    for event in events:
        kind = next((k for k, starts in KINDS.items() if event.key.startswith(starts)), "other")
        shares[kind] += event.self_cpu_time_total / total
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=2048)
    args = parser.parse_args()
    from noisebench.training.precision import native_bf16

    capabilities = dict(torch.cpu.get_capabilities())
    flags = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if capabilities.get(f)]
    print(
        f"{capabilities.get('cpu_name', 'CPU')}, {torch.get_num_threads()} threads, torch"
        f" {torch.__version__}; native bf16: {native_bf16(torch.device('cpu'))}"
        f" ({', '.join(flags) or 'no AVX512-BF16 or AMX'})"
    )
    fp32_ms, bf16_ms = matmul_ms(torch.float32), matmul_ms(torch.bfloat16)
    print(
        f"(2048 x 384) @ (384 x 1536): fp32 {fp32_ms:.1f} ms, bf16 {bf16_ms:.1f} ms"
        f" ({fp32_ms / bf16_ms:.2f}x)"
    )
    with tempfile.TemporaryDirectory() as folder:
        runs_dir = Path(folder) / "runs"
        prepared = {p: prepared_run(args.sentences, runs_dir, p) for p in ("fp32", "bf16")}
        print(f"training: {args.sentences} CoNLL-2003 sentences, minilm-l6, batch 32, 1 epoch")
        results = {
            "noisebench fp32": ours(prepared["fp32"]),
            "noisebench bf16": ours(prepared["bf16"]),
            "Trainer fp32": trainer(prepared["fp32"], "group_by_length", Path(folder) / "t32"),
            "Trainer bf16=True": trainer(
                prepared["fp32"], "group_by_length", Path(folder) / "t16", bf16=True
            ),
        }
        speed = {name: row["sentences_per_second"] for name, row in results.items()}
        for name, row in results.items():
            print(f"  {name:20} {row['seconds']:7.1f} s {speed[name]:8.1f} sentences/s")
        ours_bf16 = speed["noisebench bf16"]
        print(
            f"  noisebench bf16 vs: noisebench fp32 {ours_bf16 / speed['noisebench fp32']:.2f}x,"
            f" Trainer fp32 {ours_bf16 / speed['Trainer fp32']:.2f}x,"
            f" Trainer bf16 {ours_bf16 / speed['Trainer bf16=True']:.2f}x"
        )
        predicted = {p: prediction(prepared[p], p) for p in ("fp32", "bf16")}
        (fast32, made32), (fast16, made16) = predicted["fp32"], predicted["bf16"]
        scored = ~np.isnan(made32.probs[:, 0])
        agree = (made32.predicted[scored] == made16.predicted[scored]).mean()
        largest = np.abs(made32.probs[scored] - made16.probs[scored]).max()
        print(
            f"prediction ({len(made32.offsets) - 1} validation sentences): fp32 {fast32:.1f},"
            f" bf16 {fast16:.1f} sentences/s ({fast16 / fast32:.2f}x); argmax agrees on"
            f" {agree:.2%} of words; largest probability difference {largest:.3f}"
        )
        print("one bf16 training step (batch 32), share of CPU time:")
        for kind, share in profile_step(prepared["bf16"]).items():
            print(f"  {kind:34} {share:6.1%}")


if __name__ == "__main__":
    main()
