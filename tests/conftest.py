"""Fixtures shared across test folders."""

from __future__ import annotations

import dataclasses
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


@pytest.fixture(scope="session")
def synthetic_batch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """A data batch of four synthetic samples rendered at 64 x 64 (the first of one shard of
    8 training samples, read validation-style: fixed backgrounds). Read only: shared by every
    test that asks for it."""
    from torch.utils.data import default_collate  # the rendering stack only where used

    from handshape.data.synth.generate import Plan, generate
    from handshape.data.synth.reader import SyntheticDataset
    from handshape.data.synth.scene import SynthConfig

    base = SynthConfig.load(CONFIGS / "data" / "synthetic.yaml")
    config = dataclasses.replace(base, size=64, shard_size=8)
    plan = Plan(tmp_path_factory.mktemp("tiny") / "data", "train", 8, 0, config)
    generate(plan, progress=False)
    dataset = SyntheticDataset(plan.folder, train=False)
    return default_collate([dataset[i] for i in range(4)])


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """One torch thread for a module of small-tensor tests: faster than a pool, and immune to an
    oversubscribed CPU. Use with `pytestmark = pytest.mark.usefixtures("single_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
