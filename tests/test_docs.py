"""The documentation a newcomer reads: a short README, links that resolve, and every command in
a code block accepted by the command line it names (its flags checked by the real parser)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from handshape.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
BLOCK = re.compile(r"```(?:bash|sh)?\n(.*?)```", re.S)
# A command, after a prompt, environment variables or `time`: handshape (any path) or make.
COMMAND = re.compile(r"^(?:\$ )?(?:[A-Z_]+=\S+ )*(?:time )?(?:(?:\S*/)?handshape|make)\b")


def test_the_readme_is_short() -> None:
    assert len((REPO / "README.md").read_text().splitlines()) <= 200


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_resolves(page: Path) -> None:
    missing = []
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists() and not _generated(path):
            missing.append(target)
    assert not missing, f"{page.name}: {missing}"


def _generated(path: Path) -> bool:
    """Files the docs show that a command makes and git ignores (photographs of real sets)."""
    return path.name == "real_samples_predict.png"


def commands(page: Path) -> list[str]:
    """The shell commands of a page's code blocks, continuation lines joined, comments cut."""
    found = []
    for block in BLOCK.findall(page.read_text()):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split(" #")[0].strip()
            if COMMAND.match(line):
                found.append(line.removeprefix("$ "))
    return found


def handshape_commands() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        for line in commands(page):
            words = shlex.split(line)
            for k, word in enumerate(words):
                if word.split("/")[-1] == "handshape" and k + 1 < len(words):
                    out.append((page.name, " ".join(shlex.quote(w) for w in words[k + 1 :])))
                    break
    return out


@pytest.mark.parametrize("page,command", handshape_commands())
def test_every_documented_handshape_command_parses(page: str, command: str) -> None:
    try:
        build_parser().parse_args(shlex.split(command))
    except SystemExit as err:
        pytest.fail(f"{page}: `handshape {command}` is refused by the parser ({err})")


def test_every_documented_make_target_exists() -> None:
    targets = set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), re.M))
    wanted = set()
    for page in PAGES:
        for line in commands(page):
            words = shlex.split(line)
            for k, word in enumerate(words):
                if word == "make" and k + 1 < len(words) and not words[k + 1].startswith("-"):
                    target = next((w for w in words[k + 1 :] if "=" not in w), None)
                    if target:
                        wanted.add((page.name, target))
    missing = [(page, t) for page, t in wanted if t not in targets]
    assert not missing, missing


def test_the_headline_figures_are_the_checked_ones() -> None:
    """README and benchmarks.md quote what `make pretrain` checks itself against."""
    import json

    headline = json.loads((REPO / "docs" / "headline.json").read_text())
    mesh, pose = f"{headline['mesh_error_mm']:.2f}", f"{headline['pose_error_mm']:.2f}"
    quoted = f"mesh {mesh} mm, pose {pose} mm, AUC {headline['auc_20_50']:.3f}"
    for page in (REPO / "README.md", REPO / "docs" / "benchmarks.md"):
        assert quoted in page.read_text(), page.name
