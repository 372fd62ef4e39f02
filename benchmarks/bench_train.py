"""Training-loop speed of ``noisebench train`` against a plain Hugging Face ``Trainer``.

    python benchmarks/bench_train.py                 # CPU, minilm-l6, CoNLL-2003
    python benchmarks/bench_train.py --sentences 512 # a quicker look

Same model (``minilm-l6``, same initial weights), same sentences (the first N of
CoNLL-2003 train), batch 32, fp32, one epoch, in one process: our loop (timed by the
loop's own clock, evaluation excluded), our loop with ``--compile`` (its first step,
which compiles, shown apart; the compile cache emptied first), and ``Trainer.train``
with ``train_sampling_strategy`` = ``group_by_length`` and ``random`` (its
``train_runtime``).
Then the loop's model-FLOPs utilisation: 6 x (non-embedding parameters) x tokens plus the
attention products, over the measured fp32 matmul peak of this machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from gpu_check import after_first_step  # benchmarks/ is on the path of a script run here


def matmul_peak_gflops(size: int = 2048, repeats: int = 20) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def model_flops(model, tokens: int, attention_tokens: int) -> float:
    """Forward + backward FLOPs: 6 per non-embedding weight per token, plus QK^T and AV
    (2 x 2 x hidden per token pair per layer, forward; x3 with backward)."""
    config = model.config
    embedding = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    weights = sum(p.numel() for p in model.parameters()) - embedding
    attention = 3 * 4 * config.num_hidden_layers * config.hidden_size * attention_tokens
    return 6 * weights * tokens + attention


def prepared_run(sentences: int, runs_dir: Path, precision: str = "fp32"):
    import datasets

    from noisebench.training.config import TrainConfig
    from noisebench.training.prepare import prepare

    config = TrainConfig(
        loss="ce", epochs=1, max_train_samples=sentences, batch_size=32, precision=precision
    )
    prepared = prepare(config, runs_dir, "cpu")
    small = {s: prepared.dataset[s].select(range(32)) for s in ("validation", "test")}
    prepared.dataset = datasets.DatasetDict({"train": prepared.dataset["train"], **small})
    return prepared


def ours(prepared) -> dict:
    from noisebench.training.loop import train

    results = train(prepared)
    summary = results["train"]
    row = {"seconds": summary["seconds"], "sentences_per_second": summary["sentences_per_second"]}
    if summary["compiled"]:
        row["first_step_seconds"] = summary["first_step_seconds"]
        row["steady_sentences_per_second"] = after_first_step(summary)
    return row


def trainer(prepared, strategy: str, output: Path, bf16: bool = False) -> dict:
    import datasets
    from transformers import DataCollatorForTokenClassification, Trainer, TrainingArguments

    from noisebench.data import sources
    from noisebench.training.batches import encode
    from noisebench.training.evaluate import load_model

    torch.manual_seed(0)
    model, tokenizer = load_model(prepared.model_path, prepared.labels)
    encoded = encode(tokenizer, prepared.dataset["train"], 128, sources.home() / "tokenized")
    rows = []
    for ids, starts, tags in zip(encoded.input_ids, encoded.word_starts, encoded.tags, strict=True):
        labels = np.full(len(ids), -100)
        kept = starts >= 0
        labels[starts[kept]] = tags[kept]
        rows.append({"input_ids": ids.tolist(), "labels": labels.tolist()})
    dataset = datasets.Dataset.from_list(rows)
    args = TrainingArguments(
        output_dir=str(output),
        per_device_train_batch_size=32,
        num_train_epochs=1,
        learning_rate=5e-5,
        warmup_steps=0.1,
        weight_decay=0.01,
        use_cpu=True,
        bf16=bf16,  # CPU autocast to bfloat16, as our --precision bf16
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
        train_sampling_strategy=strategy,
        dataloader_num_workers=0,
    )
    collator = DataCollatorForTokenClassification(tokenizer)
    hf = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    metrics = hf.train().metrics
    return {
        "seconds": metrics["train_runtime"],
        "sentences_per_second": metrics["train_samples_per_second"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=2048)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as folder:
        prepared = prepared_run(args.sentences, Path(folder) / "runs")
        print(
            f"{args.sentences} CoNLL-2003 sentences, minilm-l6, batch 32, fp32, "
            f"{torch.get_num_threads()} CPU threads"
        )
        results = {"noisebench": ours(prepared)}
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(folder) / "inductor")  # a cold start
        results["noisebench --compile"] = ours(replace(prepared, compile_model=True))
        for strategy in ("group_by_length", "random"):
            results[f"Trainer ({strategy})"] = trainer(prepared, strategy, Path(folder) / strategy)
        baseline = results["Trainer (group_by_length)"]["sentences_per_second"]
        print(f"{'loop':30} {'seconds':>8} {'sentences/s':>12} {'vs Trainer (group)':>19}")
        for name, row in results.items():
            ratio = row["sentences_per_second"] / baseline
            print(
                f"{name:30} {row['seconds']:8.1f} {row['sentences_per_second']:12.1f}"
                f" {ratio:18.2f}x"
            )
            if "first_step_seconds" in row:
                steady = row["steady_sentences_per_second"]
                print(
                    f"{'  after its first step':30} {row['first_step_seconds']:7.1f}s"
                    f" {steady:12.1f} {steady / baseline:18.2f}x  (first step: compiling)"
                )

        from noisebench.data import sources
        from noisebench.training.batches import encode
        from noisebench.training.evaluate import load_model

        model, tokenizer = load_model(prepared.model_path, prepared.labels)
        encoded = encode(tokenizer, prepared.dataset["train"], 128, sources.home() / "tokenized")
        lengths = encoded.lengths()
        flops = model_flops(model, int(lengths.sum()), int((lengths**2).sum()))
        achieved = flops / results["noisebench"]["seconds"] / 1e9
        peak = matmul_peak_gflops()
        print(
            f"model FLOPs {flops / 1e12:.2f} TFLOP over {lengths.sum():,} tokens: "
            f"{achieved:.1f} GFLOP/s; fp32 matmul peak {peak:.1f} GFLOP/s; "
            f"MFU {100 * achieved / peak:.1f}%"
        )


if __name__ == "__main__":
    main()
