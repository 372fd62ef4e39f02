"""`--method`: masking by error type and oracle bounds, on hand-made logits and end to end."""

import json

import numpy as np
import pytest
import torch

from noisebench.cli import app
from noisebench.training import methods

OUT, X, Y = 0, 1, 2  # label ids: O, B-X, B-Y


def logits_for(predicted: list[int], confidence: list[float], classes: int = 3) -> torch.Tensor:
    """(1, T, C) logits whose softmax gives ``predicted`` with ``confidence``, the rest
    shared equally by the other classes."""
    probs = torch.full((len(predicted), classes), 0.0)
    for t, (p, c) in enumerate(zip(predicted, confidence, strict=True)):
        probs[t] = (1 - c) / (classes - 1)
        probs[t, p] = c
    return probs.log().unsqueeze(0)


LABELS = torch.tensor([[OUT, OUT, X, Y, X, -100]])
PREDICTED = [OUT, X, Y, OUT, X, X]
CONFIDENCE = [0.9, 0.5, 0.9, 0.6, 0.9, 0.99]


def selection(method: str, warmup: float = 0.0, steps: int = 1000) -> methods.WordSelection:
    return methods.WordSelection(method, OUT, steps, warmup)


@pytest.mark.parametrize(
    ("method", "left_out"),
    [
        ("none", []),
        # word 1: label O, predicted X at 0.5 > 0.4 (missing)
        ("mask-missing", [1]),
        # word 2: label X, predicted Y at 0.9 > 0.85; word 3 (X -> O at 0.6) stays
        ("mask-entity", [2]),
        ("mask-all", [2]),  # one threshold, 0.85: word 1's 0.5 is under it
    ],
)
def test_each_masking_rule_leaves_out_its_groups_confident_disagreements(method, left_out):
    rule = selection(method)
    kept = rule.select(logits_for(PREDICTED, CONFIDENCE), LABELS, None, step=500)
    expected = LABELS.clone()
    expected[0, left_out] = -100
    assert kept.tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("method", "left_out"),
    [
        # the text as written: disagreements count while confident; word 1 (O -> X at
        # 0.5) is above 0.4 and stays; under entity's 0.85, word 3 (Y -> O at 0.6) goes
        ("mask-missing", []),
        ("mask-entity", [3]),
        ("mask-all", [1, 3]),
    ],
)
def test_the_literal_reading_leaves_out_the_unconfident_disagreements(method, left_out):
    rule = methods.WordSelection(method, OUT, 1000, 0.0, reading="literal")
    kept = rule.select(logits_for(PREDICTED, CONFIDENCE), LABELS, None, step=500)
    expected = LABELS.clone()
    expected[0, left_out] = -100
    assert kept.tolist() == expected.tolist()


def test_the_cutoff_moves_where_a_refit_puts_the_threshold():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.beta(2, 8, 300), rng.beta(9, 2, 100)])
    found = {}
    for cutoff in (0.3, 0.7):
        rule = methods.WordSelection("mask-entity", OUT, 100, 0.0, cutoff=cutoff)
        rule.pending["entity"] = [values]
        rule._refit()
        found[cutoff] = rule.thresholds["entity"]
        fit = methods.fit_beta_mixture(values)
        assert found[cutoff] == methods.mixture_threshold(fit, cutoff)
    assert found[0.3] < found[0.7]  # a stricter posterior: a higher threshold


def test_the_reading_and_cutoff_name_a_run_only_when_not_the_defaults():
    from noisebench.training import runs
    from noisebench.training.config import TrainConfig

    plain = TrainConfig(method="mask-entity")
    assert "mask_cutoff" not in plain.identity() and "mask_reading" not in plain.identity()
    other = TrainConfig(method="mask-entity", mask_cutoff=0.7, mask_reading="literal")
    name = runs.run_name(other.identity(), "crowd")
    assert "-mask-entity-cut0.7-literal-seed0-" in name
    assert TrainConfig.from_identity(other.identity()) == other
    assert "mask_cutoff" not in TrainConfig(mask_cutoff=0.7).identity()  # no masking: moot


def test_no_masking_during_the_warm_up_and_thresholds_follow_the_refits():
    rule = selection("mask-missing", warmup=0.1, steps=100)
    logits = logits_for(PREDICTED, CONFIDENCE)
    assert torch.equal(rule.select(logits, LABELS, None, step=9), LABELS)  # warm-up: 10 steps
    assert rule.select(logits, LABELS, None, step=10)[0, 1] == -100
    assert rule.refit_steps == [10, 30, 60]
    assert rule.thresholds == {"missing": 0.4}  # too few disagreements to refit
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.beta(2, 8, 300), rng.beta(9, 2, 100)])
    rule.pending["missing"] = [values]
    rule._refit()
    expected = methods.mixture_threshold(methods.fit_beta_mixture(values))
    assert rule.thresholds["missing"] == expected and 0.4 < expected < 0.7


def test_the_entity_guard_stops_entity_masking_in_a_batch_that_predicts_few_entities():
    labels = torch.tensor([[X, X, X, Y, Y, Y, X, Y, X, Y, X, OUT]])  # 11 entity labels
    predicted = [Y] + [OUT] * 11  # one entity prediction: under 10% of 11 is 1.1
    confidence = [0.95] * 12
    rule = selection("mask-entity")
    kept = rule.select(logits_for(predicted, confidence), labels, None, step=0)
    assert torch.equal(kept, labels)  # guarded: nothing left out
    predicted = [Y, Y] + [OUT] * 10  # two entity predictions: the rule applies
    kept = rule.select(logits_for(predicted, confidence), labels, None, step=0)
    assert (kept == -100).sum() == 11  # every confident disagreement on an entity label


def test_oracles_leave_out_the_truly_wrong_words_and_report_precision_and_recall():
    clean = torch.tensor([[OUT, X, X, Y, Y, -100]])  # words 1 and 4 are wrong
    logits = logits_for(PREDICTED, CONFIDENCE)
    oracle = selection("oracle-mask")
    assert oracle.select(logits, LABELS, clean, 0)[0].tolist() == [OUT, -100, X, Y, -100, -100]
    report = oracle.end_epoch()
    assert report["precision"] == 1.0 and report["recall"] == 1.0
    assert report["left_out_share"] == pytest.approx(2 / 5)
    # -disagree: word 4 (X, predicted X) is wrong but the model agrees with its label
    disagree = selection("oracle-mask-disagree")
    assert disagree.select(logits, LABELS, clean, 0)[0].tolist() == [OUT, -100, X, Y, X, -100]
    assert disagree.end_epoch()["recall"] == 0.5
    masking = selection("mask-entity")  # leaves out word 2, which is right: precision 0
    masking.select(logits, LABELS, clean, 500)
    report = masking.end_epoch()
    assert (report["precision"], report["recall"]) == (0.0, 0.0)
    assert report["truly_wrong_share"] == pytest.approx(2 / 5)
    assert report["groups"]["entity"]["disagreeing_share"] == pytest.approx(2 / 5)


@pytest.mark.parametrize(
    "method", ["mask-missing", "mask-entity", "mask-all", "oracle-mask", "oracle-mask-disagree"]
)
def test_a_masking_step_never_waits_for_the_device(method):
    """On the meta device every read of a value (``int()``, ``.cpu()``, boolean
    indexing) raises: a step between refits runs without one, so on CUDA it never syncs."""
    rule = selection(method, warmup=0.1, steps=100)
    meta = torch.device("meta")
    logits = logits_for(PREDICTED, CONFIDENCE).to(meta)
    kept = rule.select(logits, LABELS.to(meta), LABELS.to(meta), step=50)  # not a refit
    assert kept.device == meta and kept.shape == LABELS.shape
    with pytest.raises((RuntimeError, NotImplementedError)):
        rule.end_epoch()  # the epoch's counts are read here, once


def test_checkpointed_confidences_refit_as_the_ones_kept_on_the_device():
    logits = logits_for(PREDICTED, CONFIDENCE)
    live = selection("mask-all")
    for step in range(4):
        live.select(logits, LABELS, None, step)
    saved = selection("mask-all")
    saved.load_state_dict(live.state_dict())
    assert saved.pending["all"][0].tolist() == pytest.approx([0.5, 0.9, 0.6] * 4)
    live._refit(), saved._refit()
    assert live.thresholds == saved.thresholds


def test_confidences_back_from_a_checkpoint_file_are_host_arrays(tmp_path):
    """``torch.load(weights_only=True)`` gives the saved arrays back as CPU tensors; they
    must join the device's later confidences (a CUDA tensor and a CPU one cannot be
    concatenated), so they come back as arrays."""
    from noisebench.training.checkpoints import plain

    logits = logits_for(PREDICTED, CONFIDENCE)
    live = selection("mask-all")
    for step in range(2):
        live.select(logits, LABELS, None, step)
    torch.save(plain(live.state_dict()), tmp_path / "state.pt")
    saved = selection("mask-all")
    saved.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert all(isinstance(p, np.ndarray) for p in saved.pending["all"])
    saved.select(logits, LABELS, None, 2)  # a device tensor joins them
    assert methods._disagreeing(saved.pending["all"]).tolist() == pytest.approx([0.5, 0.9, 0.6] * 3)


def test_the_beta_mixture_finds_a_known_mixture():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.beta(2, 6, 4000), rng.beta(12, 2, 2000)])
    fit = methods.fit_beta_mixture(x)
    means = [a / (a + b) for a, b in zip(fit["a"], fit["b"], strict=True)]
    assert fit["weight"] == pytest.approx(1 / 3, abs=0.03)
    assert means == pytest.approx([2 / 8, 12 / 14], abs=0.02)
    # the threshold is where the posterior of the high component reaches 0.3
    threshold = methods.mixture_threshold(fit)
    grid = np.array([threshold - 1e-3, threshold])
    low = (1 - fit["weight"]) * np.exp(methods._beta_log_pdf(grid, fit["a"][0], fit["b"][0]))
    high = fit["weight"] * np.exp(methods._beta_log_pdf(grid, fit["a"][1], fit["b"][1]))
    posterior = high / (low + high)
    assert posterior[0] < 0.3 <= posterior[1]


def method_args(data, tiny_model, runs_dir, *extra):
    return [
        "train", "--data", str(data), "--model", str(tiny_model), "--runs-dir", str(runs_dir),
        "--lr", "5e-3", "--batch-size", "16", "--device", "cpu", "--epochs", "2", "--json",
        *map(str, extra),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "method", ["mask-missing", "mask-entity", "mask-all", "oracle-mask", "oracle-mask-disagree"]
)
def test_every_method_trains_and_records_its_masking(runner, ner_dir, tiny_model, tmp_path, method):
    args = method_args(ner_dir, tiny_model, tmp_path, "--loss", "gce", "--rate", "0.3")
    result = runner.invoke(app, [*args, "--method", method])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert f"-gce-{method}-seed0-" in document["run_dir"]
    assert document["config"]["method"] == method
    for epoch in document["train"]["history"]:
        masking = epoch["masking"]
        assert masking["method"] == method and masking["scored_words"] > 0
        assert 0 <= masking["left_out_share"] <= 1 and "truly_wrong_share" in masking
    if method == "oracle-mask":  # leaves out exactly the words whose labels were changed
        first = document["train"]["history"][0]["masking"]
        assert first["precision"] == 1.0 and first["recall"] == 1.0
        assert first["left_out_share"] == pytest.approx(first["truly_wrong_share"])
    rescored = runner.invoke(app, ["score", document["run_dir"], "--json"])
    assert json.loads(rescored.stdout)[0]["splits"] == document["splits"]


def test_oracle_clean_trains_on_the_clean_labels(runner, ner_dir, tiny_model, tmp_path):
    noisy = method_args(ner_dir, tiny_model, tmp_path, "--rate", "0.5", "--epochs", "1")
    oracle = json.loads(runner.invoke(app, [*noisy, "--method", "oracle-clean"]).stdout)
    clean = json.loads(
        runner.invoke(app, method_args(ner_dir, tiny_model, tmp_path, "--epochs", "1")).stdout
    )
    assert oracle["train"]["label_noise"]["token_error_rate"] == 0.0
    # the same sentences and clean labels as the clean run: the same training; only the
    # noisy validation labels (which chose nothing here: one epoch) differ
    assert oracle["splits"]["test"] == clean["splits"]["test"]
    assert "oracle-clean" not in json.dumps(clean["config"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "focal"], "--method 'focal': choose one of none, mask-missing"),
        (["--method", "oracle-clean"], "an oracle needs the clean labels of the training words"),
        (["--method", "mask-missing", "--mask-warmup", "1.5"], "--mask-warmup 1.5: must be a"),
        (["--method", "mask-entity", "--mask-cutoff", "1"], "--mask-cutoff 1.0: must be a"),
        (["--method", "mask-entity", "--mask-reading", "upside"], "--mask-reading 'upside':"),
    ],
)
def test_bad_methods_exit_2_and_write_nothing(
    runner, ner_dir, tiny_model, tmp_path, extra, message
):
    result = runner.invoke(app, [*method_args(ner_dir, tiny_model, tmp_path / "runs"), *extra])
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not (tmp_path / "runs").exists()


def test_masking_refuses_tags_without_spans(runner, tiny_model, tmp_path):
    pos = tmp_path / "pos.txt"
    pos.write_text("john NN\nate VB\n\nmary NN\nwent VB\n\nacme NN\nate VB\n")
    result = runner.invoke(
        app, [*method_args(pos, tiny_model, tmp_path / "r"), "--method", "mask-all"]
    )
    assert result.exit_code == 2
    assert "--method mask-all: needs entity spans with an 'O' label" in result.stderr


def test_mask_auto_without_a_profile_follows_the_models_disagreements():
    rule = methods.WordSelection("mask-auto", OUT, 100, 0.1)  # warm-up: 10 steps
    labels = torch.tensor([[OUT, OUT, OUT, X]])
    logits = logits_for([X, Y, OUT, X], [0.9, 0.9, 0.9, 0.9])  # two missing, no entity
    for step in range(10):
        assert torch.equal(rule.select(logits, labels, None, step), labels)
    assert rule.chosen is None and rule.votes == {"missing": 20, "entity": 0}
    kept = rule.select(logits, labels, None, 10)
    assert rule.chosen == "mask-missing" and rule.groups == ("missing",)
    assert kept.tolist() == [[-100, -100, OUT, X]]
    report = rule.end_epoch()
    assert (report["chosen"], report["chosen_by"]) == ("mask-missing", "disagreements")
    entity = methods.WordSelection("mask-auto", OUT, 100, 0.0)
    entity.select(logits_for([OUT, Y], [0.9, 0.9]), torch.tensor([[X, X]]), None, 0)
    assert entity.chosen == "mask-entity"


def test_mask_auto_overrules_missed_entities_and_reads_entity_labels_literally():
    """Without --mask-reading: the reading that cost no F1 where measured, per group."""
    labels = LABELS
    logits = logits_for(PREDICTED, CONFIDENCE)
    missing = methods.WordSelection("mask-auto", OUT, 1000, 0.0, choice="mask-missing")
    assert missing.select(logits, labels, None, 500)[0, 1] == -100  # as mask-missing
    entity = methods.WordSelection("mask-auto", OUT, 1000, 0.0, choice="mask-entity")
    literal = methods.WordSelection("mask-entity", OUT, 1000, 0.0, reading="literal")
    kept = entity.select(logits, labels, None, 500)
    assert torch.equal(kept, literal.select(logits, labels, None, 500))
    assert kept[0].tolist() == [OUT, OUT, X, -100, X, -100]  # word 3: Y -> O at 0.6 < 0.85
    assert entity.end_epoch()["readings"] == {"entity": "literal"}
    told = methods.WordSelection("mask-auto", OUT, 1000, 0.0, "mask-entity", reading="overrule")
    assert told.select(logits, labels, None, 500)[0].tolist() == [OUT, OUT, -100, Y, X, -100]


def test_an_explicit_default_reading_keeps_the_runs_name():
    from noisebench.training.config import TrainConfig

    said = TrainConfig(method="mask-entity", mask_reading="overrule")
    assert said == TrainConfig(method="mask-entity")
    assert "mask_reading" not in said.identity()
    auto = TrainConfig(method="mask-auto", mask_reading="overrule")  # not mask-auto's default
    assert auto.identity()["mask_reading"] == "overrule"
    assert TrainConfig.from_identity(auto.identity()) == auto


def test_mask_auto_with_a_profile(runner, ner_dir, tiny_model, tmp_path):
    args = method_args(ner_dir, tiny_model, tmp_path, "--rate", "0.3", "--method", "mask-auto")
    noisy = tmp_path / "noisy.txt"
    clean = tmp_path / "clean.txt"
    noisy.write_text("john O\nate O\nparis B-LOC\n\nmary O\nwent O\n")  # a missed entity...
    clean.write_text("john B-PER\nate O\nparis B-LOC\n\nmary B-PER\nwent O\n")
    profile = tmp_path / "profile.json"
    made = runner.invoke(app, ["profile", str(noisy), str(clean), "-o", str(profile)])
    assert made.exit_code == 0, made.output
    result = runner.invoke(app, [*args, "--error-profile", str(profile)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert any(n.startswith("mask-auto chose mask-missing from") for n in document["notes"])
    assert any("type-agnostic rates" in n for n in document["notes"])  # PER, LOC vs 3 types
    masking = document["train"]["history"][0]["masking"]
    assert (masking["chosen"], masking["chosen_by"]) == ("mask-missing", "profile")
    assert document["config"]["error_profile"] == str(profile)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("[1, 2]")
    refused = runner.invoke(app, [*args, "--error-profile", str(garbage)])
    assert refused.exit_code == 2 and "not a noisebench profile" in refused.stderr
    alone = runner.invoke(
        app, [*method_args(ner_dir, tiny_model, tmp_path), "--error-profile", str(profile)]
    )
    assert alone.exit_code == 2 and "--error-profile is for --method mask-auto" in alone.stderr
