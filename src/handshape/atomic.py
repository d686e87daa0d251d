"""Writing files so that a reader never sees a half-written one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


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
