"""`noisebench train` and `noisebench score` end to end, on a tiny BERT built here."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from noisebench.cli import app
from noisebench.errors import InputError
from noisebench.training import evaluate, memory, runs
from noisebench.training import loop as training
from noisebench.training.config import TrainConfig

LOSSES = [
    ("ce", []),
    ("mae", []),
    ("gce", ["--q", "0.7"]),
    ("sgce", ["--q", "0.7", "--s", "0.1"]),
    ("sce", []),
    ("nce+rce", []),
]
SPLIT_KEYS = {
    "f1",
    "f1_interval",
    "precision",
    "recall",
    "per_type",
    "ece",
    "mce",
    "ece_equal_mass",
    "entity_ece_equal_mass",
    "brier",
    "nll",
    "n_sentences",
    "n_words",
    "n_entities",
    "n_unscored_words",
    "reliability",
    "degenerate",
    "entity_word_ece",
    "entity_ece",
    "entity_mce",
}
TRAIN_KEYS = {
    "epochs_run",
    "best_epoch",
    "seconds",
    "sentences_per_second",
    "tokens_per_second",
    "device",
    "peak_memory_mb",
    "peak_memory_scope",
    "steps",
    "history",
    "validation_labels",
    "label_noise",
    "first_step_seconds",
    "compiled",
    "hardware",
}


def train_args(ner_dir, tiny_model, runs_dir, *extra):
    return [
        "train",
        "--data",
        str(ner_dir),
        "--model",
        str(tiny_model),
        "--runs-dir",
        str(runs_dir),
        "--lr",
        "5e-3",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--json",
        *map(str, extra),
    ]


def run_train(runner, *args):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    return Path(document["run_dir"]), document


def scores(results: dict) -> dict:
    return {split: {k: v for k, v in s.items()} for split, s in results["splits"].items()}


@pytest.mark.parametrize(("loss", "options"), LOSSES)
def test_every_loss_trains_end_to_end(runner, ner_dir, tiny_model, tmp_path, loss, options):
    run_dir, results = run_train(
        runner,
        *train_args(
            ner_dir, tiny_model, tmp_path / "runs", "--loss", loss, *options, "--epochs", 2
        ),
    )
    assert run_dir.parent == tmp_path / "runs"
    assert run_dir.name.startswith("ner") and f"-given-{loss}-" in run_dir.name
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "config.json",
        "log.jsonl",
        "predictions-test.parquet",
        "predictions-validation.parquet",
        "reliability-test.png",
        "reliability-validation.png",
        "results.json",
    ]
    assert results["schema_version"] == 1
    assert set(results["splits"]) == {"validation", "test"}
    assert set(results["splits"]["test"]) == SPLIT_KEYS
    assert set(results["train"]) >= TRAIN_KEYS
    assert results["train"]["device"] == "cpu" and results["train"]["epochs_run"] == 2
    assert results["train"]["hardware"]["threads"] == torch.get_num_threads()
    assert results["train"]["hardware"]["processor"]  # the CPU's model name
    assert results["labels"] == ["O", "B-LOC", "B-ORG", "B-PER"] and results["scheme"] == "IOB2"
    test = results["splits"]["test"]
    assert test["n_sentences"] == 40 and test["n_unscored_words"] == 0
    assert 0 <= test["ece"] <= test["mce"] <= 1
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert len(log) == results["train"]["steps"] == 2 * 10
    first, last = log[:5], log[-5:]
    assert sum(e["loss"] for e in last) < sum(e["loss"] for e in first)  # the loss decreases
    assert results["train"]["history"][-1]["validation_f1"] > 0.5  # and the model learned


def test_predictions_parquet_layout(runner, ner_dir, tiny_model, tmp_path):
    run_dir, results = run_train(
        runner, *train_args(ner_dir, tiny_model, tmp_path, "--loss", "ce", "--epochs", 1)
    )
    table = pq.read_table(run_dir / "predictions-test.parquet")
    assert table.column_names == ["tokens", "gold", "pred", "confidence", "probs"]
    assert json.loads(table.schema.metadata[b"noisebench"])["labels"] == results["labels"]
    row = table.slice(0, 1).to_pylist()[0]
    assert len(row["tokens"]) == len(row["gold"]) == len(row["pred"]) == len(row["confidence"])
    assert all(len(p) == 4 and abs(sum(p) - 1) < 1e-5 for p in row["probs"])
    labels = results["labels"]
    for pred, confidence, probs in zip(row["pred"], row["confidence"], row["probs"], strict=True):
        assert confidence == max(probs) and pred == labels[probs.index(max(probs))]
    assert table.num_rows == results["splits"]["test"]["n_sentences"]


def test_same_seed_same_metrics_and_score_reproduces_train(runner, ner_dir, tiny_model, tmp_path):
    args = (
        "--loss",
        "sgce",
        "--q",
        "0.7",
        "--s",
        "0.1",
        "--epochs",
        2,
        "--calibrate",
        "temperature",
    )
    first_dir, first = run_train(runner, *train_args(ner_dir, tiny_model, tmp_path / "a", *args))
    _, second = run_train(runner, *train_args(ner_dir, tiny_model, tmp_path / "b", *args))
    assert scores(first) == scores(second)
    assert first["calibration"] == second["calibration"]
    assert first["calibration"]["method"] == "temperature"
    rescored = runner.invoke(app, ["score", str(first_dir), "--json"])
    assert rescored.exit_code == 0, rescored.output
    document = json.loads(rescored.stdout)[0]
    assert scores(document) == scores(first)
    assert document["calibration"] == first["calibration"]
    assert runs.read_json(first_dir / "results.json")["splits"] == first["splits"]
    table = runner.invoke(app, ["score", str(first_dir), "--bins", "5"])
    assert table.exit_code == 0 and "test" in table.stdout
    assert len(runs.read_json(first_dir / "results.json")["splits"]["test"]["reliability"]) == 5


def test_resume_reaches_the_same_results(runner, ner_dir, tiny_model, tmp_path, monkeypatch):
    args = ("--loss", "gce", "--q", "0.5", "--epochs", 3, "--patience", 5)
    _, uninterrupted = run_train(runner, *train_args(ner_dir, tiny_model, tmp_path / "a", *args))

    save = training.save_checkpoint

    def save_then_stop(path, *rest):
        save(path, *rest)
        raise KeyboardInterrupt  # the machine went away right after epoch 1's checkpoint

    monkeypatch.setattr(training, "save_checkpoint", save_then_stop)
    interrupted = runner.invoke(app, train_args(ner_dir, tiny_model, tmp_path / "b", *args))
    assert interrupted.exit_code == 130
    assert "continue with --resume" in interrupted.stderr
    run_dir = next((tmp_path / "b").iterdir())
    assert not (run_dir / "results.json").exists()
    assert (run_dir / "checkpoint" / "state.pt").is_file()
    monkeypatch.setattr(training, "save_checkpoint", save)
    _, resumed = run_train(
        runner, *train_args(ner_dir, tiny_model, tmp_path / "b", *args, "--resume")
    )
    assert scores(resumed) == scores(uninterrupted)
    assert resumed["train"]["history"] == uninterrupted["train"]["history"]
    assert not (run_dir / "checkpoint").exists()
    log = (run_dir / "log.jsonl").read_text().splitlines()
    assert len(log) == resumed["train"]["steps"] == 30


class _Planted:
    """A pickle that runs code when loaded: what a crafted run folder could hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_resume_refuses_a_checkpoint_that_would_run_code(
    runner, ner_dir, tiny_model, tmp_path, monkeypatch
):
    args = ("--loss", "ce", "--epochs", 2)
    save = training.save_checkpoint

    def save_then_stop(path, *rest):
        save(path, *rest)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_checkpoint", save_then_stop)
    runner.invoke(app, train_args(ner_dir, tiny_model, tmp_path, *args))
    monkeypatch.setattr(training, "save_checkpoint", save)
    checkpoint = next(tmp_path.glob("*/checkpoint/state.pt"))
    marker = tmp_path / "code-ran"
    saved = torch.load(checkpoint, weights_only=True)
    saved["state"]["history"].append(_Planted(marker))
    torch.save(saved, checkpoint)
    refused = runner.invoke(app, train_args(ner_dir, tiny_model, tmp_path, *args, "--resume"))
    assert refused.exit_code == 2
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "it names getattr" in errors[0]
    assert f"{checkpoint}: refused: holds more than tensors and plain values" in refused.stderr
    assert not marker.exists()


def test_a_checkpoint_keeps_the_gpus_random_state(tmp_path, monkeypatch):
    gpu_state = torch.arange(4, dtype=torch.uint8)
    restored = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda: gpu_state)
    monkeypatch.setattr(torch.cuda, "set_rng_state", restored.append)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    path = tmp_path / "checkpoint" / "state.pt"
    state = {"epoch": 1, "best_f1": np.float64(0.5), "method": {"pending": [np.ones(2)]}}
    training.save_checkpoint(path, model, optimizer, schedule, state)
    loaded = training.load_checkpoint(path, model, optimizer, schedule)
    assert [t.tolist() for t in restored] == [[0, 1, 2, 3]]
    assert loaded["best_f1"] == 0.5 and type(loaded["best_f1"]) is float
    assert loaded["method"]["pending"][0].tolist() == [1.0, 1.0]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="saved on a GPU; resume it where one is visible"):
        training.load_checkpoint(path, model, optimizer, schedule)


def test_a_complete_run_is_not_trained_again(runner, ner_dir, tiny_model, tmp_path):
    args = train_args(ner_dir, tiny_model, tmp_path, "--loss", "ce", "--epochs", 1)
    run_dir, _ = run_train(runner, *args)
    before = (run_dir / "results.json").stat().st_mtime_ns
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "already complete" in again.stderr
    assert (run_dir / "results.json").stat().st_mtime_ns == before


def test_saved_model_scores_other_data(runner, ner_dir, tiny_model, tmp_path):
    run_dir, _ = run_train(
        runner,
        *train_args(
            ner_dir, tiny_model, tmp_path / "runs", "--loss", "ce", "--epochs", 2, "--save-model"
        ),
    )
    assert (run_dir / "model" / "config.json").is_file()
    other = tmp_path / "other.txt"
    other.write_text("mary B-PER\nvisited O\nberlin B-LOC\n\nacme B-ORG\n")
    result = runner.invoke(
        app, ["score", "--model", str(run_dir), "--data", str(other), "--split", "train", "--json"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)[0]
    assert document["splits"]["train"]["n_words"] == 4
    assert (run_dir / "eval" / "other" / "predictions-train.parquet").is_file()
    # --precision: the forward pass in the format asked for, said in the results
    for precision in ("fp32", "bf16"):
        args = ["--split", "train", "--precision", precision, "--json"]
        scored = runner.invoke(app, ["score", "--model", str(run_dir), "--data", str(other), *args])
        assert json.loads(scored.stdout)[0]["precision"] == precision
    # data with a review: its reviewed sentences scored apart, as a run's own splits are
    import datasets
    import pyarrow as pa

    from noisebench.data import loading

    # (its labels in another order than the model's: the reviewed ones follow the given)
    split = loading.load(other)["train"]
    names = loading.label_names(split)
    order = names[::-1]
    remap = pa.array([order.index(n) for n in names], pa.int64())
    given, offsets = loading.flat_tags(split)
    tags = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), remap.take(given))
    reviewed = loading.make_split(
        split.data.table.column("tokens").combine_chunks(), tags, order,
        reviewed=pa.array([True, True]), reviewed_tags=tags,
        review_draw=pa.array(["sample", "sample"], pa.string()),
    )  # fmt: skip
    loading.write_parquet(datasets.DatasetDict({"train": reviewed}), tmp_path / "reviewed")
    args = ["--data", str(tmp_path / "reviewed"), "--split", "train", "--json"]
    scored = runner.invoke(app, ["score", "--model", str(run_dir), *args])
    scores = json.loads(scored.stdout)[0]["splits"]["train"]
    # every sentence reviewed with its given labels: the reviewed scores are the split's
    assert scores["reviewed"]["n_sentences"] == 2 and scores["reviewed"]["n_words"] == 4
    assert scores["reviewed"]["f1"] == scores["f1"]
    assert scores["reviewed"]["per_type"] == scores["per_type"]
    assert scores["review"]["left_out"] == 0 and not scores["review"]["designed"]
    bad = tmp_path / "pos.txt"
    bad.write_text("mary NN\nvisited VB\n")
    refused = runner.invoke(
        app, ["score", "--model", str(run_dir), "--data", str(bad), "--split", "train"]
    )
    assert refused.exit_code == 2
    assert "label set ['NN', 'VB'] differs from the model's" in refused.stderr


def test_non_finite_loss_stops_the_run_with_exit_1(runner, ner_dir, tiny_model, tmp_path):
    result = runner.invoke(
        app,
        train_args(ner_dir, tiny_model, tmp_path, "--loss", "ce", "--epochs", 1, "--lr", "1e30"),
    )
    assert result.exit_code == 1, result.output
    assert "run failed: loss became" in result.stderr
    run_dir = next(tmp_path.iterdir())
    assert not (run_dir / "results.json").exists()


def bad_train_inputs(ner_dir, tiny_model, tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    import datasets

    for split, names in (("train", ["O", "B-X"]), ("test", ["O", "B-Y"])):
        features = datasets.Features(
            {
                "tokens": datasets.List(datasets.Value("string")),
                "tags": datasets.List(datasets.ClassLabel(names=names)),
            }
        )
        dataset = datasets.Dataset.from_dict({"tokens": [["a"]], "tags": [[1]]}, features=features)
        dataset.to_parquet(str(mixed / f"{split}.parquet"))
    cases = [
        (["--loss", "focal"], "--loss focal: unknown loss 'focal'"),
        (["--loss", "gce", "--q", "-1"], "q must be a finite number >= 0"),
        (["--loss", "sgce", "--s", "1.0"], "s (label smoothing) must be in [0, 1)"),
        (["--loss", "ce", "--q", "0.5"], "loss 'ce' takes no q"),
        (["--loss", "ce", "--data", str(tmp_path / "nope")], "no such file or directory"),
        (["--loss", "ce", "--model", str(tmp_path / "nope")], "--model"),
        (["--loss", "ce", "--data", str(mixed)], "label names ['O', 'B-X'] differ from"),
        (["--loss", "ce", "--rate", "1.5"], "--rate 1.5: must be a probability"),
        (["--loss", "ce", "--epochs", "0"], "--epochs 0: must be at least 1"),
        (["--loss", "ce", "--patience", "0"], "--patience 0: must be at least 1"),
        (["--loss", "ce", "--resume"], "--resume: "),
    ]
    if not torch.cuda.is_available():
        cases.append((["--loss", "ce", "--device", "cuda"], "--device cuda: no CUDA GPU"))
    return cases


def test_bad_input_exits_2_and_leaves_the_runs_dir_empty(runner, ner_dir, tiny_model, tmp_path):
    runs_dir = tmp_path / "runs"
    for args, fragment in bad_train_inputs(ner_dir, tiny_model, tmp_path):
        command = train_args(ner_dir, tiny_model, runs_dir, *args)  # later options win
        result = runner.invoke(app, command)
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and fragment in lines[-1], (args, lines)
        assert "Traceback" not in result.output
        assert not runs_dir.exists() or list(runs_dir.iterdir()) == [], args


def test_score_errors(runner, tmp_path):
    missing = runner.invoke(app, ["score", str(tmp_path)])
    assert missing.exit_code == 2
    assert "not a finished noisebench run" in missing.stderr
    nothing = runner.invoke(app, ["score"])
    assert nothing.exit_code == 2 and "name at least one run folder" in nothing.stderr


def test_without_validation_split_a_seeded_tenth_of_train_validates(
    runner, ner_dir, tiny_model, tmp_path
):
    only_train = tmp_path / "only-train"
    only_train.mkdir()
    (only_train / "train.txt").write_text((ner_dir / "train.txt").read_text())
    args = train_args(
        only_train,
        tiny_model,
        tmp_path / "runs",
        "--loss",
        "ce",
        "--epochs",
        1,
        "--max-train-samples",
        100,
    )
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "note: no validation split: 16 sentences (a seeded 10% of train)" in result.stderr
    results = json.loads(result.stdout)
    assert results["splits"]["validation"]["n_sentences"] == 16
    assert results["train"]["steps"] == 100 // 16 + 1  # the first 100 of the other 144
    assert any("no test split" in note for note in results["notes"])
    assert set(results["splits"]) == {"validation"}


def test_validation_labels_choose_the_best_epoch_and_are_recorded(
    ner_dir, tiny_model, tmp_path, runner
):
    corrupted = tmp_path / "noisy"
    result = runner.invoke(
        app,
        ["corrupt", str(ner_dir), "--rate", "0.5", "--splits", "train,validation", "-o",
         str(corrupted)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    scores = {}
    for labels in ("noisy", "clean"):
        result = runner.invoke(
            app,
            train_args(
                corrupted,
                tiny_model,
                tmp_path / "runs",
                "--loss",
                "ce",
                "--validation-labels",
                labels,
            ),
        )
        assert result.exit_code == 0, result.output
        results = json.loads(result.stdout)
        assert results["config"]["validation_labels"] == labels
        assert results["train"]["validation_labels"] == labels
        scores[labels] = results["splits"]["validation"]["f1"]
        note = [n for n in results["notes"] if "best epoch is chosen" in n]
        assert note and (labels in note[0])
    # the same model family scored against 50%-noisy labels cannot look as good
    assert scores["clean"] > scores["noisy"] + 0.2
    result = runner.invoke(
        app,
        train_args(
            ner_dir, tiny_model, tmp_path / "runs", "--loss", "ce", "--validation-labels", "clean"
        ),
    )
    assert result.exit_code == 2
    assert "--validation-labels clean: " in result.stderr and "has no clean_tags" in result.stderr
    result = runner.invoke(
        app,
        train_args(
            ner_dir, tiny_model, tmp_path / "runs", "--loss", "ce", "--validation-labels", "gold"
        ),
    )
    assert result.exit_code == 2
    assert "--validation-labels 'gold': choose noisy, clean or reviewed" in result.stderr


def test_simulated_noise_reaches_validation_unless_clean_labels_are_asked_for(
    ner_dir, tiny_model, tmp_path, runner
):
    results = {}
    for labels in ("noisy", "clean"):
        args = ("--loss", "ce", "--rate", "0.5", "--epochs", "1", "--validation-labels", labels)
        _, results[labels] = run_train(runner, *train_args(ner_dir, tiny_model, tmp_path, *args))
    noisy, clean = results["noisy"], results["clean"]
    assert noisy["train"]["validation_labels"] == "noisy"
    assert clean["train"]["validation_labels"] == "clean"
    # the same training labels either way: validation noise has its own generator
    assert noisy["train"]["label_noise"] == clean["train"]["label_noise"]
    assert 0.3 < noisy["train"]["label_noise"]["token_error_rate"] < 0.6
    assert 0.0 < noisy["train"]["label_noise"]["entity_noise_level"] <= 1.0
    assert noisy["config"]["validation_noise"] == "as train"
    assert "validation_noise" not in clean["config"]
    assert noisy["run"] != clean["run"]
    _, plain = run_train(
        runner, *train_args(ner_dir, tiny_model, tmp_path, "--loss", "ce", "--epochs", "1")
    )
    assert plain["train"]["label_noise"] is None  # no clean labels to compare with
    assert "validation_noise" not in plain["config"]


@pytest.fixture(scope="session")
def imbalanced_dir(tmp_path_factory) -> Path:
    """Toy NER where about 8% of words are entities: a bounded loss can stall at all-O."""
    import random

    from conftest import FILLER, TYPES

    folder = tmp_path_factory.mktemp("imbalanced")
    for name, count, seed in (("train.txt", 200, 1), ("valid.txt", 50, 2), ("test.txt", 50, 3)):
        rng = random.Random(seed)
        blocks = []
        for _ in range(count):
            words = [rng.choice(FILLER) for _ in range(rng.randint(8, 12))]
            if rng.random() < 0.8:
                words[rng.randrange(len(words))] = rng.choice(list(TYPES))
            blocks.append("\n".join(f"{w} {'B-' + TYPES[w] if w in TYPES else 'O'}" for w in words))
        (folder / name).write_text("\n\n".join(blocks) + "\n")
    return folder


def collapse_args(imbalanced_dir, tiny_model, runs_dir, warmup):
    return [
        "train", "--data", str(imbalanced_dir), "--model", str(tiny_model), "--runs-dir",
        str(runs_dir), "--loss", "gce", "--q", "0.7", "--lr", "1e-2", "--epochs", "4",
        "--batch-size", "16", "--device", "cpu", "--patience", "1", "--json",
        "--loss-warmup", warmup,
    ]  # fmt: skip


def test_a_collapsed_run_says_so_and_the_loss_warmup_escapes_it(
    imbalanced_dir, tiny_model, tmp_path, runner
):
    result = runner.invoke(app, collapse_args(imbalanced_dir, tiny_model, tmp_path / "runs", "0"))
    assert result.exit_code == 0, result.output  # a result, not a crash
    collapsed = json.loads(result.stdout)
    history = collapsed["train"]["history"]
    # F1 never left 0: patience 1 did not stop the run, no epoch counted against it
    assert [h["validation_f1"] for h in history] == [0.0, 0.0, 0.0, 0.0]
    assert [h["counts_for_patience"] for h in history] == [False] * 4
    assert collapsed["train"]["epochs_run"] == 4
    test = collapsed["degenerate"]["test"]
    assert test["label"] == "O" and test["share"] == 1.0 and test["predicted_entities"] == 0
    assert test["reason"].startswith("no entity predicted (gold has ")
    assert collapsed["splits"]["test"]["degenerate"] == test
    assert "warning: degenerate run: no entity predicted" in result.stderr
    assert "--loss-warmup 0.1" in result.stderr
    # `score` recomputes it from the saved predictions
    rescored = runner.invoke(app, ["score", collapsed["run_dir"], "--json"])
    assert json.loads(rescored.stdout)[0]["degenerate"] == collapsed["degenerate"]
    assert "degenerate run" in rescored.stderr

    result = runner.invoke(app, collapse_args(imbalanced_dir, tiny_model, tmp_path / "runs", "0.5"))
    warmed = json.loads(result.stdout)
    assert warmed["config"]["loss_warmup"] == 0.5
    assert warmed["degenerate"] is None
    assert warmed["splits"]["test"]["f1"] > 0.9
    assert "degenerate" not in result.stderr


def test_losses_read_in_batches_still_name_the_first_non_finite_step():
    import io

    import torch

    from noisebench.training.loop import TrainingFailed, _StepLog

    log, events = io.StringIO(), []
    steps = _StepLog(log, events.append, epoch=2, epochs=3, steps=6, every=3)
    for number, value in enumerate([1.0, 2.0, 3.0, 4.0], start=1):
        steps.add(number, 10 + number, torch.tensor(value), 1e-4, [0, 1])
    assert len(log.getvalue().splitlines()) == 3  # read after the third step, not before
    assert steps.flush() == 10.0 and len(events) == 4
    assert json.loads(log.getvalue().splitlines()[-1]) == {
        "epoch": 2,
        "step": 14,
        "loss": 4.0,
        "lr": 1e-4,
    }
    steps.add(5, 15, torch.tensor(float("nan")), 1e-4, [0])
    steps.add(6, 16, torch.tensor(float("inf")), 1e-4, [0])
    with pytest.raises(TrainingFailed, match="loss became nan at epoch 2, step 5; try a lower"):
        steps.flush()


def test_bucketed_evaluation_batches_change_no_prediction(ner_dir, tiny_model, monkeypatch):
    import numpy as np
    import torch

    from noisebench.data import loading as data
    from noisebench.training.batches import encode

    lengths = np.sort(np.random.default_rng(0).integers(3, 60, size=500))[::-1]
    batches = evaluate.evaluation_batches(lengths, 400, 0.1)
    assert np.array_equal(np.concatenate(batches), np.arange(500))  # all, in order
    for batch in batches:
        longest = lengths[batch[0]]
        assert len(batch) * longest <= 400 or len(batch) == 1
        assert lengths[batch[-1]] >= 0.9 * longest  # at most 10% of a row is padding

    split = data.load(str(ner_dir))["validation"]
    labels = data.label_names(split)
    model, tokenizer = evaluate.load_model(str(tiny_model), labels)
    encoded = encode(tokenizer, split, 128, None)
    tokens = split.data.table.column("tokens").to_pylist()
    monkeypatch.setattr(evaluate, "EVAL_BATCH_TOKENS", 64)  # several batches of each kind
    cpu = torch.device("cpu")
    bucketed = evaluate.predict(model, encoded, tokens, labels, cpu, tokenizer.pad_token_id)
    monkeypatch.setattr(evaluate, "EVAL_PADDING", 1.0)  # the previous batching
    previous = evaluate.predict(model, encoded, tokens, labels, cpu, tokenizer.pad_token_id)
    np.testing.assert_allclose(bucketed.probs, previous.probs, atol=1e-6, rtol=0)
    assert np.array_equal(bucketed.predicted, previous.predicted)


def test_batches_prepared_ahead_arrive_in_order_and_carry_errors():
    import threading

    from noisebench.training.batches import prefetched

    assert list(prefetched(iter(range(100)), depth=3)) == list(range(100))
    assert list(prefetched([])) == []

    def failing():
        yield 1
        yield 2
        raise ValueError("sentence 3 is broken")

    stream = prefetched(failing())
    assert [next(stream), next(stream)] == [1, 2]
    with pytest.raises(ValueError, match="sentence 3 is broken"):
        next(stream)

    made = []

    def endless():
        while True:
            made.append(len(made))
            yield made[-1]

    stream = prefetched(endless(), depth=2)
    assert next(stream) == 0
    stream.close()  # a failed step leaves the loop: the thread stops, nothing leaks
    assert not any(t.name == "noisebench-prefetch" for t in threading.enumerate())
    assert len(made) <= 4  # it ran at most depth + 1 ahead


@pytest.mark.slow
def test_compiled_training_is_repeatable_and_a_failed_compile_falls_back(
    runner, ner_dir, tiny_model, tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    args = ("--loss", "ce", "--epochs", 2)
    _, plain = run_train(runner, *train_args(ner_dir, tiny_model, tmp_path / "plain", *args))
    assert plain["train"]["compiled"] is False
    assert 0 < plain["train"]["first_step_seconds"] < plain["train"]["seconds"]

    compiled_args = (*args, "--compile")
    runs_a, runs_b = tmp_path / "compiled-a", tmp_path / "compiled-b"
    run_a, first = run_train(runner, *train_args(ner_dir, tiny_model, runs_a, *compiled_args))
    _, second = run_train(runner, *train_args(ner_dir, tiny_model, runs_b, *compiled_args))
    assert first["train"]["compiled"] is True
    assert run_a.name == Path(plain["run_dir"]).name  # an execution option, not the identity
    assert scores(first) == scores(second)  # the compiler's dropout is seeded too
    # other dropout masks, the same task learnt (the fixture data is easy: F1 1.0 both)
    assert first["splits"]["test"]["f1"] == plain["splits"]["test"]["f1"] == 1.0
    assert first["splits"]["test"]["ece"] != plain["splits"]["test"]["ece"]

    def broken_compile(model, **options):
        def fails(**batch):
            cause = RuntimeError("no C++ compiler found\nmore detail")
            raise torch._inductor.exc.InductorError(cause, None)

        return fails

    monkeypatch.setattr(torch, "compile", broken_compile)
    _, fallen = run_train(
        runner, *train_args(ner_dir, tiny_model, tmp_path / "fallback", *compiled_args)
    )
    assert fallen["train"]["compiled"] is False
    note = (
        "--compile failed (InductorError: RuntimeError: no C++ compiler found more detail);"
        " trained without it"
    )
    assert note in fallen["notes"]
    assert scores(fallen) == scores(plain)  # it failed before drawing a random number


def test_cuda_batches_are_the_same_batches_in_the_same_order(ner_dir, tiny_model, monkeypatch):
    import numpy as np

    from noisebench.data import loading as data
    from noisebench.training.batches import collate, encode, length_grouped_batches

    split = data.load(str(ner_dir))["train"]
    _, tokenizer = evaluate.load_model(str(tiny_model), data.label_names(split))
    encoded = encode(tokenizer, split, 128, None)
    batches = length_grouped_batches(encoded.lengths(), 16, np.random.default_rng(0))
    pinned = []
    monkeypatch.setattr(training, "pinned", lambda t: pinned.append(t) or t)  # no GPU here
    made = list(training._host_batches(encoded, batches, 0, torch.device("cuda")))
    assert len(pinned) == 3 * len(batches)  # every tensor went through pinned memory
    for (indices, batch), expected in zip(made, batches, strict=True):
        assert indices is expected
        for key, tensor in collate(encoded, expected, 0).items():
            assert torch.equal(batch[key], tensor)


RUN_KINDS = {
    "clean": ["--loss", "ce"],
    "simulated noise, noisy validation labels": ["--loss", "sgce", "--rate", "0.3"],
    "simulated noise, clean validation labels": [
        "--loss", "gce", "--rate", "0.3", "--validation-labels", "clean",
    ],
    "a non-default CE start": ["--loss", "gce", "--loss-warmup", "0.5"],
    "a tuned learning rate": ["--loss", "ce", "--lr", "2e-3"],
    "calibrated": ["--loss", "ce", "--calibrate", "temperature"],
}  # fmt: skip


@pytest.mark.parametrize("kind", list(RUN_KINDS))
def test_every_kind_of_run_rescores_and_reevaluates_to_its_own_numbers(
    runner, ner_dir, tiny_model, tmp_path, kind
):
    args = train_args(ner_dir, tiny_model, tmp_path, "--epochs", 1, "--save-model")
    run_dir, trained = run_train(runner, *args, *RUN_KINDS[kind])
    rescored = runner.invoke(app, ["score", str(run_dir), "--json"])
    assert rescored.exit_code == 0, rescored.output
    document = json.loads(rescored.stdout)[0]
    assert scores(document) == scores(trained)
    assert document["calibration"] == trained["calibration"]
    assert document["config"] == trained["config"]
    again = runner.invoke(
        app, ["score", "--model", str(run_dir), "--data", str(ner_dir), "--device", "cpu", "--json"]
    )
    assert again.exit_code == 0, again.output
    evaluated = json.loads(again.stdout)[0]["splits"]["test"]
    for key in ("f1", "precision", "recall", "n_words", "n_entities"):
        assert evaluated[key] == trained["splits"]["test"][key], key
    for key in ("ece", "mce", "brier", "nll"):
        assert evaluated[key] == pytest.approx(trained["splits"]["test"][key], abs=1e-6), key


def test_config_round_trips_through_its_identity_and_refuses_unknown_settings():
    config = TrainConfig(loss="sgce", q=0.8, s=0.1, rate=0.4, labels=("O", "B-X"))
    assert config.identity()["validation_noise"] == "as train"
    assert TrainConfig.from_identity(config.identity()) == config
    older = {k: v for k, v in config.identity().items() if k != "loss_warmup"}
    assert TrainConfig.from_identity(older).loss_warmup == 0.1
    with pytest.raises(InputError, match="unknown setting 'focal_gamma'"):
        TrainConfig.from_identity({**config.identity(), "focal_gamma": 2.0})


def test_an_unexpected_error_is_one_line_and_exit_1(runner, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise TypeError("TrainConfig.__init__() got an unexpected keyword argument 'x'")

    monkeypatch.setattr(evaluate, "rescore", broken)
    monkeypatch.delenv("NOISEBENCH_DEBUG", raising=False)
    result = runner.invoke(app, ["score", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith("error: unexpected TypeError: TrainConfig.__init__() got")
    assert "NOISEBENCH_DEBUG=1 shows the traceback" in lines[0]
    monkeypatch.setenv("NOISEBENCH_DEBUG", "1")
    debugging = runner.invoke(app, ["score", str(tmp_path)])
    assert isinstance(debugging.exception, TypeError)


def test_train_without_loss_trains_cross_entropy(runner, ner_dir, tiny_model, tmp_path):
    run_dir, trained = run_train(runner, *train_args(ner_dir, tiny_model, tmp_path, "--epochs", 1))
    assert trained["config"]["loss"] == "ce" and "-ce-seed0-" in run_dir.name


def test_degenerate_advice_starts_from_the_runs_own_settings(capsys):
    from noisebench.cli import training as training_cli

    config = {"loss": "sgce", "q": 0.8, "s": 0.1, "epochs": 2, "lr": 5e-5, "loss_warmup": 0.2}
    advice = training_cli.degenerate_advice(config)
    assert "--loss-warmup 0.1" not in advice  # the run had 0.2 already
    assert advice == (
        "try a longer CE start than its 0.2 (--loss-warmup 0.4), more epochs than its 2"
        " (--epochs 4), a higher learning rate than its 5e-05 (--lr 0.0001), a lower q than"
        " its 0.8 (--q 0.4), or --loss ce"
    )
    assert "a CE start (--loss-warmup 0.1)" in training_cli.degenerate_advice(
        {**config, "loss_warmup": 0.0}
    )
    full = training_cli.degenerate_advice({**config, "loss_warmup": 1.0, "loss": "mae"})
    assert "CE start" not in full and "lower q" not in full
    assert training_cli.degenerate_advice({"loss": "ce", "epochs": 1, "lr": 1e-4}) == (
        "try more epochs than its 1 (--epochs 2) or another learning rate than its 0.0001"
        " (--lr 5e-05 or 0.0002)"
    )


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux only")
def test_peak_memory_is_the_runs_own_not_the_process_before_it(
    runner, ner_dir, tiny_model, tmp_path
):
    ballast = np.ones(2**27)  # 1 GiB touched by this process before the run
    del ballast
    process_peak = memory.peak_mib(torch.device("cpu"))
    _, results = run_train(runner, *train_args(ner_dir, tiny_model, tmp_path, "--epochs", 1))
    summary = results["train"]
    assert summary["peak_memory_scope"] == "run"
    assert 0 < summary["peak_memory_mb"] < process_peak - 512


def test_max_rss_is_read_in_the_platforms_unit():
    assert memory.max_rss_bytes(2048, "linux") == 2048 * 1024
    assert memory.max_rss_bytes(2048, "darwin") == 2048


class _Logits(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(3))

    def forward(self, **batch):
        return type("Output", (), {"logits": batch["x"] * self.weight})()


def test_a_compiled_step_lets_errors_that_are_not_the_compilers_through():
    model, notes = _Logits(), []
    step = training._StepPass(model, False, notes, "fp32")
    step.compiled = model  # as if compiled: the same module
    batch, labels = {"x": torch.ones(2, 3)}, torch.zeros(2, dtype=torch.long)

    def masking_fails(logits, given):
        raise ValueError("a bug in masking")

    with pytest.raises(ValueError, match="a bug in masking"):
        step(
            batch,
            labels,
            lambda logits, given, soft: logits.sum(),
            torch.device("cpu"),
            masking_fails,
        )
    assert step.is_compiled and notes == []  # not taken for a compiler failure, not redone


def test_a_step_whose_compiled_backward_fails_is_retried_and_counted_once():
    model, notes = _Logits(), []
    step = training._StepPass(model, False, notes, "fp32")
    step.compiled = model
    batch, labels = {"x": torch.ones(2, 3)}, torch.zeros(2, dtype=torch.long)
    observed = []

    def contribute(logits, given):
        observed.append(given)
        return given, None

    calls = []

    def loss_fn(logits, given, soft):
        calls.append(len(calls))
        if len(calls) == 1:  # the compiled backward fails after the words were counted
            raise torch._inductor.exc.InductorError(RuntimeError("backward failed"), None)
        return logits.sum()

    loss = step(batch, labels, loss_fn, torch.device("cpu"), contribute)
    assert loss.item() == 6.0 and len(calls) == 2
    assert len(observed) == 1  # the batch's words observed and masked once
    assert not step.is_compiled
    assert notes == [
        "--compile failed (InductorError: RuntimeError: backward failed); trained without it"
    ]


def test_a_run_made_under_its_legacy_name_is_found_not_trained_again(
    runner, ner_dir, tiny_model, tmp_path
):
    args = train_args(ner_dir, tiny_model, tmp_path, "--loss", "ce", "--epochs", 1)
    run_dir, _ = run_train(runner, *args)
    assert "-given-ce-seed0-" in run_dir.name
    legacy = run_dir.with_name(run_dir.name.replace("-given-", "-clean-"))
    run_dir.rename(legacy)  # as an earlier version named it: same hash
    before = (legacy / "results.json").read_bytes()
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "already complete" in again.stderr
    assert json.loads(again.stdout)["run_dir"] == str(legacy)
    assert (legacy / "results.json").read_bytes() == before and not run_dir.exists()


def test_run_names_say_given_for_the_datasets_own_labels():
    base = {"loss": "ce", "seed": 0, "noise": "uniform"}
    assert runs.run_name({**base, "rate": None}, "d").startswith("d-given-ce-seed0-")
    assert runs.run_name({**base, "rate": 0.0}, "d").startswith("d-given-ce-seed0-")
    assert runs.run_name({**base, "rate": 0.4}, "d").startswith("d-uniform0.40-ce-seed0-")
    assert runs.legacy_run_name({**base, "rate": 0.0}, "d").startswith("d-uniform0.00-ce-")
    assert runs.legacy_run_name({**base, "rate": None}, "d").startswith("d-clean-ce-")


def test_without_a_terminal_train_prints_a_line_per_epoch(runner, ner_dir, tiny_model, tmp_path):
    result = runner.invoke(app, train_args(ner_dir, tiny_model, tmp_path, "--epochs", 2))
    assert result.exit_code == 0, result.output
    epochs = [line for line in result.stderr.splitlines() if "train loss" in line]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1", "epoch 2"]
    assert all("train loss " in line and "validation F1 " in line for line in epochs)


def test_an_empty_folder_under_the_legacy_name_is_not_taken_for_the_run(tmp_path):
    config = {"loss": "ce", "seed": 0, "noise": "uniform", "rate": None}
    legacy = tmp_path / runs.legacy_run_name(config, "d")
    legacy.mkdir()  # an attempt that died before its first checkpoint
    assert runs.run_dir(tmp_path, config, "d") == tmp_path / runs.run_name(config, "d")
    (legacy / "checkpoint").mkdir()
    assert runs.run_dir(tmp_path, config, "d") == legacy


def test_a_checkpoint_of_an_older_version_is_refused_as_such(tmp_path):
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    path = tmp_path / "state.pt"
    torch.save({"model": model.state_dict(), "state": {"pending": [np.ones(3)]}}, path)
    with pytest.raises(InputError, match="numpy arrays: made by an older noisebench"):
        training.load_checkpoint(path, model, optimizer, schedule)


def test_the_hardware_record_names_the_device_kind_beside_the_cpu():
    """A CPU run records the CPU's model and threads; another device that is not CUDA
    (mps) records the same CPU with its kind, so the two never read as one hardware."""
    cpu, mps = runs.hardware("cpu"), runs.hardware("mps")
    assert cpu["threads"] == torch.get_num_threads() and not cpu["processor"].endswith("(mps)")
    assert mps["processor"] == f"{cpu['processor']} (mps)"
