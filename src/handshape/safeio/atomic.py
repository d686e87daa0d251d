"""Writing files so that a reader never sees a half-written one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(
    path: Path, write: Callable[[str], object], suffix: str = ".tmp", durable: bool = False
) -> Path:
    """Call `write(tmp)` on a temporary name in `path`'s folder, then rename it onto `path`.

    The temporary file sits in the same folder because a rename is atomic only within one
    filesystem; it is removed if `write` fails or is interrupted. The result keeps the
    permissions of the file it replaces, else is world-readable (mkstemp creates private
    files). `durable` flushes the data to disk before the rename (for files a user keeps, e.g.
    models; caches and logs skip the cost). Returns `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        if durable:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """`atomic_write` of a text file (UTF-8). Returns `path`."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def record_once(path: Path, record: dict[str, Any]) -> dict[str, Any] | None:
    """Write `record` as JSON to `path` (atomically) unless the file exists; return what the
    file already holds when that differs from `record` (the caller refuses), else None.

    For a folder that must only ever hold the results of one kind of run (a cache keyed by
    its inputs, an output folder): the first run records what it is, later runs compare."""
    path = Path(path)
    if path.is_file():
        before = json.loads(path.read_text())
        return None if before == record else before
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True))
    return None
