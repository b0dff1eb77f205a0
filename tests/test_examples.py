"""The README and docs/*.md: their shell examples run against a real server, and their links lead somewhere.

Which blocks run: a fenced block tagged `sh` is an example, and runs; blocks tagged
anything else (`json`, `text`, `python`, `js`, `toml`, `promql`, none) are illustrations
and do not. An `sh` block that cannot run in a test (it starts the service itself, needs
root or systemd, or names paths of another machine) has the line `<!-- not run: why -->`
just above it. Each page runs in one bash process with `set -euo pipefail`, its blocks in
the order they appear, so a variable set in one block is there in the next; pages share
no variables, only the server. The examples reach the server through `BASE`, from a folder that
looks like a checkout after `make run` (the repository's files, and `.venv`), so that what
they write stays out of the repository.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ROOT, Server

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent> *)```(?P<tag>[\w-]*)\s*$")
NOT_RUN = re.compile(r"^\s*<!-- not run: (?P<why>\S.*?) -->\s*$")
PAGE_SECONDS = 120


@dataclass(frozen=True)
class Block:
    """A fenced block of a page: where it starts, its tag and text, and why it does not run (if it does not)."""

    page: Path
    line: int
    tag: str
    text: str
    not_run: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.tag == "sh" and self.not_run is None


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, in order; an indented block (in a list item) loses its indent."""
    found: list[Block] = []
    lines = page.read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent = len(opening["indent"])
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        above = next((line for line in reversed(lines[:index]) if line.strip()), "")
        marker = NOT_RUN.match(above)
        text = "\n".join(line[indent:] for line in lines[index + 1 : end])
        found.append(Block(page, index + 1, opening["tag"], text, marker["why"] if marker else None))
        index = end + 1
    return found


RUNNABLE = [page for page in PAGES if any(block.runs for block in blocks(page))]


def script(page: Path) -> str:
    """The page's examples as one bash script; each block announces itself, so a failure says where."""
    parts = ["set -euo pipefail"]
    for block in blocks(page):
        if block.runs:
            parts += [f"echo '>>> {block.where}'", block.text]
    return "\n".join(parts) + "\n"


LOCAL_STATE = {"config.toml", "weather_metrics.db", "exports", "backups"}  # what `make run` leaves in a checkout


def checkout(folder: Path) -> None:
    """Make `folder` look like a checkout after `make run`: the repository's files, and a .venv that works."""
    for entry in ROOT.iterdir():
        if not entry.name.startswith(".") and entry.name not in LOCAL_STATE and ".db" not in entry.name:
            (folder / entry.name).symlink_to(entry)
    (folder / ".venv").symlink_to(Path(sys.prefix))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    database = tmp_path_factory.mktemp("examples") / "metrics.db"
    # Cheap password hashes; everything else as a fresh `make run` has it.
    with Server(database, password_time_cost=2, password_memory_kib=19456) as running:
        yield running


def test_the_convention_finds_examples_and_marks_few_blocks() -> None:
    """The README runs; each marker sits above an `sh` block, and fewer than one block in four is marked."""
    every = [block for page in PAGES for block in blocks(page)]
    assert ROOT / "README.md" in RUNNABLE
    misplaced = [block.where for block in every if block.not_run and block.tag != "sh"]
    assert misplaced == [], "a not-run marker above a block that would not run anyway"
    marked = [block for block in every if block.not_run]
    assert len(marked) * 4 < sum(block.runs for block in every), [block.where for block in marked]
    lines = [line.strip() for page in PAGES for line in page.read_text().splitlines()]
    markers = [line for line in lines if line.startswith("<!-- not run")]
    assert len(markers) == len(marked), "a marker above no block, or not in the form <!-- not run: why -->"


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda page: str(page.relative_to(ROOT)))
def test_the_examples_of_a_page_run_in_order(page: Path, server: Server, tmp_path: Path) -> None:
    for tool in ("curl", "jq"):
        if shutil.which(tool) is None:
            if os.environ.get("WEATHER_METRICS_TEST_STRICT"):
                pytest.fail(f"the examples need {tool}; .ci/run installs it")
            pytest.skip(f"the examples need {tool}")
    checkout(tmp_path)
    env = {**server.env, "BASE": server.url}
    shell = subprocess.Popen(
        ["bash", "-c", script(page)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = shell.communicate(timeout=PAGE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(shell.pid, signal.SIGKILL)
        output, _ = shell.communicate()
    text = output.decode(errors="replace")
    assert shell.returncode == 0, f"exit {shell.returncode}; the last '>>>' is the block that failed:\n{text[-6000:]}"


# --- Links --------------------------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCED = re.compile(r"^ *```.*?^ *```", re.DOTALL | re.MULTILINE)
CODE = re.compile(r"`[^`\n]*`")


def slugs(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings: lower case, punctuation dropped, spaces as hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", FENCED.sub("", markdown), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        seen[slug] = seen.get(slug, -1) + 1
        if seen[slug]:
            seen[f"{slug}-{seen[slug]}"] = 0
    return set(seen)


def links(page: Path) -> list[str]:
    """The targets of the page's links, outside code."""
    return LINK.findall(CODE.sub("", FENCED.sub("", page.read_text())))


def test_anchors_are_made_as_github_makes_them() -> None:
    text = "# Live updates: the WebSocket `/ws`\n## Rooms\n\n```sh\n# a comment\n```\n## Rooms\n### What *is* 1–2?\n"
    assert slugs(text) == {"live-updates-the-websocket-ws", "rooms", "rooms-1", "what-is-12"}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_lead_to_files_of_the_repository(page: Path) -> None:
    """A link to another page (and its heading) of this checkout; nothing outside it, such as ../shared/."""
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if ROOT not in file.parents or not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in slugs(file.read_text()):
            broken.append(target)
    assert broken == []
