"""Fixtures shared across test folders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import yaml

from handshape.config import PACKAGE_CONFIGS

CONFIGS = PACKAGE_CONFIGS


@pytest.fixture(scope="session")
def tiny_data_overrides() -> Callable[[Path], list[str]]:
    """A function: folder -> experiment overrides for 16 train / 8 validation synthetic images
    at 64 pixels under that folder (made on first use by the code under test)."""

    def overrides(base: Path) -> list[str]:
        synth = base / "synthetic.yaml"
        settings = yaml.safe_load((CONFIGS / "data" / "synthetic.yaml").read_text())
        synth.write_text(yaml.safe_dump({**settings, "size": 64, "shard_size": 8}))
        return [
            f"data.root={base / 'data'}",
            f"data.config={synth}",
            "data.num_train=16",
            "data.num_val=8",
        ]

    return overrides


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """One torch thread for a module of small-tensor tests: faster than a pool, and immune to an
    oversubscribed CPU. Use with `pytestmark = pytest.mark.usefixtures("single_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
