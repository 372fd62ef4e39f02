"""`noisebench sweep`: grids, resume, parallel jobs, Ray, sweeps sharing a runs folder, and
the project's own CI gate."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_ner_split

from noisebench.cli import app
from noisebench.errors import InputError
from noisebench.studies import backends, claims, sweep

BASELINE = Path(__file__).parent / "baselines" / "tiny-sweep.json"
REFRESH = os.environ.get("NOISEBENCH_REFRESH_BASELINE") == "1"


def test_grid_expansion_applies_q_and_s_where_they_belong_and_drops_duplicates():
    config = sweep.build_config(
        None,
        None,
        {
            "losses": ("ce", "mae", "gce", "sgce", "gce"),
            "q": (0.2, 0.4, 0.2),
            "s": (0.0, 0.1),
            "rates": (0.0, 0.4),
            "seeds": (0, 1),
        },
    )
    runs = sweep.expand(config)
    by_loss = {loss: [r for r in runs if r.loss == loss] for loss in ("ce", "mae", "gce", "sgce")}
    assert {loss: len(r) for loss, r in by_loss.items()} == {
        "ce": 4,
        "mae": 4,
        "gce": 8,
        "sgce": 16,
    }
    assert len(runs) == len(set(runs)) == 32
    assert all(r.q is None and r.s is None for r in by_loss["ce"] + by_loss["mae"])
    assert {r.q for r in by_loss["gce"]} == {0.2, 0.4} and {r.s for r in by_loss["gce"]} == {None}
    assert {(r.q, r.s) for r in by_loss["sgce"]} == {(0.2, 0.0), (0.2, 0.1), (0.4, 0.0), (0.4, 0.1)}
    assert {r.rate for r in runs} == {0.0, 0.4} and {r.seed for r in runs} == {0, 1}


def test_presets():
    study = sweep.expand(sweep.build_config("study", None, {}))
    assert len(study) == 6 * 6 * 3 + 3 * 5 * 3 * 3
    assert {r.rate for r in study if r.loss == "sgce"} == {0.0, 0.2, 0.6}
    quick = sweep.expand(sweep.build_config("quick", None, {}))
    assert [(r.data, r.loss, r.method, r.q, r.s, r.rate) for r in quick] == [
        ("noisebench:crowd", "ce", "none", None, None, 0.0),  # real noise
        ("noisebench:crowd", "gce", "none", 0.7, None, 0.0),
        ("noisebench:crowd", "sgce", "none", 0.7, 0.1, 0.0),
        ("noisebench:crowd", "ce", "mask-missing", None, None, 0.0),  # what works there
        ("noisebench:clean", "ce", "none", None, None, 0.1),  # simulated, the same level
        ("noisebench:clean", "sgce", "none", 0.7, 0.1, 0.1),
    ]
    assert {(r.model, r.seed, r.validation_labels) for r in quick} == {("minilm-l6", 0, "noisy")}
    assert {r.loss_warmup for r in quick} == {0.2}  # at 126 steps 10% left GCE/SGCE all-O
    assert {r.epochs for r in quick} == {6}  # the first budget at which no run still rose
    # --data replaces the preset's datasets everywhere
    mine = sweep.expand(sweep.build_config("quick", None, {"data": ("my.conll",)}))
    assert {r.data for r in mine} == {"my.conll"} and {r.rate for r in mine} == {0.0, 0.1}


def test_a_grid_may_name_its_own_datasets(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(
        'data = ["base.conll"]\n'
        '[[grid]]\nlosses = ["ce"]\nrates = [0.0]\ndata = ["real.conll"]\n'
        '[[grid]]\nlosses = ["ce"]\nrates = [0.2]\n'
    )
    runs = sweep.expand(sweep.build_config(None, path, {}))
    assert [(r.data, r.rate) for r in runs] == [("real.conll", 0.0), ("base.conll", 0.2)]
    path.write_text('[[grid]]\nlosses = ["ce"]\nnoise = "pair"\n')
    with pytest.raises(InputError, match="unknown grid key 'noise' \\(keys: data, losses"):
        sweep.build_config(None, path, {})


def test_one_study_across_several_datasets(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text('data = ["a.conll", "noisebench:crowd"]\nlosses = ["ce", "gce"]\n')
    config = sweep.build_config(None, path, {"rates": (0.0,)})
    runs = sweep.expand(config)
    assert [(r.data, r.loss) for r in runs] == [
        ("a.conll", "ce"), ("a.conll", "gce"),
        ("noisebench:crowd", "ce"), ("noisebench:crowd", "gce"),
    ]  # fmt: skip
    flags = sweep.build_config("quick", None, {"data": ("x.conll", "y.conll")})
    assert {r.data for r in sweep.expand(flags)} == {"x.conll", "y.conll"}
    assert len(sweep.expand(flags)) == 2 * len(sweep.expand(sweep.PRESETS["quick"]))
    with pytest.raises(InputError, match="--data: give at least one dataset"):
        sweep.build_config(None, None, {"data": ()})


def test_validation_labels_noisy_clean_or_both_in_one_study(tmp_path):
    assert sweep.PRESETS["quick"].validation_labels == ("noisy",)  # realistic by default
    both = sweep.build_config(None, None, {"validation_labels": ("noisy", "clean")})
    runs = sweep.expand(both)
    assert len(runs) == 2 * len(sweep.expand(sweep.SweepConfig()))
    assert {r.validation_labels for r in runs} == {"noisy", "clean"}
    noisy_run = next(r for r in runs if r.validation_labels == "noisy" and r.rate)
    assert "--validation-labels" not in sweep.train_command(noisy_run, "runs", resume=False)
    clean_run = next(r for r in runs if r.validation_labels == "clean")
    command = sweep.train_command(clean_run, "runs", resume=False)
    assert command[command.index("--validation-labels") + 1] == "clean"
    # corrupt once per (data, noise, rate, seed, validation noise): 0.0 and 0.4 x 2 labels
    assert len(sweep.unique_corruptions(runs)) == 3
    path = tmp_path / "study.toml"
    path.write_text('validation_labels = ["clean"]\n')
    assert sweep.build_config(None, path, {}).validation_labels == ("clean",)
    with pytest.raises(InputError, match="--validation-labels 'gold': choose noisy, clean"):
        sweep.build_config(None, None, {"validation_labels": ("gold",)})


def test_tuning_gives_every_loss_the_same_number_of_settings(tmp_path):
    tune = sweep.parse_tune(["lr=1e-5,5e-5,2e-4", "q=0.3,0.5,0.7"])
    assert tune == {"lr": [1e-5, 5e-5, 2e-4], "q": [0.3, 0.5, 0.7]}
    config = sweep.build_config(
        None, None, {"losses": ("ce", "gce", "sgce"), "rates": (0.4,), "tune": tune}
    )
    runs = sweep.expand(config)
    settings = {}
    for run in runs:
        settings.setdefault(run.loss, set()).add((run.lr, run.q, run.s))
    # ce can only vary lr (3 settings), so gce and sgce get 3 of their 9, drawn seeded
    assert {loss: len(found) for loss, found in settings.items()} == {"ce": 3, "gce": 3, "sgce": 3}
    assert {lr for lr, _, _ in settings["ce"]} == {1e-5, 5e-5, 2e-4}
    assert all(q in (0.3, 0.5, 0.7) and s == 0.1 for _, q, s in settings["sgce"])
    assert sweep.expand(config) == runs  # the same draw every time
    wide = sweep.build_config(None, None, {"losses": ("gce",), "tune": tune, "trials": 9})
    assert len({(r.lr, r.q) for r in sweep.expand(wide)}) == 9
    path = tmp_path / "tune.toml"
    path.write_text('losses = ["ce"]\nrates = [0.0]\n[tune]\nlr = [1e-5, 1e-4]\n')
    assert [r.lr for r in sweep.expand(sweep.build_config(None, path, {}))] == [1e-5, 1e-4]
    path.write_text("[tune]\nepochs = [1, 2]\n")
    with pytest.raises(InputError, match="cannot tune 'epochs' \\(tunable: lr, q, s\\)"):
        sweep.build_config(None, path, {})
    with pytest.raises(InputError, match="--tune 'lr': expected NAME=V1,V2"):
        sweep.parse_tune(["lr"])
    with pytest.raises(InputError, match="--trials needs --tune"):
        sweep.build_config(None, None, {"trials": 2})
    with pytest.raises(InputError, match=r"--tune lr: -1\.0 must be positive"):
        sweep.build_config(None, None, {"tune": {"lr": [-1.0]}})


def fake_nvidia_smi(monkeypatch, tmp_path, free_mb: list[int]) -> None:
    """An ``nvidia-smi`` on PATH that lists GPUs with this much free memory."""
    lines = [f"{i}, GPU-{i}aaaa-bbbb, {mb} MiB" for i, mb in enumerate(free_mb)]
    script = tmp_path / "bin" / "nvidia-smi"
    script.parent.mkdir(exist_ok=True)
    script.write_text("#!/bin/sh\nprintf '%s\\n' " + " ".join(f"'{x}'" for x in lines) + "\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}:{os.environ['PATH']}")


def test_jobs_auto_packs_runs_by_free_gpu_memory_and_cores(monkeypatch, runner, tmp_path):
    config = sweep.build_config(None, None, {})
    assert config.jobs == "auto"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no nvidia-smi: no GPU
    assert backends.gpu_slots(config) == [None]  # one process on all cores
    monkeypatch.setattr(backends.os, "cpu_count", lambda: 16)
    fake_nvidia_smi(monkeypatch, tmp_path, [140_000])
    assert backends.gpu_slots(config) == ["0"] * 12  # capped per GPU
    fake_nvidia_smi(monkeypatch, tmp_path, [5_000, 80_000])
    # memory-bound on GPU 0 (3), cores-bound on GPU 1 (16 / 2); the GPUs take turns
    assert backends.gpu_slots(config) == ["0", "1"] * 3 + ["1"] * 5
    assert backends.resolve_jobs(config) == 11
    fake_nvidia_smi(monkeypatch, tmp_path, [500])
    assert backends.gpu_slots(config) == ["0"]  # a nearly full GPU still runs one
    fake_nvidia_smi(monkeypatch, tmp_path, [80_000, 80_000, 3_000, 80_000])
    # the GPUs this process was given, by the ids it was given them (index or UUID)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,GPU-0aaaa")
    assert backends.gpu_slots(config) == ["2", "GPU-0aaaa"] + ["GPU-0aaaa"] * 7  # 1 fits on 2
    assert backends.gpu_slots(sweep.build_config(None, None, {"jobs": 3})) == [
        "2",
        "GPU-0aaaa",
        "2",
    ]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert backends.gpu_slots(config) == [None]  # an empty list hides every GPU
    environment = backends._environment(jobs=4, gpu="GPU-0aaaa")
    assert environment["CUDA_VISIBLE_DEVICES"] == "GPU-0aaaa"
    assert environment["OMP_NUM_THREADS"] == "4"
    with pytest.raises(InputError, match="--jobs 0: a number of processes"):
        sweep.build_config(None, None, {"jobs": 0})
    result = runner.invoke(app, ["sweep", "--jobs", "many", "--dry-run"])
    assert result.exit_code == 2
    assert "--jobs many: a number of processes (at least 1) or auto" in result.stderr


def test_toml_config_and_flags_override_it(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(
        'data = "my.conll"\nseeds = [0, 1]\nepochs = 5\n\n'
        '[[grid]]\nlosses = ["gce"]\nq = [0.2, 0.4]\nrates = [0.0, 0.2]\n\n'
        '[[grid]]\nlosses = ["sgce"]\nq = [0.8]\ns = [0.05]\nrates = [0.6]\n'
    )
    config = sweep.build_config(None, path, {"epochs": 2})
    assert config.data == ("my.conll",) and config.seeds == (0, 1) and config.epochs == 2
    runs = sweep.expand(config)
    assert len(runs) == 2 * 2 * 2 + 1 * 2
    assert {(r.loss, r.q, r.s, r.rate) for r in runs if r.loss == "sgce"} == {
        ("sgce", 0.8, 0.05, 0.6)
    }
    flat = tmp_path / "flat.toml"
    flat.write_text('losses = ["ce"]\nrates = [0.1]\n')
    assert [(r.loss, r.rate) for r in sweep.expand(sweep.build_config(None, flat, {}))] == [
        ("ce", 0.1)
    ]
    bad = tmp_path / "bad.toml"
    bad.write_text("epoch = 3\n")
    with pytest.raises(InputError, match=r"bad.toml: unknown key 'epoch'"):
        sweep.build_config(None, bad, {})
    broken = tmp_path / "broken.toml"
    broken.write_text("losses = [\n")
    with pytest.raises(InputError, match=r"broken.toml: invalid TOML"):
        sweep.build_config(None, broken, {})
    with pytest.raises(InputError, match=r"--losses: unknown loss 'focal'"):
        sweep.build_config(None, None, {"losses": ("focal",)})
    with pytest.raises(InputError, match=r"--rates: 1.5 is not a probability"):
        sweep.build_config(None, None, {"rates": (1.5,)})


def test_dry_run_prints_the_plan_and_writes_nothing(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["sweep", "--preset", "quick", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert len(plan) == 6 and {p["status"] for p in plan} == {"run"}
    assert plan[0]["run_dir"].startswith("runs/noisebench-crowd-")  # -conll03 offline
    # the crowd labels as given: no uniform noise was added, and the name says so
    assert "-given-ce-seed0-" in plan[0]["run_dir"] and "uniform" not in plan[0]["run_dir"]
    assert plan[4]["run_dir"].startswith("runs/noisebench-clean-")
    table = runner.invoke(app, ["sweep", "--preset", "study", "--dry-run"])
    assert table.exit_code == 0 and "243 runs" in table.stdout
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- real (tiny) sweeps


def toy_sweep_args(
    data: Path, model: Path, runs_dir: Path, *extra: str, epochs: int = 2
) -> list[str]:
    """The tiny sweep every test here runs: 2 losses x 2 rates, one seed, 2 epochs."""
    return [
        "sweep",
        "--data",
        str(data),
        "--model",
        str(model),
        "--losses",
        "ce,gce",
        "--q",
        "0.7",
        "--rates",
        "0,0.4",
        "--seeds",
        "0",
        "--epochs",
        "2",
        "--lr",
        "5e-3",
        "--batch-size",
        "16",
        # fp32: the tests compare runs made with one CPU thread each (--jobs 2, ray) with
        # runs made with two, and a reordered bf16 reduction moves F1 by 1e-4, fp32 by 1e-7
        "--precision",
        "fp32",
        "--runs-dir",
        str(runs_dir),
        *extra,
    ]


@pytest.fixture(scope="module")
def toy_study(tmp_path_factory, tiny_model):
    """A tiny deterministic sweep, run once with --jobs 1 and once with --jobs 2."""
    root = tmp_path_factory.mktemp("sweep")
    data = root / "toyner"
    data.mkdir()
    write_ner_split(data / "train.txt", 160, seed=1)
    write_ner_split(data / "valid.txt", 40, seed=2)
    write_ner_split(data / "test.txt", 40, seed=3)
    from typer.testing import CliRunner

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NOISEBENCH_HOME", str(root / "home"))
        results = {}
        for jobs in (1, 2):
            runs_dir = root / f"runs-jobs{jobs}"
            result = CliRunner().invoke(
                app, toy_sweep_args(data, tiny_model, runs_dir, "--jobs", str(jobs), "--json")
            )
            results[jobs] = (runs_dir, result)
    return root, data, results


def leaderboard_json(runner, runs_dir, *extra):
    result = runner.invoke(app, ["leaderboard", str(runs_dir), "--json", *map(str, extra)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_sweep_trains_every_run_once(toy_study):
    _, _, results = toy_study
    runs_dir, result = results[1]
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert len(outcome["completed"]) == 4 and outcome["failed"] == [] and outcome["skipped"] == []
    assert len([p for p in runs_dir.iterdir() if (p / "results.json").exists()]) == 4


@pytest.mark.slow
def test_jobs_2_gives_the_same_leaderboard_as_jobs_1(runner, toy_study):
    _, _, results = toy_study
    assert results[2][1].exit_code == 0, results[2][1].output
    one = leaderboard_json(runner, results[1][0])["entries"]
    two = leaderboard_json(runner, results[2][0])["entries"]
    assert_same_entries(one, two)


def assert_same_entries(one: list[dict], two: list[dict]) -> None:
    """Equal keys and counts; means equal up to float noise (--jobs 2 gives each run one
    CPU thread instead of two, which may reorder a float reduction)."""
    assert [{k: v for k, v in e.items() if k not in ("mean", "std")} for e in one] == [
        {k: v for k, v in e.items() if k not in ("mean", "std")} for e in two
    ]
    for a, b in zip(one, two, strict=True):
        assert a["mean"] == pytest.approx(b["mean"], rel=1e-5, abs=1e-6), a


@pytest.mark.slow
def test_without_a_terminal_each_finished_run_prints_a_plain_line(toy_study):
    _, _, results = toy_study
    lines = [line for line in results[1][1].stderr.splitlines() if line.startswith("sweep: ")]
    assert [line.split()[1] for line in lines] == ["1/4", "2/4", "3/4", "4/4"]
    assert all(" completed " in line and line.endswith(" s in)") for line in lines)


@pytest.mark.slow
def test_rerun_skips_complete_runs_and_reruns_incomplete_ones(
    runner, toy_study, tmp_path, monkeypatch, tiny_model
):
    root, data, results = toy_study
    runs_dir = tmp_path / "runs"
    shutil.copytree(results[1][0], runs_dir)
    broken = sorted(runs_dir.iterdir())[0]
    (broken / "results.json").unlink()
    monkeypatch.setenv("NOISEBENCH_HOME", str(root / "home"))
    args = toy_sweep_args(data, tiny_model, runs_dir)
    plan = json.loads(runner.invoke(app, [*args, "--dry-run", "--json"]).stdout)
    assert sorted(p["status"] for p in plan) == ["done", "done", "done", "run"]
    again = runner.invoke(app, [*args, "--json"])
    assert again.exit_code == 0, again.output
    outcome = json.loads(again.stdout)
    assert outcome["completed"] == [str(broken)] and len(outcome["skipped"]) == 3
    assert_same_entries(
        leaderboard_json(runner, runs_dir)["entries"],
        leaderboard_json(runner, results[1][0])["entries"],
    )


@pytest.mark.slow
def test_the_projects_own_ci_gate(runner, toy_study, tmp_path):
    """The committed baseline guards the training pipeline end to end. Refresh it with
    NOISEBENCH_REFRESH_BASELINE=1 python -m pytest tests/test_sweep.py -k ci_gate"""
    _, _, results = toy_study
    runs_dir = results[1][0]
    if REFRESH:
        assert (
            runner.invoke(
                app, ["leaderboard", str(runs_dir), "--save-baseline", str(BASELINE)]
            ).exit_code
            == 0
        )
    gate = runner.invoke(
        app,
        [
            "leaderboard",
            str(runs_dir),
            "--baseline",
            str(BASELINE),
            "--fail-on",
            "f1:-5",
            "--fail-on",
            "ece:+0.05",
            "--fail-on",
            "mce:+0.15",
            "--strict",
        ],
    )
    assert gate.exit_code == 0, gate.output
    assert "gate passed" in gate.stdout


@pytest.mark.slow
def test_ray_backend_runs_the_same_sweep(runner, toy_study, tmp_path, monkeypatch, tiny_model):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'noisebench[ray]')")
    root, data, results = toy_study
    monkeypatch.setenv("NOISEBENCH_HOME", str(root / "home"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    runs_dir = tmp_path / "runs"
    result = runner.invoke(
        app, toy_sweep_args(data, tiny_model, runs_dir, "--backend", "ray", "--json")
    )
    import ray

    ray.shutdown()
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["completed"]) == 4
    assert_same_entries(
        leaderboard_json(runner, runs_dir)["entries"],
        leaderboard_json(runner, results[1][0])["entries"],
    )


# Each fake run writes what it was given, then waits until both have started, so the two
# hold their GPUs at the same time.
RECORD_ENVIRONMENT = """
import os, pathlib, sys, time
seen = pathlib.Path(sys.argv[1])
(seen / sys.argv[2]).write_text(
    os.environ["CUDA_VISIBLE_DEVICES"] + " " + os.environ.get("NOISEBENCH_HOME", "-")
    + " " + str("DRIVER_ONLY" in os.environ)
)
deadline = time.monotonic() + 60
while len(list(seen.iterdir())) < 2 and time.monotonic() < deadline:
    time.sleep(0.05)
"""


@pytest.mark.slow
def test_ray_tasks_run_on_the_gpu_ray_gave_them(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'noisebench[ray]')")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("NOISEBENCH_HOME", str(tmp_path / "home"))
    seen = tmp_path / "seen"
    seen.mkdir()
    monkeypatch.setattr(
        backends,
        "train_command",
        lambda run, runs_dir, resume: [
            sys.executable,
            "-c",
            RECORD_ENVIRONMENT,
            str(seen),
            run.loss,
        ],
    )
    todo = [
        sweep.PlannedRun(sweep.TrainConfig(loss=loss), tmp_path / loss, "run")
        for loss in ("ce", "mae")
    ]
    outcome = backends.SweepOutcome()
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # the driver's own GPU, set after the
    monkeypatch.setenv("DRIVER_ONLY", "1")  # cluster started: only shipping passes them on
    try:
        backends._run_with_ray(
            sweep.SweepConfig(runs_dir=str(tmp_path)), todo, outcome, lambda *_: None
        )
    finally:
        ray.shutdown()
    assert outcome.failed == [] and len(outcome.completed) == 2
    recorded = {path.name: path.read_text().split() for path in seen.iterdir()}
    gpus = sorted(words[0] for words in recorded.values())
    assert gpus == ["0", "1"], recorded
    assert all(words[1:] == [str(tmp_path / "home"), "False"] for words in recorded.values())


# The sweep, with Ctrl-C's signal sent to itself right after the first checkpoint is
# written: the interrupt lands at a known step, whatever the machine's load.
INTERRUPT_AFTER_FIRST_CHECKPOINT = """
import os, signal, sys
# Ctrl-C raises KeyboardInterrupt even where the suite runs in a background job, whose
# children inherit SIGINT ignored (Python then keeps it ignored)
signal.signal(signal.SIGINT, signal.default_int_handler)
from noisebench.training import loop as train
save = train.save_checkpoint
def save_then_interrupt(*args):
    save(*args)
    os.kill(os.getpid(), signal.SIGINT)
train.save_checkpoint = save_then_interrupt
from noisebench.cli import app
app(args=sys.argv[1:], prog_name="noisebench")
"""


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_a_rerun_resumes(runner, toy_study, tmp_path, tiny_model):
    root, data, _ = toy_study
    runs_dir = tmp_path / "runs"
    args = toy_sweep_args(data, tiny_model, runs_dir, epochs=2)
    environment = dict(os.environ, NOISEBENCH_HOME=str(root / "home"))
    sweep_process = subprocess.Popen(
        [sys.executable, "-c", INTERRUPT_AFTER_FIRST_CHECKPOINT, *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, errors = sweep_process.communicate(timeout=120)
    assert sweep_process.returncode == 130, errors
    assert "sweep stopped; run the same command again to resume" in errors
    started = [p for p in runs_dir.iterdir() if p.is_dir()]
    assert started and not any((p / "results.json").exists() for p in started)
    assert any((p / "checkpoint" / "state.pt").exists() for p in started)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NOISEBENCH_HOME", str(root / "home"))
        plan = json.loads(runner.invoke(app, [*args, "--dry-run", "--json"]).stdout)
        assert "resume" in {p["status"] for p in plan}
        again = runner.invoke(app, [*args, "--json"])
    assert again.exit_code == 0, again.output
    assert len(json.loads(again.stdout)["completed"]) == 4
    assert all(
        (p / "results.json").exists() and not (p / "checkpoint").exists()
        for p in runs_dir.iterdir()
    )


@pytest.mark.slow
def test_two_sweeps_on_one_runs_folder_divide_its_runs(toy_study, tiny_model, tmp_path):
    """Two sweeps of one grid started together on one runs folder (two terminals, CI jobs
    or machines on a shared disk): each run is trained once, by one of them, and both end
    with the whole grid. The toy study's rate-0 runs, in its cache (corrupted copies made)."""
    root, data, results = toy_study
    runs_dir = tmp_path / "runs"
    args = toy_sweep_args(data, tiny_model, runs_dir, "--rates", "0", "--json")
    environment = dict(os.environ, NOISEBENCH_HOME=str(root / "home"))
    sweeps = [
        subprocess.Popen(
            [sys.executable, "-m", "noisebench", *args],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    finished = [process.communicate(timeout=300) for process in sweeps]
    assert [process.returncode for process in sweeps] == [0, 0], finished
    run_dirs = sorted(str(p) for p in runs_dir.iterdir())
    assert len(run_dirs) == 2  # the claims went with the runs
    outcomes = [json.loads(out) for out, _ in finished]
    assert sorted(d for outcome in outcomes for d in outcome["completed"]) == run_dirs
    for outcome in outcomes:
        assert sorted(outcome["completed"] + outcome["skipped"] + outcome["elsewhere"]) == run_dirs
    for sweep_process, (_, errors) in zip(sweeps, finished[::-1], strict=True):
        waits = [line for line in errors.splitlines() if "running elsewhere (" in line]
        assert all(f", pid {sweep_process.pid})" in line for line in waits), errors
    for run_dir in map(Path, run_dirs):  # one training's step lines each, not two
        steps = (run_dir / "log.jsonl").read_text().splitlines()
        trained_once = (results[1][0] / run_dir.name / "log.jsonl").read_text().splitlines()
        assert len(steps) == len(trained_once) > 0, run_dir.name


def test_runs_held_elsewhere_are_waited_for_and_those_left_unfinished_trained(tmp_path):
    """A sweep waiting for runs another sweep held: a finished one counts as completed
    elsewhere, a live claim is waited for, one whose process is gone is taken over and
    its checkpoint resumed."""
    from noisebench.training import runs

    finished, abandoned, running = (
        sweep.PlannedRun(sweep.TrainConfig(loss=loss), tmp_path / loss, "run")
        for loss in ("ce", "gce", "mae")
    )
    (tmp_path / "ce").mkdir()
    runs.write_json(tmp_path / "ce" / runs.RESULTS, {"schema_version": runs.SCHEMA_VERSION})
    (tmp_path / "gce" / runs.CHECKPOINT).mkdir(parents=True)
    (tmp_path / "gce" / runs.CHECKPOINT / "state.pt").write_bytes(b"")
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    here = {"host": claims._HOST, "pid_namespace": claims._pid_namespace(), "token": "x"}
    claims.claim_file(abandoned.run_dir).write_text(json.dumps({"pid": gone.pid, **here}))
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        claims.claim_file(running.run_dir).write_text(json.dumps({"pid": holder.pid, **here}))
        outcome = backends.SweepOutcome(held=[finished, abandoned, running])
        reports = []
        free = backends._released(outcome, lambda item, status: reports.append(status))
        assert free == [abandoned] and outcome.held == [running]
        assert outcome.elsewhere == [finished.run_dir] and reports == ["completed elsewhere"]
        trained = backends._attempt(abandoned, lambda item: (0, item.status))
        assert trained == (dataclasses.replace(abandoned, status="resume"), 0, "resume")
        assert backends._attempt(running, lambda item: (0, "")) == (
            running,
            None,
            f"{claims._HOST}, pid {holder.pid}",
        )
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in tmp_path.glob(".*")) == [".mae.claim"]  # gce's released


def test_the_sweep_summary_counts_degenerate_runs(tmp_path):
    learned, collapsed, incomplete = (tmp_path / name for name in ("a", "b", "c"))
    for folder, degenerate in ((learned, None), (collapsed, {"test": {"reason": "x"}})):
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps({"degenerate": degenerate}))
    incomplete.mkdir()
    outcome = backends.SweepOutcome(completed=[learned, collapsed], skipped=[incomplete])
    assert outcome.degenerate() == [collapsed]


def test_dry_run_refuses_what_the_sweep_would_refuse(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    unknown = runner.invoke(
        app, ["sweep", "--data", "conll2003,nope-data", "--losses", "ce", "--dry-run"]
    )
    assert unknown.exit_code == 2
    assert unknown.stderr.strip() == (
        "error: no such file or directory: 'nope-data' (built-in datasets: conll2003,"
        " noisebench:<variant>)"
    )
    for data, message in (
        ("noisebench:crowdd", "unknown NoiseBench variant 'crowdd'"),
        ("noisebench", "'noisebench' has 7 label sets: name one"),
        ("minilm-l6", "'minilm-l6' is a built-in model, not a dataset"),
    ):
        result = runner.invoke(app, ["sweep", "--data", data, "--dry-run"])
        assert result.exit_code == 2 and message in result.stderr, result.output
    broken = tmp_path / "broken.conll"
    broken.write_text("EU B-ORG\nrejects\n")
    result = runner.invoke(app, ["sweep", "--data", str(broken), "--dry-run"])
    assert (
        result.exit_code == 2 and "broken.conll:2: expected 2 columns like line 1" in result.stderr
    )
    model = runner.invoke(app, ["sweep", "--model", "nope-model", "--dry-run"])
    assert model.exit_code == 2 and "--model 'nope-model': no such folder" in model.stderr
    assert list(tmp_path.iterdir()) == [broken]  # nothing planned was written


def test_tuning_a_setting_no_loss_takes_is_refused(runner):
    result = runner.invoke(app, ["sweep", "--losses", "ce", "--tune", "q=0.3,0.7", "--dry-run"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: --tune q: no loss in the study takes q (losses: ce); only gce, sgce do"
    )
    with pytest.raises(InputError, match=r"--tune s: no loss in the study takes s \(losses:"):
        sweep.build_config(None, None, {"losses": ("ce", "gce"), "tune": {"s": [0.1]}})
    tuned = sweep.build_config(None, None, {"losses": ("ce", "gce"), "tune": {"q": [0.3]}})
    assert {(r.loss, r.q) for r in sweep.expand(tuned)} == {("ce", None), ("gce", 0.3)}


@pytest.mark.slow
def test_runs_in_the_sweeps_process_equal_runs_in_their_own(toy_study, tiny_model, tmp_path):
    """--jobs 1 trains in the sweep's process: the same numbers as a `noisebench train`
    process with the threads it would have had."""
    root, data, results = toy_study
    runs_dir, _ = results[1]
    in_process = next(p for p in sorted(runs_dir.iterdir()) if "-uniform0.40-gce-" in p.name)
    command = [  # the toy sweep's gce run at rate 0.4, in a process of its own
        sys.executable, "-m", "noisebench", "train", "--data", str(data), "--model",
        str(tiny_model), "--loss", "gce", "--q", "0.7", "--rate", "0.4", "--epochs", "2",
        "--lr", "5e-3", "--batch-size", "16", "--precision", "fp32", "--runs-dir",
        str(tmp_path / "own"), "--json",
    ]  # fmt: skip
    environment = dict(
        os.environ, NOISEBENCH_HOME=str(root / "home"), OMP_NUM_THREADS=str(os.cpu_count())
    )
    finished = subprocess.run(command, env=environment, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    own = json.loads(finished.stdout)
    assert Path(own["run_dir"]).name == in_process.name
    shared = json.loads((in_process / "results.json").read_text())
    assert own["splits"] == shared["splits"]
    assert own["train"]["history"] == shared["train"]["history"]


def test_methods_are_a_grid_dimension(runner, tmp_path):
    config = sweep.build_config(
        None, None, {"losses": ("ce", "gce"), "methods": ("none", "mask-missing"), "rates": (0.2,)}
    )
    planned = {(r.loss, r.method) for r in sweep.expand(config)}
    assert planned == {(loss, m) for loss in ("ce", "gce") for m in ("none", "mask-missing")}
    command = sweep.train_command(sweep.expand(config)[1], "runs", False)
    assert command[command.index("--method") + 1] == "mask-missing"
    study = tmp_path / "study.toml"
    study.write_text('[[grid]]\nlosses = ["ce"]\nmethods = ["oracle-clean"]\nrates = [0.1]\n')
    assert [r.method for r in sweep.expand(sweep.build_config(None, study, {}))] == ["oracle-clean"]
    with pytest.raises(InputError, match="--methods: unknown method 'focal'"):
        sweep.build_config(None, None, {"methods": ("focal",)})


def test_span_smoothing_is_a_grid_dimension(tmp_path):
    config = sweep.build_config(
        None, None, {"losses": ("ce",), "span_smoothing": (0.0, 0.1), "rates": (0.0,)}
    )
    runs_planned = sweep.expand(config)
    assert [r.span_smoothing for r in runs_planned] == [0.0, 0.1]
    plain, smoothed = (sweep.train_command(r, "runs", False) for r in runs_planned)
    assert "--span-smoothing" not in plain
    assert smoothed[smoothed.index("--span-smoothing") + 1] == "0.1"
    study = tmp_path / "study.toml"
    study.write_text('span_smoothing = [0.2]\nlosses = ["ce"]\nrates = [0.0]\n')
    assert [r.span_smoothing for r in sweep.expand(sweep.build_config(None, study, {}))] == [0.2]
    with pytest.raises(InputError, match=r"--span-smoothing: 1 must be in \[0, 1\)"):
        sweep.build_config(None, None, {"span_smoothing": (1.0,)})


def test_own_data_without_rates_trains_the_labels_as_given(runner, tmp_path, monkeypatch):
    """The README's recipe for labels without a clean copy gives no --rates: the plan trains
    the labels as given, and says so, instead of adding 40% uniform noise."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "my-ner.conll"
    data.write_text("John B-PER\nleft O\n\nParis B-LOC\n")
    args = ["sweep", "--data", str(data), "--losses", "ce", "--methods", "none,mask-missing",
            "--seeds", "0", "--dry-run", "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert len(plan) == 2 and not any("0.40" in p["run_dir"] for p in plan), plan
    assert "my-ner.conll: your own labels (no clean copy), trained as given (rate 0" in " ".join(
        result.stderr.split()
    )
    noisy = json.loads(runner.invoke(app, [*args, "--rates", "0,0.4"]).stdout)
    assert len(noisy) == 4 and sum("uniform0.40" in p["run_dir"] for p in noisy) == 2
    asked = runner.invoke(app, [*args, "--rates", "0.4"])
    assert [p["rate"] for p in json.loads(asked.stdout)] == [0.4, 0.4]
    assert "trained as given" not in asked.stderr
    # built-in data keeps the default rates: the study corrupts clean labels
    assert sweep.build_config(None, None, {}).grids[0].rates == (0.0, 0.4)
    assert sweep.build_config(None, None, {"data": (str(data),)}).grids[0].rates == (0.0,)


def test_the_default_rates_corrupt_only_data_with_clean_labels(runner, tmp_path, monkeypatch):
    """Without --rates a corrupted copy (it has clean_tags) keeps the default rates, the
    user's labels beside it in one sweep are trained as given, and a noise that needs no
    rate (--matrix) is not refused for rates nobody gave."""
    monkeypatch.chdir(tmp_path)
    own = tmp_path / "my-ner.conll"
    own.write_text("John B-PER\nleft O\n\nParis B-LOC\n")
    copy = tmp_path / "noisy"
    made = runner.invoke(app, ["corrupt", "--data", str(own), "--rate", "0.2", "--out", str(copy)])
    assert made.exit_code == 0, made.output
    assert sweep.build_config(None, None, {"data": (str(copy),)}).grids[0].rates == (0.0, 0.4)
    args = ["sweep", "--data", f"{copy},{own}", "--losses", "ce", "--seeds", "0", "--dry-run"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    planned = [(Path(p["data"]).name, p["rate"]) for p in json.loads(result.stdout)]
    assert planned == [("noisy", 0.0), ("noisy", 0.4), ("my-ner.conll", 0.0)]
    note = " ".join(result.stderr.split())
    assert f"note: {own}: your own labels (no clean copy), trained as given" in note
    table = runner.invoke(app, args, terminal_width=200).stdout
    assert "Sweep plan: 3 runs" in table and table.count("0.40") == 1
    matrix = tmp_path / "flips.json"
    matrix.write_text(json.dumps({"B-PER": {"B-PER": 0.8, "B-LOC": 0.2}}))
    flipped = runner.invoke(
        app, ["sweep", "--data", str(own), "--matrix", str(matrix), "--dry-run"]
    )
    assert flipped.exit_code == 0 and "trained as given" not in flipped.stderr, flipped.output
