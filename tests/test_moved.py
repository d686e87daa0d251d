"""Modules that moved into packages: their old import paths still give the very same module,
with a DeprecationWarning naming the new path, and nothing of the project uses them any more."""

from __future__ import annotations

import importlib
import re
import sys
import warnings
from pathlib import Path

import pytest

import handshape
from handshape._moved import MOVED

REPO = Path(__file__).resolve().parents[1]
SRC = Path(handshape.__file__).resolve().parent


def forget(monkeypatch: pytest.MonkeyPatch, old: str) -> None:
    """Make the next import of `old` a first one (earlier tests may have imported it)."""
    monkeypatch.delitem(sys.modules, old, raising=False)
    monkeypatch.delattr(handshape, old.rpartition(".")[2], raising=False)


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_an_old_path_gives_the_new_module_with_a_warning_naming_it(
    monkeypatch: pytest.MonkeyPatch, old: str, new: str
) -> None:
    forget(monkeypatch, old)
    with pytest.warns(DeprecationWarning, match=re.escape(f"import {new} instead")) as caught:
        exec(compile(f"import {old}", __file__, "exec"), {})  # an import statement here
    module = sys.modules[old]
    assert module is importlib.import_module(new)
    assert module.__name__ == new and module.__spec__.name == new
    assert caught[0].filename == __file__  # the warning points at the importing line


def test_from_imports_of_old_paths_work_and_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    from handshape.evaluation import metrics

    forget(monkeypatch, "handshape.metrics")
    with pytest.warns(DeprecationWarning, match=r"handshape\.evaluation\.metrics"):
        from handshape.metrics import pck_curve
    assert pck_curve is metrics.pck_curve
    forget(monkeypatch, "handshape.safe_pickle")
    with pytest.warns(DeprecationWarning, match=r"handshape\.safeio\.pickles"):
        from handshape import safe_pickle
    assert safe_pickle is importlib.import_module("handshape.safeio.pickles")


def test_importing_new_paths_warns_nothing() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for new in MOVED.values():
            importlib.import_module(new)


def test_no_module_file_is_left_at_an_old_path() -> None:
    left = [old for old in MOVED if (SRC / f"{old.removeprefix('handshape.')}.py").exists()]
    assert not left, f"shim files at the package root: {left}"


def test_the_project_imports_only_new_paths() -> None:
    leaves = "|".join(old.removeprefix("handshape.") for old in MOVED)
    pattern = re.compile(rf"\bhandshape\.({leaves})\b|from handshape import [^\n]*\b({leaves})\b")
    files = [
        p
        for folder in ("src", "tests", "scripts", "notebooks")
        for p in (REPO / folder).rglob("*")
        if p.suffix in (".py", ".ipynb") and p != Path(__file__) and p.name != "_moved.py"
    ]
    found = [
        f"{p.relative_to(REPO)}:{n}: {line.strip()}"
        for p in files
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, "\n".join(found)
