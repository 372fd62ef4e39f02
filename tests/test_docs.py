"""The README and docs/ cannot rot: every ``noisebench ...`` line names a real command and
only options that command has, every relative link resolves, the doctest-sized examples
run as written, and the README stays a front page.

    python -m pytest tests/test_docs.py -q

Commands are read from fenced code blocks (every line of a ``bash``/``sh``/``shell``
block, ``$ `` lines of any block, a YAML step's ``run:``; a trailing backslash continues a
line) and from inline code that starts with ``noisebench`` or a command name followed by
an option (``train --method``). The truth is the Typer app itself.
"""

from __future__ import annotations

import doctest
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from noisebench.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
README_MAX_LINES = 300
# Pages a link may name before they exist: written by someone else, checked once they do.
PENDING: dict[Path, str] = {}
# Its examples belong to the API and are run by the API's own tests.
NOT_DOCTESTED = {ROOT / "docs" / "api.md"}  # tests/test_api.py runs its example
SHELL_BLOCKS = {"bash", "sh", "shell", "zsh", "console"}  # console: only `$ ` lines
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)")
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+(?:\n[^`\n]+)*)`(?!`)")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")"}
REDIRECTIONS = {">", ">>", "<", "2>", "&>"}


@dataclass(frozen=True)
class Command:
    page: Path
    line: int
    text: str


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# ---------------------------------------------------------------- reading a page


def fenced_blocks(lines: list[str]) -> list[tuple[str, int, list[str]]]:
    """(language, 1-based line of the block's first line, its lines) per fenced block."""
    blocks, inside, opener = [], None, None
    for number, line in enumerate(lines, 1):
        match = FENCE.match(line)
        if inside is None and match:
            opener, inside = match.group(1), (match.group(2).lower(), number + 1, [])
        elif inside is not None and line.strip().startswith(opener[0] * len(opener)):
            blocks.append(inside)
            inside = None
        elif inside is not None:
            inside[2].append(line)
    return blocks


def prose(lines: list[str]) -> str:
    """The page with its fenced blocks blanked (line numbers kept)."""
    kept, fenced = [], set()
    for _, first, body in fenced_blocks(lines):
        fenced.update(range(first - 1, first + len(body) + 1))  # the fences too
    for number, line in enumerate(lines, 1):
        kept.append("" if number in fenced else line)
    return "\n".join(kept)


def logical_lines(body: list[str], first: int) -> list[tuple[int, str]]:
    """Lines joined where one ends with a backslash, each with its first line's number."""
    joined, pending, start = [], "", None
    for offset, line in enumerate(body):
        start = first + offset if start is None else start
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append((start, pending + line))
        pending, start = "", None
    if pending:
        joined.append((start, pending))
    return joined


def yaml_runs(body: list[str], first: int) -> list[tuple[int, str]]:
    """A GitHub Actions step's ``run:`` command, folded (``>``, ``|``) or on one line."""
    found, index = [], 0
    while index < len(body):
        match = re.match(r"^(\s*)(?:- )?run:\s*(.*)$", body[index])
        index += 1
        if not match:
            continue
        indent, value = len(match.group(1)), match.group(2).strip()
        if value not in (">", "|", ">-", "|-"):
            found.append((first + index - 1, value))
            continue
        start, parts = first + index, []
        while index < len(body) and (
            not body[index].strip() or len(body[index]) - len(body[index].lstrip()) > indent
        ):
            parts.append(body[index].strip())
            index += 1
        found.append((start, (" " if value.startswith(">") else "\n").join(parts)))
    return found


def commands_in_blocks(page: Path, lines: list[str]) -> list[Command]:
    found = []
    for language, first, body in fenced_blocks(lines):
        for number, line in logical_lines(body, first):
            stripped = line.strip()
            if stripped.startswith("$ "):
                found.append(Command(page, number, stripped[2:]))
            elif language in SHELL_BLOCKS - {"console"}:
                found.append(Command(page, number, stripped))
        if language in ("yaml", "yml"):
            found += [Command(page, n, text) for n, text in yaml_runs(body, first)]
    return found


def commands_inline(page: Path, text: str) -> list[Command]:
    """Inline code that runs a command: ``noisebench corrupt ...``, or a command's name
    followed by an option or subcommand (``sweep --methods none,mask-missing``)."""
    names = set(typer.main.get_command(app).commands)
    found = []
    for match in INLINE_CODE.finditer(text):
        code = " ".join(match.group(1).split())
        words = code.split(" ")
        line = text.count("\n", 0, match.start()) + 1
        if words[0] == "noisebench" and len(words) > 1:
            found.append(Command(page, line, code))
        elif words[0] in names and len(words) > 1 and re.match(r"-|fetch$", words[1]):
            found.append(Command(page, line, "noisebench " + code))
    return found


def page_commands(page: Path) -> list[Command]:
    lines = page.read_text(encoding="utf-8").splitlines()
    return commands_in_blocks(page, lines) + commands_inline(page, prose(lines))


# ---------------------------------------------------------------- checking a command


def words_of(text: str) -> list[str] | None:
    """Shell words (comments dropped), or None where the line is not shell."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: prose in a block, not a command
        return None


def invocations(text: str) -> list[list[str]]:
    """Each ``noisebench`` call on a shell line, its arguments after the program."""
    words = words_of(text)
    if not words:
        return []
    calls, segment, skip = [], [], False
    for word in [*words, ";"]:
        if skip:
            skip = False
        elif word in REDIRECTIONS:
            skip = True
        elif word in SEPARATORS:
            while segment and re.match(r"^[A-Za-z_]\w*=", segment[0]):
                segment = segment[1:]  # VAR=value before the program
            if segment[:1] == ["noisebench"]:
                calls.append(segment[1:])
            elif segment[:3] == ["python", "-m", "noisebench"]:
                calls.append(segment[3:])
            segment = []
        else:
            segment.append(word)
    return calls


def options_of(command) -> dict[str, bool]:
    """Each option string of a click command -> whether it takes a value."""
    options = {"--help": False}
    for param in command.params:
        if getattr(param, "param_type_name", "") != "option":
            continue
        takes_value = not (param.is_flag or getattr(param, "count", False))
        for name in (*param.opts, *(param.secondary_opts or ())):
            options[name] = takes_value
    return options


def check_call(arguments: list[str]) -> list[str]:
    """What is wrong with ``noisebench ARGUMENTS``: unknown commands and options."""
    command, path, problems = typer.main.get_command(app), ["noisebench"], []
    index = 0
    while index < len(arguments):
        word = arguments[index]
        index += 1
        if word == "--":
            break
        if word.startswith("-") and len(word) > 1 and not re.match(r"^-\d", word):
            name = word.split("=", 1)[0]
            options = options_of(command)
            if name not in options:
                problems.append(f"'{' '.join(path)}' has no option {name}")
            elif options[name] and "=" not in word:
                index += 1  # its value
            continue
        subcommands = getattr(command, "commands", None)
        if subcommands is not None:
            if word not in subcommands:
                known = ", ".join(sorted(subcommands))
                problems.append(f"'{' '.join(path)}' has no command '{word}' (it has {known})")
                break
            command = subcommands[word]
            path.append(word)
    return problems


def command_problems(commands: list[Command]) -> list[str]:
    problems = []
    for command in commands:
        for call in invocations(command.text):
            for problem in check_call(call):
                where = f"{relative(command.page)}:{command.line}"
                problems.append(f"{where}: {problem}, in: noisebench {' '.join(call)}")
    return problems


# ---------------------------------------------------------------- links and anchors


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    lines = page.read_text(encoding="utf-8").splitlines()
    seen: dict[str, int] = {}
    found = set()
    for line in prose(lines).splitlines():
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[tuple[int, str]]:
    """(line, target) of every link on the page outside code."""
    text = INLINE_CODE.sub(
        lambda m: re.sub(r"[^\n]", " ", m.group(0)),
        prose(page.read_text(encoding="utf-8").splitlines()),
    )
    found = [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in LINK.finditer(text)]
    for number, line in enumerate(text.splitlines(), 1):
        match = REFERENCE_LINK.match(line)
        if match:
            found.append((number, match.group(1)))
    return found


def link_problems(page: Path) -> list[str]:
    problems = []
    for line, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
            continue
        path_part, _, anchor = target.partition("#")
        where = f"{relative(page)}:{line}"
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            if resolved not in PENDING:
                problems.append(f"{where}: link to {target}: {relative(resolved)} does not exist")
            continue
        if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            heading = f"no heading '#{anchor}' in {relative(resolved)}"
            problems.append(f"{where}: link to {target}: {heading}")
    return problems


# ---------------------------------------------------------------- the tests


def ids(pages: list[Path]) -> list[str]:
    return [relative(page) for page in pages]


@pytest.mark.parametrize("page", PAGES, ids=ids(PAGES))
def test_commands_exist(page):
    problems = command_problems(page_commands(page))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=ids(PAGES))
def test_relative_links_resolve(page):
    problems = link_problems(page)
    assert not problems, "\n".join(problems)


DOCTESTED = [page for page in PAGES if ">>> " in page.read_text() and page not in NOT_DOCTESTED]


@pytest.mark.parametrize("page", DOCTESTED, ids=ids(DOCTESTED))
def test_examples_run(page):
    failures, tried = doctest.testfile(str(page), module_relative=False)
    assert tried > 0 and failures == 0


def test_docs_hold_commands_and_examples():
    """The checks above see what the pages show (not a parser that silently finds none)."""
    readme = page_commands(README)
    assert len(readme) >= 10
    assert sum(len(page_commands(page)) for page in PAGES) >= 100
    assert sum(doctest.testfile(str(p), module_relative=False).attempted for p in DOCTESTED) >= 4


def test_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most 300)"
    text = "\n".join(lines)
    assert 'python -m pip install -e ".[dev]" && python -m pytest' in text  # what .ci/run runs
    assert "noisebench sweep --preset quick" in text


def test_a_bad_command_is_named_with_its_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Run `noisebench trian`.\n\n"
        "```bash\n"
        "noisebench train --loss gce \\\n"
        "    --no-such-option 1   # a comment\n"
        "noisebench sources fetch conll2003 --from x && noisebench leaderboard runs -o lb\n"
        "```\n\n"
        "```console\n"
        "$ noisebench corrupt --rate 0.4 --colour\n"
        "Next: noisebench train --bogus\n"
        "```\n\n"
        "```yaml\n"
        "- run: >\n"
        "    noisebench leaderboard runs\n"
        "    --fail-on f1:-2 --gate\n"
        "```\n\n"
        "See [the guide](missing.md) and [here](#nowhere); `sweep --methods none` is fine.\n"
    )
    problems = command_problems(page_commands(page)) + link_problems(page)
    assert problems == [
        f"{page}:4: 'noisebench train' has no option --no-such-option,"
        " in: noisebench train --loss gce --no-such-option 1",
        f"{page}:10: 'noisebench corrupt' has no option --colour,"
        " in: noisebench corrupt --rate 0.4 --colour",
        f"{page}:16: 'noisebench leaderboard' has no option --gate,"
        " in: noisebench leaderboard runs --fail-on f1:-2 --gate",
        f"{page}:1: 'noisebench' has no command 'trian' (it has corrupt, detect, leaderboard,"
        " profile, review, score, sources, sweep, train), in: noisebench trian",
        f"{page}:20: link to missing.md: {tmp_path / 'missing.md'} does not exist",
        f"{page}:20: link to #nowhere: no heading '#nowhere' in {page}",
    ]


def test_slugs_follow_github():
    assert slug("Beyond the loss: masking by error type, and oracle bounds") == (
        "beyond-the-loss-masking-by-error-type-and-oracle-bounds"
    )
    assert slug("What `--method` does") == "what---method-does"
    assert slug("Finding the wrong labels: `noisebench detect`") == (
        "finding-the-wrong-labels-noisebench-detect"
    )
