"""--precision: how it resolves on each device, how it names a run (older runs keep their
names), that a bf16 run computes its forward pass in bf16 and keeps fp32 probabilities,
the warning on processors without native bf16, and that leaderboards never pool two
precisions."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from test_leaderboard import write_run
from test_train import run_train, train_args

from noisebench.cli import app
from noisebench.errors import InputError
from noisebench.studies import sweep
from noisebench.studies.leaderboard.cells import aggregate
from noisebench.studies.leaderboard.records import collect
from noisebench.training import precision, runs
from noisebench.training.config import TrainConfig
from noisebench.training.prepare import resolve_device

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture(params=[True, False], ids=["native-bf16", "no-native-bf16"])
def native(request, monkeypatch):
    """A CPU that multiplies bf16 natively, or one that does not (torch's report mocked)."""
    capabilities = {"avx512_f": True, "avx512_bf16": request.param, "amx_bf16": False}
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    return request.param


def test_auto_takes_bf16_where_the_device_multiplies_it_natively(native):
    assert precision.native_bf16(CPU) is native
    assert precision.resolve_precision("auto", CPU) == ("bf16" if native else "fp32")
    assert precision.resolve_precision("auto", CUDA) == "bf16"  # as CUDA runs always did
    for device in (CPU, CUDA):
        assert precision.resolve_precision("fp32", device) == "fp32"
        assert precision.resolve_precision("bf16", device) == "bf16"
    # None: a run from before --precision, in its device's usual precision
    assert precision.resolve_precision(None, CPU) == "fp32"
    assert precision.resolve_precision(None, CUDA) == "bf16"


def test_amx_or_arm_bf16_count_as_native(monkeypatch):
    for flag in ("amx_bf16", "bf16", "sve_bf16"):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda flag=flag: {flag: True})
        assert precision.native_bf16(CPU)


def test_runs_in_their_devices_usual_precision_keep_their_names():
    older = TrainConfig(loss="sgce", q=0.8, s=0.1, rate=0.4).identity()
    del older["precision"]  # what a run from before --precision stored
    name = runs.run_name(older, "conll2003")
    for requested, device in (("fp32", CPU), ("bf16", CUDA)):
        settled = precision.settle(TrainConfig(loss="sgce", q=0.8, s=0.1, rate=0.4,
                                               precision=requested), device)  # fmt: skip
        assert settled.precision is None and "precision" not in settled.identity()
        assert runs.run_name(settled.identity(), "conll2003") == name
    # and the others are runs of their own, named apart
    for requested, device in (("bf16", CPU), ("fp32", CUDA)):
        settled = precision.settle(TrainConfig(loss="sgce", q=0.8, s=0.1, rate=0.4,
                                               precision=requested), device)  # fmt: skip
        assert settled.identity()["precision"] == requested
        assert runs.run_name(settled.identity(), "conll2003") != name
    # an older run read back reruns in its device's usual precision, under its own name
    assert TrainConfig.from_identity(older).precision is None


def test_a_bf16_run_computes_in_bf16_and_saves_fp32_probabilities(
    runner, ner_dir, tiny_model, tmp_path, monkeypatch
):
    seen = []
    real_autocast = precision.autocast

    def watched(name, device):  # which format each forward pass asked for
        seen.append(name)
        return real_autocast(name, device)

    monkeypatch.setattr("noisebench.training.loop.autocast", watched)
    runs_dir = tmp_path / "runs"
    fp32_dir, fp32 = run_train(runner, *train_args(ner_dir, tiny_model, runs_dir, "--epochs", 1,
                                                   "--precision", "fp32"))  # fmt: skip
    assert set(seen) == {"fp32"} and fp32["train"]["precision"] == "fp32"
    seen.clear()
    bf16_dir, bf16 = run_train(runner, *train_args(ner_dir, tiny_model, runs_dir, "--epochs", 1,
                                                   "--precision", "bf16"))  # fmt: skip
    assert set(seen) == {"bf16"} and bf16["train"]["precision"] == "bf16"
    assert bf16_dir != fp32_dir and bf16["config"]["precision"] == "bf16"
    assert "precision" not in fp32["config"]  # fp32 on CPU: the name runs always had
    for run_dir in (fp32_dir, bf16_dir):
        table = pq.read_table(run_dir / "predictions-test.parquet")
        probs = runs.read_predictions(run_dir / "predictions-test.parquet").probs
        assert probs.dtype == np.float32
        assert str(table.schema.field("probs").type).endswith("<element: float>[4]>")
        assert np.all((probs >= 0) & (probs <= 1))
    # bf16 rounds the products: close to fp32, not equal to it
    delta = abs(bf16["splits"]["test"]["ece"] - fp32["splits"]["test"]["ece"])
    assert 0 < delta < 0.05


def test_bf16_logits_under_autocast_are_bf16_and_the_loss_is_fp32():
    layer = torch.nn.Linear(8, 4)
    with precision.autocast("bf16", CPU):
        logits = layer(torch.randn(2, 3, 8))
    assert logits.dtype == torch.bfloat16
    from noisebench.training.losses import build_loss

    loss = build_loss("gce", q=0.7, s=None)(logits, torch.tensor([[0, 1, 2], [3, 0, -100]]))
    assert loss.dtype == torch.float32
    with precision.autocast("fp32", CPU):
        assert layer(torch.randn(2, 8)).dtype == torch.float32


def test_bf16_without_native_support_says_it_will_be_slow(runner, ner_dir, tiny_model, tmp_path,
                                                          monkeypatch):  # fmt: skip
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_f": True})
    result = runner.invoke(app, train_args(ner_dir, tiny_model, tmp_path / "runs", "--epochs", 1,
                                           "--precision", "bf16"))  # fmt: skip
    assert result.exit_code == 0, result.output
    warning = [line for line in result.stderr.splitlines() if "--precision bf16" in line]
    assert len(warning) == 1 and "no native bfloat16" in warning[0] and "slower" in warning[0]
    # and auto stays fp32 there: the run has the name of an fp32 run
    _, results = run_train(runner, *train_args(ner_dir, tiny_model, tmp_path / "runs",
                                               "--epochs", 1))  # fmt: skip
    assert results["train"]["precision"] == "fp32" and "precision" not in results["config"]


def test_a_bad_precision_is_refused_in_one_line(runner, ner_dir, tiny_model, tmp_path):
    result = runner.invoke(app, train_args(ner_dir, tiny_model, tmp_path / "runs",
                                           "--precision", "fp16"))  # fmt: skip
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("--precision 'fp16': choose one of auto, fp32, bf16")
    )
    assert not (tmp_path / "runs").exists()
    with pytest.raises(InputError, match="--precision 'fp16': choose one of auto, fp32, bf16"):
        precision.resolve_precision("fp16", CPU)  # as score --model resolves it


def test_the_sweep_plans_the_names_its_runs_take(native, tmp_path):
    grid = sweep.Grid(losses=("ce",), rates=(0.2,))
    config = sweep.SweepConfig(grids=(grid,), runs_dir=str(tmp_path), epochs=1)
    (planned,) = sweep.plan(config)
    settled = precision.settle(planned.config, resolve_device("auto"))  # as its train does
    assert planned.run_dir.name == runs.run_name(settled.identity(), "conll2003")
    assert planned.to_dict().get("precision") == ("bf16" if native else None)
    assert planned.config.precision == "auto"  # its train resolves it again, to the same


def test_leaderboards_never_pool_two_precisions(tmp_path):
    write_run(tmp_path, "ce", None, None, 0.4, 0, 0.60, 0.1)  # CPU before --precision: fp32
    write_run(tmp_path, "ce", None, None, 0.4, 1, 0.62, 0.1, precision="fp32")
    write_run(tmp_path, "ce", None, None, 0.4, 0, 0.70, 0.1, precision="bf16")
    cuda = write_run(tmp_path, "ce", None, None, 0.4, 2, 0.80, 0.1)  # CUDA before it: bf16
    results = json.loads((cuda / "results.json").read_text())
    results["train"] = {"device": "cuda:0"}
    (cuda / "results.json").write_text(json.dumps(results))
    cells = aggregate(collect([tmp_path], "test", ["f1"]).records)
    pooled = {c["settings"]["precision"]: (c["n"], round(c["mean"], 2)) for c in cells}
    assert pooled == {"fp32": (2, 0.61), "bf16": (2, 0.75)}
    assert sorted(c["loss"] for c in cells) == ["ce precision=bf16", "ce precision=fp32"]


def test_a_checkpoint_from_another_precision_is_not_resumed(runner, ner_dir, tiny_model,
                                                            tmp_path, monkeypatch):  # fmt: skip
    """A run name without a precision is fp32 on CPU and bf16 on CUDA: a checkpoint begun on
    CUDA (bf16) is not finished on a CPU in fp32 under the same name."""
    from noisebench.training import loop

    save = loop.save_checkpoint

    def save_then_stop(path, *rest):
        save(path, *rest)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_stop)
    args = train_args(ner_dir, tiny_model, tmp_path / "runs", "--epochs", 2, "--precision", "fp32")
    assert runner.invoke(app, args).exit_code == 130
    monkeypatch.setattr(loop, "save_checkpoint", save)
    (run_dir,) = (tmp_path / "runs").iterdir()
    state_file = run_dir / "checkpoint" / "state.pt"
    state = torch.load(state_file, weights_only=True)
    assert state["state"]["precision"] == "fp32"
    state["state"]["precision"] = "bf16"  # as the same run begun on a GPU records it
    torch.save(state, state_file)
    refused = runner.invoke(app, [*args, "--resume"])
    assert refused.exit_code == 2
    assert "its checkpoint trained in bf16" in refused.stderr.replace("\n", " ")
    assert not (run_dir / "results.json").exists()
