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
    """Every test gets its own empty NOISEBENCH_HOME, so nothing touches the user's cache."""
    home = tmp_path_factory.mktemp("noisebench-home")
    monkeypatch.setenv("NOISEBENCH_HOME", str(home))
    return home


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
