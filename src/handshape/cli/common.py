"""What several command groups share: the help of --configs and of overrides, and loading a
--checkpoint with errors that name the argument."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CONFIGS_HELP = "a folder of your own configs, searched before the package's (same layout)"
OVERRIDES_HELP = (
    "config overrides as key=value (an unknown key is an error; +key=value adds a new one)"
)


def load_checkpoint(path: Path) -> tuple[Any, dict[str, Any]]:
    """`nets.bundle.load_network` of a `--checkpoint`, its errors naming the argument."""
    from handshape.nets.bundle import load_network

    try:
        return load_network(path)
    except (ValueError, FileNotFoundError) as err:
        raise ValueError(f"--checkpoint: {err}") from err
