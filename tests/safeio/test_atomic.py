"""Specification of the atomic writers: a reader never sees a half-written file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handshape.safeio.atomic import atomic_write, record_once


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path: Path) -> None:
    def fail(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "out.txt", fail)
    assert list(tmp_path.iterdir()) == []


def test_a_record_is_written_once_and_later_compared(tmp_path: Path) -> None:
    path = tmp_path / "folder" / "manifest.json"
    assert record_once(path, {"num": 3, "key": "a"}) is None
    assert json.loads(path.read_text()) == {"num": 3, "key": "a"}
    assert record_once(path, {"key": "a", "num": 3}) is None  # the same record
    assert record_once(path, {"num": 4, "key": "a"}) == {"num": 3, "key": "a"}
    assert json.loads(path.read_text()) == {"num": 3, "key": "a"}  # never overwritten
