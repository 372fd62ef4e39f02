"""A saved model carries its card, and runs in transformers' pipeline as noisebench runs it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import write_tagged_splits
from test_train import run_train, train_args

from noisebench import __version__
from noisebench.training import card, runs


def front_matter(text: str) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", text, re.DOTALL)
    assert match, text[:200]
    return yaml.safe_load(match.group(1))


@pytest.fixture(scope="module")
def saved(tmp_path_factory, ner_dir, tiny_model) -> tuple[Path, dict]:
    from typer.testing import CliRunner

    folder = tmp_path_factory.mktemp("saved")
    args = train_args(ner_dir, tiny_model, folder, "--epochs", 2, "--loss", "gce", "--q", 0.7,
                      "--seed", 3, "--save-model")  # fmt: skip
    return run_train(CliRunner(), *args)


def test_a_saved_model_carries_a_card_hugging_face_reads(saved):
    from huggingface_hub import ModelCard

    run_dir, results = saved
    text = (run_dir / "model" / "README.md").read_text()
    metadata = front_matter(text)
    assert metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == "token-classification"
    assert {"noisebench", "gce"} <= set(metadata["tags"])
    assert "base_model" not in metadata  # a local folder has no Hub id
    (entry,) = metadata["model-index"]
    assert entry["name"] == run_dir.name
    metrics = {m["name"]: m["value"] for m in entry["results"][0]["metrics"]}
    test = results["splits"]["test"]
    # the fixture's test labels have no clean version: named as what they are
    assert metrics["entity F1 (test, the labels as given)"] == round(test["f1"], 4)
    assert metrics["expected calibration error (test, the labels as given)"] == round(
        test["ece"], 4
    )
    assert entry["results"][0]["dataset"]["split"] == "test"
    # huggingface_hub parses it as the Hub would
    loaded = ModelCard.load(run_dir / "model" / "README.md")
    assert loaded.data.pipeline_tag == "token-classification"
    assert loaded.data.eval_results[0].metric_value == round(test["f1"], 4)
    # the set-up, the scores with their intervals, the noise, the version
    assert "GCE (q = 0.7)" in text and "| seed | 3 |" in text
    assert f"| noisebench | {__version__} |" in text
    low, high = test["f1_interval"]
    assert low <= test["f1"] <= high
    assert f"| {low:.4f} – {high:.4f} |" in text
    assert "no clean version to compare with" in text
    assert results["versions"]["noisebench"] == __version__


def test_the_card_names_clean_labels_and_a_built_in_base_model():
    results = {
        "run": "r", "dataset": "conll2003", "labels": ["O", "B-PER", "I-PER"], "scheme": "IOB2",
        "config": {"model": "minilm-l6", "data": "conll2003", "loss": "ce", "q": None,
                   "s": None, "method": "mask-missing", "noise": "uniform", "rate": 0.4,
                   "epochs": 3, "lr": 5e-5, "batch_size": 32, "seed": 0},
        "train": {"scored_labels": {"test": "clean"}, "validation_labels": "noisy",
                  "label_noise": {"token_error_rate": 0.25, "entity_noise_level": 0.4},
                  "epochs_run": 3, "best_epoch": 2, "precision": "bf16"},
        "splits": {"test": {"f1": 0.81234, "precision": 0.8, "recall": 0.82, "ece": 0.031,
                            "n_sentences": 3453, "f1_interval": [0.8, 0.82],
                            "reviewed": {"f1": 0.7, "precision": 0.7, "recall": 0.7,
                                         "ece": 0.05, "n_sentences": 50,
                                         "f1_interval": [0.6, 0.8]}}},
    }  # fmt: skip
    text = card.card(results, ["John", "lives", "in", "Berlin"], "ab" * 32)
    metadata = front_matter(text)
    assert metadata["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    names = [m["name"] for m in metadata["model-index"][0]["results"][0]["metrics"]]
    assert "entity F1 (test, clean labels)" in names
    assert "entity F1 (test, 50 reviewed sentences drawn at random)" in names
    assert "| test | reviewed sentences (random sample) | 50 | 0.7000 | 0.6000 – 0.8000 |" in text
    assert "uniform at rate 0.4" in text and "25.0% of the training words" in text
    assert "`--method mask-missing`" in text and "fingerprint `abababababababab`" in text
    assert "print(tagger('John lives in Berlin'))" in text


def word_labels_from_pipeline(tagger, words: list[str]) -> list[str]:
    """Each word's label from the pipeline's per-token output: its first sub-token's."""
    text = " ".join(words)
    starts, position = [], 0
    for word in words:
        starts.append(text.index(word, position))
        position = starts[-1] + len(word)
    by_start = {}
    for token in tagger(text):
        by_start.setdefault(token["start"], token["entity"])
    return [by_start[s] for s in starts]


def test_the_pipeline_gives_noisebench_s_word_labels(saved, ner_dir):
    from transformers import pipeline

    run_dir, _ = saved
    tagger = pipeline("token-classification", model=str(run_dir / "model"), device="cpu",
                      ignore_labels=[], aggregation_strategy="none")  # fmt: skip
    made = runs.read_predictions(run_dir / "predictions-test.parquet")
    ours = made.sentences(made.predicted)
    compared = entities = 0
    for words, labels in list(zip(made.tokens, ours, strict=True))[:8]:
        assert word_labels_from_pipeline(tagger, words) == list(labels)
        compared, entities = compared + len(words), entities + sum(x != "O" for x in labels)
    assert compared > 20 and entities > 3


def test_the_card_s_snippet_gives_whole_words(tmp_path, runner):
    """A vocabulary that splits "merkel" into "mer" + "##kel", a model that calls every
    sub-token B-PER: the card's snippet (aggregation "first") returns whole words; the
    pipeline's "simple" splits the word, as the card says."""
    import torch
    from transformers import (
        AutoModelForTokenClassification,
        BertConfig,
        BertModel,
        BertTokenizerFast,
    )

    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "angela", "mer", "##kel",
              "visited", "berlin", "and"]  # fmt: skip
    model_dir = tmp_path / "base"
    BertTokenizerFast(vocab={w: i for i, w in enumerate(pieces)}).save_pretrained(model_dir)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(pieces), hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32,
                         max_position_embeddings=32)).save_pretrained(model_dir)  # fmt: skip
    sentence = ("angela merkel visited berlin", "B-PER I-PER O B-LOC")
    data = write_tagged_splits(tmp_path / "data", {
        "train": [sentence] * 8, "valid": [sentence] * 2, "test": [sentence] * 2,
    })  # fmt: skip
    run_dir, _ = run_train(runner, *train_args(data, model_dir, tmp_path / "runs",
                                               "--epochs", 1, "--save-model"))  # fmt: skip
    saved = run_dir / "model"
    model = AutoModelForTokenClassification.from_pretrained(saved)
    with torch.no_grad():  # every sub-token B-PER, whatever it learnt
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor(
            [10.0 if name == "B-PER" else 0.0 for name in model.config.id2label.values()]
        ))  # fmt: skip
    model.save_pretrained(saved)
    text = (saved / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)
    assert card.SNIPPET_MODEL in snippet and "angela merkel visited berlin" in snippet
    found = {}
    code = snippet.replace(card.SNIPPET_MODEL, f"MODEL = {str(saved)!r}")
    exec(code.replace("print(", "found['x'] = ("), {"found": found})  # the card's own code
    assert [e["word"] for e in found["x"]] == ["angela", "merkel", "visited", "berlin"]
    from transformers import pipeline

    simple = pipeline("token-classification", model=str(saved), aggregation_strategy="simple")
    words = [e["word"] for e in simple("angela merkel visited berlin")]
    assert "merkel" not in words and "##kel" in " ".join(words)


def test_results_name_the_release(saved):
    _, results = saved
    stored = json.loads((saved[0] / "results.json").read_text())
    assert stored["versions"]["noisebench"] == __version__ == results["versions"]["noisebench"]
    assert np.isfinite(stored["splits"]["validation"]["f1_interval"]).all()
