"""Noise profiles: each statistic on hand-made examples, round trips, application, fidelity."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from conftest import files_under

from noisebench.cli import app
from noisebench.data import loading as data
from noisebench.data import profiles, realnoise
from noisebench.data.profiles import Outcome, outcome_of
from noisebench.data.schemes import decode_spans, detect_scheme
from noisebench.errors import InputError

# ------------------------------------------------------------------------ outcomes


@pytest.mark.parametrize(
    ("noisy", "expected"),
    [
        ([(2, 4, "ORG")], Outcome("kept")),
        ([], Outcome("missed")),
        ([(0, 1, "PER")], Outcome("missed")),  # no overlap
        ([(2, 4, "LOC")], Outcome("retyped", new_type="LOC")),
        ([(1, 4, "ORG")], Outcome("boundary", left=-1)),  # grown left
        ([(2, 3, "ORG")], Outcome("boundary", right=-1)),  # shrunk right
        ([(2, 6, "LOC")], Outcome("boundary", new_type="LOC", right=2)),
        ([(2, 3, "ORG"), (3, 4, "ORG")], Outcome("boundary", pieces=2)),  # split in two
    ],
)
def test_outcome_of_one_gold_entity(noisy, expected):
    assert outcome_of((2, 4, "ORG"), noisy) == expected


# A hand-made pair: 4 sentences, 6 gold entities.
#   s0: "Acme" ORG kept; "Bob" PER missed
#   s1: "Acme" ORG retyped to LOC; one spurious MISC of 2 words
#   s2: "New York" LOC grown right by one word ("New York City")
#   s3: "Acme" ORG kept
TOKENS = [
    ["Acme", "hired", "Bob", "."],
    ["Acme", "won", "the", "World", "Cup"],
    ["New", "York", "City", "rains"],
    ["Acme", "lost"],
]
CLEAN = [
    ["B-ORG", "O", "B-PER", "O"],
    ["B-ORG", "O", "O", "O", "O"],
    ["B-LOC", "I-LOC", "O", "O"],
    ["B-ORG", "O"],
]
NOISY = [
    ["B-ORG", "O", "O", "O"],
    ["B-LOC", "O", "O", "B-MISC", "I-MISC"],
    ["B-LOC", "I-LOC", "I-LOC", "O"],
    ["B-ORG", "O"],
]


def hand_profile() -> dict:
    return profiles.learn(profiles.Pair(TOKENS, NOISY, CLEAN), {"noisy": "n", "clean": "c"})


def test_learn_counts_every_statistic_by_hand():
    profile = hand_profile()
    assert profile["entities"] == 5
    assert profile["sentences"] == 4 and profile["words"] == 15
    assert profile["token_error_rate"] == pytest.approx(5 / 15)  # Bob, Acme, World, Cup, City
    # gold 5, noisy 5 (Acme, Acme-LOC, World Cup, New York City, Acme), matching 2
    assert profile["entity_noise_level"] == pytest.approx(1 - 2 * 2 / (5 + 5))
    assert profile["cells"] == {
        "LOC|2": {"boundary": 1},
        "ORG|1": {"kept": 2, "retyped": 1},
        "PER|1": {"missed": 1},
    }
    assert profile["retype"] == {"ORG": {"LOC": 1}}
    assert profile["boundary"] == [
        {"left": 0, "right": 1, "pieces": 1, "new_type": None, "count": 1}
    ]
    assert profile["spurious"] == {
        "per_sentence": {"0": 3, "1": 1},
        "types": {"MISC": 1},
        "lengths": {"2": 1},
    }
    summary = profile["summary"]
    assert summary["outcomes"] == {"kept": 0.4, "missed": 0.2, "retyped": 0.2, "boundary": 0.2}
    assert summary["by_type"]["ORG"] == {
        "entities": 3, "kept": 2 / 3, "missed": 0.0, "retyped": 1 / 3, "boundary": 0.0,
    }  # fmt: skip
    assert summary["by_length"]["2"]["boundary"] == 1.0
    assert summary["boundary"]["grown_right"] == 1.0 and summary["boundary"]["split"] == 0.0
    assert summary["spurious_per_sentence"] == 0.25
    assert summary["spurious_per_entity"] == 0.2


def test_consistency_by_hand():
    """'Acme'/ORG occurs 3 times: kept, retyped, kept -> 1 agreeing pair of 3. ORG's
    outcomes are kept 2/3 and retyped 1/3, so independent draws agree with probability
    4/9 + 1/9 = 5/9; kappa = (1/3 - 5/9) / (1 - 5/9) < 0 -> 0."""
    consistency = hand_profile()["consistency"]
    assert consistency["repeated_forms"] == 1 and consistency["occurrences"] == 3
    assert consistency["pair_agreement"] == pytest.approx(1 / 3)
    assert consistency["pair_agreement_if_independent"] == pytest.approx(5 / 9)
    assert consistency["kappa"] == 0.0
    systematic = profiles.learn(
        profiles.Pair(
            [["Acme"], ["Acme"], ["Bob"], ["Bob"]],
            [["B-LOC"], ["B-LOC"], ["B-PER"], ["B-PER"]],
            [["B-ORG"], ["B-ORG"], ["B-ORG"], ["B-ORG"]],
        )
    )["consistency"]
    # both forms always get the same outcome; independent draws (1/2 each) agree half the time
    assert systematic["pair_agreement"] == 1.0
    assert systematic["pair_agreement_if_independent"] == pytest.approx(0.5)
    assert systematic["kappa"] == pytest.approx(1.0)


def test_profile_file_round_trip_and_bad_files(tmp_path):
    profile = hand_profile()
    path = tmp_path / "p.json"
    profiles.write(profile, path)
    assert profiles.read(path) == json.loads(json.dumps(profile))
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "something else"}')
    with pytest.raises(InputError, match=r"bad.json: not a noisebench profile"):
        profiles.read(bad)
    bad.write_text(json.dumps(profile | {"schema_version": 99}))
    with pytest.raises(InputError, match=r"schema version 99 is newer than this noisebench reads"):
        profiles.read(bad)
    bad.write_text(json.dumps({k: v for k, v in profile.items() if k != "boundary"}))
    with pytest.raises(InputError, match=r"bad.json: profile has no 'boundary'"):
        profiles.read(bad)
    bad.write_text("{")
    with pytest.raises(InputError, match=r"bad.json:1:2: invalid JSON"):
        profiles.read(bad)


# ------------------------------------------------------------------------ applying


NAMES = ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER"]


def encode(sentences: list[list[str]], names=NAMES) -> tuple[np.ndarray, np.ndarray]:
    lookup = {n: i for i, n in enumerate(names)}
    tags = np.array([lookup[t] for s in sentences for t in s])
    return tags, np.cumsum([0] + [len(s) for s in sentences])


def decoded(tags, offsets, names=NAMES) -> list[list]:
    return [
        decode_spans([names[t] for t in tags[offsets[i] : offsets[i + 1]]])
        for i in range(len(offsets) - 1)
    ]


def only(outcome: str, retype=None, boundary=None, spurious=None, kappa=0.0) -> dict:
    return {
        "cells": {"ORG|1": {outcome: 100}, "LOC|2": {outcome: 100}, "PER|1": {outcome: 100}},
        "retype": retype or {},
        "boundary": boundary or [],
        "spurious": spurious or {"per_sentence": {"0": 1}, "types": {}, "lengths": {}},
        "consistency": {"kappa": kappa},
    }


def test_applying_kept_changes_nothing_and_missed_removes_everything():
    tags, offsets = encode(CLEAN)
    rng = np.random.default_rng(0)
    kept, counts = profiles.apply_profile(TOKENS, tags, offsets, NAMES, "IOB2", only("kept"), rng)
    np.testing.assert_array_equal(kept, tags)
    assert counts["kept"] == 5 and counts["skipped"] == 0
    missed, counts = profiles.apply_profile(
        TOKENS, tags, offsets, NAMES, "IOB2", only("missed"), rng
    )
    assert not missed.any() and counts["missed"] == 5


def test_applying_retypes_by_the_confusion_row_and_moves_boundaries():
    tags, offsets = encode(CLEAN)
    retype = {"ORG": {"LOC": 5}, "PER": {"ORG": 1}, "LOC": {"PER": 1}}
    noisy, _ = profiles.apply_profile(
        TOKENS, tags, offsets, NAMES, "IOB2", only("retyped", retype), np.random.default_rng(1)
    )
    assert decoded(noisy, offsets) == [
        [(0, 1, "LOC"), (2, 3, "ORG")], [(0, 1, "LOC")], [(0, 2, "PER")], [(0, 1, "LOC")],
    ]  # fmt: skip
    grow = [{"left": 0, "right": 1, "pieces": 1, "new_type": None, "count": 1}]
    noisy, counts = profiles.apply_profile(
        TOKENS,
        tags,
        offsets,
        NAMES,
        "IOB2",
        only("boundary", boundary=grow),
        np.random.default_rng(1),
    )
    # every entity grows right by one word where the sentence has room (s3's "Acme lost"
    # has it; "Bob ." too)
    assert decoded(noisy, offsets) == [
        [(0, 2, "ORG"), (2, 4, "PER")], [(0, 2, "ORG")], [(0, 3, "LOC")], [(0, 2, "ORG")],
    ]  # fmt: skip
    assert counts["boundary"] == 5 and counts["skipped"] == 0


def test_spurious_entities_go_on_free_words_and_output_stays_iob2():
    tags, offsets = encode(CLEAN)
    spurious = {"per_sentence": {"2": 1}, "types": {"MISC": 1, "PER": 3}, "lengths": {"1": 1}}
    noisy, counts = profiles.apply_profile(
        TOKENS, tags, offsets, NAMES, "IOB2", only("kept", spurious=spurious),
        np.random.default_rng(3),
    )  # fmt: skip
    spans = decoded(noisy, offsets)
    gold = decoded(tags, offsets)
    assert counts["spurious"] == 7  # two per sentence; "Acme lost" has room for one
    for sentence, clean_spans, room in zip(spans, gold, [2, 2, 2, 1], strict=True):
        added = [s for s in sentence if s not in clean_spans]
        assert len(added) == room
        assert all(t == "PER" for _, _, t in added)  # MISC is not a type of the target
    assert detect_scheme(NAMES, noisy, offsets) == "IOB2"


def test_the_same_surface_form_shares_its_draw_when_kappa_is_one():
    tokens = [["Acme"]] * 40 + [["Bob"]] * 40
    tags, offsets = encode([["B-ORG"]] * 40 + [["B-PER"]] * 40)
    profile = only("kept") | {
        "cells": {"ORG|1": {"kept": 50, "missed": 50}, "PER|1": {"kept": 50, "missed": 50}},
        "consistency": {"kappa": 1.0},
    }
    noisy, _ = profiles.apply_profile(
        tokens, tags, offsets, NAMES, "IOB2", profile, np.random.default_rng(0)
    )
    assert len(set(noisy[:40])) == 1 and len(set(noisy[40:])) == 1
    independent, _ = profiles.apply_profile(
        tokens, tags, offsets, NAMES, "IOB2", profile | {"consistency": {"kappa": 0.0}},
        np.random.default_rng(0),
    )  # fmt: skip
    assert len(set(independent[:40])) == 2


def test_a_tag_set_with_other_types_gets_type_agnostic_rates():
    names = ["O", "B-person", "I-person", "B-corporation", "I-corporation"]
    tokens = [["Ann", "Lee", "at", "Acme"]] * 50
    tags, offsets = encode([["B-person", "I-person", "O", "B-corporation"]] * 50, names)
    profile = only("kept") | {
        "cells": {"ORG|1": {"retyped": 60, "kept": 40}},
        "retype": {"ORG": {"LOC": 1}},
    }
    noisy, counts = profiles.apply_profile(
        tokens, tags, offsets, names, "IOB2", profile, np.random.default_rng(0)
    )
    assert counts["retyped"] + counts["kept"] == 100
    assert 40 < counts["retyped"] < 80  # the overall rate, 60%
    spans = [s for sentence in decoded(noisy, offsets, names) for s in sentence]
    assert {t for _, _, t in spans} == {"person", "corporation"}  # swapped within the target


def test_same_seed_same_output_other_seed_other_output():
    profile = hand_profile()
    tags, offsets = encode(CLEAN * 20)

    def run(seed):
        return profiles.apply_profile(
            TOKENS * 20, tags, offsets, NAMES, "IOB2", profile, np.random.default_rng(seed)
        )[0]

    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


# ---------------------------------------------------------------------------- CLI


def write_conll(path, tokens, tags) -> None:
    blocks = [
        "\n".join(f"{w} {t}" for w, t in zip(ws, ts, strict=True))
        for ws, ts in zip(tokens, tags, strict=True)
    ]
    path.write_text("\n\n".join(blocks) + "\n")


def test_profile_command_writes_and_corrupt_applies_it(runner, tmp_path):
    write_conll(tmp_path / "noisy.conll", TOKENS * 10, NOISY * 10)
    write_conll(tmp_path / "clean.conll", TOKENS * 10, CLEAN * 10)
    out = tmp_path / "p.json"
    result = runner.invoke(
        app,
        ["profile", str(tmp_path / "noisy.conll"), str(tmp_path / "clean.conll"), "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "Entity noise level 0.6000" in result.stdout
    assert "kappa" in result.stdout and "Spurious entities: 0.250 per sentence" in result.stdout
    assert profiles.read(out)["entities"] == 50
    args = ["corrupt", str(tmp_path / "clean.conll"), "--profile", str(out), "--json"]
    first = runner.invoke(app, [*args, "-o", str(tmp_path / "a")])
    second = runner.invoke(app, [*args, "-o", str(tmp_path / "b")])
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    report = json.loads(first.stdout)["report"]
    assert report["noise"] == "profile" and report["entity_noise_level"] > 0.2
    assert (tmp_path / "a" / "train.parquet").read_bytes() == (
        tmp_path / "b" / "train.parquet"
    ).read_bytes()
    assert set(report["entity_events"]) >= {"kept", "missed", "retyped", "boundary", "spurious"}


def test_profile_bad_inputs_are_one_line_and_write_nothing(runner, tmp_path, monkeypatch):
    write_conll(tmp_path / "clean.conll", TOKENS, CLEAN)
    other = [list(s) for s in TOKENS]
    other[2][1] = "Jersey"
    write_conll(tmp_path / "other.conll", other, NOISY)
    write_conll(tmp_path / "pos.conll", TOKENS, [["NN"] * len(s) for s in TOKENS])
    cases = [
        (["profile", "other.conll", "clean.conll", "-o", "p.json"],
         "differ in their words: split 'train', sentence 2, word 1 ('Jersey' vs 'York')"),
        (["profile", "clean.conll"], "clean.conll: no clean_tags column; give the clean labels"),
        (["profile", "pos.conll", "pos.conll"], "its tags have no span scheme"),
        (["corrupt", "clean.conll", "--profile", "nope.json"], "nope.json: cannot read"),
        (["corrupt", "clean.conll", "--profile", "noisebench:crowdd"],
         "unknown NoiseBench variant 'crowdd'"),
        (["corrupt", "clean.conll", "--profile", "p.json", "--rate", "0.2"],
         "--rate has no effect with --profile"),
    ]  # fmt: skip
    profiles.write(hand_profile(), tmp_path / "p.json")
    before = files_under(tmp_path)
    monkeypatch.chdir(tmp_path)
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    assert files_under(tmp_path) == before


# ----------------------------------------------------------------- real noise


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.parametrize("variant", sorted(realnoise.PUBLISHED_ENTITY_NOISE))
def test_a_variants_profile_reproduces_it_on_the_clean_labels(with_conll2003, variant):
    """Fidelity: the profile applied to NoiseBench's clean train + dev gives back the
    variant's entity noise level and each outcome rate within 2 points."""
    pair, origin = profiles.pair_from(f"noisebench:{variant}")
    real = profiles.learn(pair, origin)
    names = realnoise.packaged_labels().names
    tags, offsets = encode(pair.clean, names)
    noisy, _ = profiles.apply_profile(
        pair.tokens, tags, offsets, names, "IOB2", real, np.random.default_rng(0)
    )
    simulated_tags = [[names[t] for t in noisy[a:b]] for a, b in itertools.pairwise(offsets)]
    simulated = profiles.learn(profiles.Pair(pair.tokens, simulated_tags, pair.clean))
    assert abs(simulated["entity_noise_level"] - real["entity_noise_level"]) < 0.02
    for outcome, rate in real["summary"]["outcomes"].items():
        assert abs(simulated["summary"]["outcomes"][outcome] - rate) < 0.02, outcome


@pytest.mark.slow
@pytest.mark.network
def test_profile_of_the_crowd_variant_and_its_built_in_use(
    with_conll2003, real_noise_dir, runner, tmp_path
):
    fetched = runner.invoke(app, ["sources", "fetch", "noisebench", "--from", str(real_noise_dir)])
    assert fetched.exit_code == 0, fetched.output
    result = runner.invoke(app, ["profile", "noisebench:crowd"])
    assert result.exit_code == 0, result.output
    assert "Entity noise level 0.3656" in result.stdout  # NoiseBench's published 36.6
    corrupted = runner.invoke(
        app,
        [
            "corrupt",
            "noisebench:clean",
            "--noise",
            "profile",
            "--profile",
            "noisebench:crowd",
            "-o",
            str(tmp_path / "c"),
            "--json",
        ],
    )
    assert corrupted.exit_code == 0, corrupted.output
    report = json.loads(corrupted.stdout)["report"]
    assert abs(report["splits"]["train"]["entity_noise_level"] - 0.3656) < 0.02
    dataset = data.load(tmp_path / "c")
    assert (
        detect_scheme(data.label_names(dataset["train"]), *data.flat_tags(dataset["train"]))
        == "IOB2"
    )
