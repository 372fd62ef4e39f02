"""The review round trip against a real Label Studio server: `review sample`'s labelling
config and tasks go in through its API, reviewers annotate (accept, resize, retype, add
and delete spans; two reviewers on some tasks, one of them correcting their annotation
later, a skipped task, a task left alone), and `review merge` reads its JSON export.

    NOISEBENCH_LABEL_STUDIO=/tmp/ls-venv/bin/label-studio python -m pytest -m labelstudio

The server (``label-studio``, ~1 GB, kept out of noisebench's install) is started once per
test session on a free port, and the tests skip where it is not installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import write_tagged_splits

from noisebench.cli import app
from noisebench.data import loading

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]  # the server starts in ~40 s

BINARY_VARIABLE = "NOISEBENCH_LABEL_STUDIO"
HOW_TO_ENABLE = (
    "install it apart (python -m venv /tmp/ls-venv && /tmp/ls-venv/bin/pip install"
    f" 'label-studio==1.23.2') and set {BINARY_VARIABLE}=/tmp/ls-venv/bin/label-studio"
)
TOKEN = "noisebench-test-token"
STARTUP_SECONDS = 180  # about 40 s on a first start (it migrates its database)

# sentence, its given labels, and what the reviewers make of it
VALIDATION = [
    ("John Smith flew to São Paulo", "B-PER O O O B-LOC I-LOC"),  # John resized to John Smith
    ("Acme Corp hired Mary", "B-ORG I-ORG O B-PER"),  # accepted as it is
    ("the Zürich office of Acme", "O B-LOC O O B-LOC"),  # Acme retyped ORG by both reviewers
    ("Berlin and Paris are cities", "B-LOC O B-LOC O O"),  # the reviewers disagree on Paris
    ("Mary visited New York", "O O B-LOC I-LOC"),  # Mary added; the second reviewer skips
    ("nothing to see here", "O O B-MISC O"),  # the spurious span deleted
    ("Paris is big", "B-LOC O O"),  # nobody looks at it
]
TRAIN = [("Euro fans met John Smith in Paris", "B-MISC O O B-PER I-PER O B-LOC")]
TEST = [("Mary Jones saw Acme Corp", "B-PER I-PER O B-ORG I-ORG")]


# -------------------------------------------------------------------------- the server


@dataclass(frozen=True)
class LabelStudio:
    """A running server, spoken to with the legacy API token."""

    url: str
    token: str

    def call(self, method: str, path: str, body: object = None) -> object:
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with _DIRECT.open(request, timeout=60) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{method} {path}: {error.code} {error.read()[:500]!r}") from None


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # localhost: no proxy


def label_studio_binary() -> str | None:
    named = os.environ.get(BINARY_VARIABLE)
    if named:
        return named if Path(named).is_file() else None
    return shutil.which("label-studio")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with _DIRECT.open(f"{url}/health", timeout=5) as response:
            return json.loads(response.read()).get("status") == "UP"
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory) -> Iterator[LabelStudio]:
    """A Label Studio server on a free localhost port, its data in a temporary folder,
    stopped (its whole process group) when the session ends."""
    binary = label_studio_binary()
    if binary is None:
        named = os.environ.get(BINARY_VARIABLE)
        found = f"{BINARY_VARIABLE}={named} is not a file" if named else "label-studio not found"
        pytest.skip(f"{found}: {HOW_TO_ENABLE}")
    home = tmp_path_factory.mktemp("label-studio")
    port = free_port()
    environment = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),  # its server id file, kept out of $HOME
        "LATEST_VERSION_CHECK": "false",  # no look-up on PyPI
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
    }
    command = [
        binary, "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
        "--username", "reviewer@example.org", "--password", "noisebench-test",
        "--user-token", TOKEN, "--enable-legacy-api-token",
    ]  # fmt: skip
    log_path = home / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            command, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(
                    f"Label Studio did not answer {url}/health (exit {server.poll()}):\n{tail}"
                )
            time.sleep(1)
        yield LabelStudio(url, TOKEN)
    finally:
        _stop(server)


def _stop(server: subprocess.Popen) -> None:
    """Stop the server's process group (it was started as a session leader): asked
    first, then killed, with whatever of the group is left."""
    with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


# ------------------------------------------------------------------------ the reviewers


def span(text: str, phrase: str, type_: str) -> dict:
    """A labelled span as the labelling interface makes one."""
    start = text.index(phrase)
    end = start + len(phrase)
    value = {"start": start, "end": end, "text": text[start:end], "labels": [type_]}
    return {"from_name": "label", "to_name": "text", "type": "labels", "value": value}


def review(server: LabelStudio, tasks: dict[int, int], second: int) -> None:
    """What the reviewers do, task by task (``tasks``: sentence → Label Studio task id;
    ``second``: the second reviewer's user id; the first is the token's user)."""
    text = {row: words for row, (words, _) in enumerate(VALIDATION)}

    def annotate(row: int, result: list, **extra) -> dict:
        return server.call(
            "POST", f"/api/tasks/{tasks[row]}/annotations/", {"result": result, **extra}
        )

    annotate(0, [span(text[0], "John Smith", "PER"), span(text[0], "São Paulo", "LOC")])
    annotate(1, [span(text[1], "Acme Corp", "ORG"), span(text[1], "Mary", "PER")])
    for reviewer in ({}, {"completed_by": second}):
        annotate(2, [span(text[2], "Zürich", "LOC"), span(text[2], "Acme", "ORG")], **reviewer)
    first = annotate(3, [span(text[3], "Berlin", "LOC")])  # Paris overlooked ...
    annotate(
        3, [span(text[3], "Berlin", "LOC"), span(text[3], "Paris", "ORG")], completed_by=second
    )
    server.call(  # ... and added later: this annotation is now the latest
        "PATCH",
        f"/api/annotations/{first['id']}/",
        {"result": [span(text[3], "Berlin", "LOC"), span(text[3], "Paris", "LOC")]},
    )
    annotate(4, [span(text[4], "Mary", "PER"), span(text[4], "New York", "LOC")])
    annotate(4, [], was_cancelled=True, completed_by=second)  # skipped
    annotate(5, [])  # the only span deleted
    # sentence 6: not annotated


INTENDED_LATEST = {
    0: "B-PER I-PER O O B-LOC I-LOC",
    1: "B-ORG I-ORG O B-PER",
    2: "O B-LOC O O B-ORG",
    3: "B-LOC O B-LOC O O",
    4: "B-PER O B-LOC I-LOC",
    5: "O O O O",
}
INTENDED_SECOND_REVIEWER = {2: "O B-LOC O O B-ORG", 3: "B-LOC O B-ORG O O"}


# --------------------------------------------------------------------------- the test


def run(runner, *args) -> dict:
    result = runner.invoke(app, [str(a) for a in args] + ["--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def merged_labels(folder: Path) -> dict[int, str]:
    """The merged validation split's reviewed sentences and their labels, word by word."""
    split = loading.load(folder)["validation"]
    names = loading.label_names(split)
    return {
        row: " ".join(names[t] for t in split[row]["reviewed_tags"])
        for row in range(len(split))
        if split[row]["reviewed"]
    }


def test_a_review_in_label_studio_merges_word_by_word(label_studio, runner, tmp_path):
    server = label_studio
    data = write_tagged_splits(
        tmp_path / "data", {"train": TRAIN, "valid": VALIDATION, "test": TEST}
    )
    folder = tmp_path / "review"
    run(runner, "review", "sample", data, "-n", 100, "-o", folder)

    project = server.call(
        "POST",
        "/api/projects/",
        {
            "title": "noisebench review",
            "label_config": (folder / "labelstudio-config.xml").read_text(),
        },
    )
    imported = server.call(
        "POST",
        f"/api/projects/{project['id']}/import",
        json.loads((folder / "labelstudio.json").read_text()),
    )
    assert (imported["task_count"], imported["prediction_count"]) == (7, 7)
    listed = server.call("GET", f"/api/tasks?project={project['id']}&page_size=100")
    tasks = {task["data"]["sentence"]: task["id"] for task in listed["tasks"]}
    assert sorted(tasks) == list(range(len(VALIDATION)))
    second = server.call(
        "POST", "/api/users/", {"email": "second@example.org", "username": "second"}
    )
    first = server.call("GET", "/api/current-user/whoami")
    review(server, tasks, second["id"])

    export = f"/api/projects/{project['id']}/export?exportType=JSON"
    (folder / "export.json").write_text(json.dumps(server.call("GET", export)))  # annotated tasks
    everything = folder / "export-all-tasks.json"
    everything.write_text(json.dumps(server.call("GET", export + "&download_all_tasks=true")))

    report = run(runner, "review", "merge", data, folder / "export.json", "-o", tmp_path / "latest")
    assert merged_labels(tmp_path / "latest") == INTENDED_LATEST
    assert report["counts"] == {
        "manifest_sentences": 7,
        "tasks": 6,
        "annotations": 8,
        "cancelled": 1,
        "drafts_only": 0,
        "other_answers": 0,
        "multiply_annotated": 2,
        "unreviewed_tasks": 0,
        "tied_spans": 0,
        "reviewed_sentences": 6,
        "reviewed_before": 0,
        "reviewed_in_split": 6,
        "reviewed_words": 6 + 4 + 5 + 5 + 4 + 4,
        "changed_words": 1 + 0 + 1 + 0 + 1 + 1,
        "changed_sentences": 4,
        "reviewed_again": 0,
        "changed_again_sentences": 0,
        "changed_again_words": 0,
    }
    # sentence 2: both {Zürich LOC, Acme ORG}; sentence 3: {Berlin LOC, Paris LOC} against
    # {Berlin LOC, Paris ORG}: 6 of 8 spans matched
    reviewers = sorted([str(first["id"]), str(second["id"])])
    agreement = report["agreement"]
    assert (agreement["tasks"], agreement["pairs"], agreement["spans"]) == (2, 2, 8)
    assert agreement["exact"] == agreement["overlap"] == 0.75
    assert agreement["by_annotators"] == [
        {"annotators": reviewers, "tasks": 2, "spans": 8, "exact": 0.75, "overlap": 0.75}
    ]

    theirs = run(runner, "review", "merge", data, everything, "-o", tmp_path / "second",
                 "--resolve", f"annotator:{second['id']}")  # fmt: skip
    assert merged_labels(tmp_path / "second") == INTENDED_SECOND_REVIEWER
    unreviewed = {row["sentence"]: (row["task"], row["why"]) for row in theirs["unreviewed"]}
    assert unreviewed == {
        row: (f"task {tasks[row]}", why)
        for row, why in (
            *((row, f"no annotation by {second['id']}") for row in (0, 1, 4, 5)),
            (6, "no annotation"),
        )
    }
