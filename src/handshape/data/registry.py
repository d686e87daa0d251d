"""Data sets chosen by name (`data.name` in the config): the one place that maps a name to the
code that reads it, so no command decides which DataModule to build.

Each entry knows how to make (or check) the data before training (`prepare`), build the
training DataModule, and build the data set an evaluation scores (`eval_dataset`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import Dataset

from handshape.data.synth import datamodule as synthetic

__all__ = ["DATASETS", "DataSpec", "build_datamodule", "eval_dataset", "prepare_data", "spec"]


@dataclass(frozen=True)
class DataSpec:
    """What handshape needs from one data set; every callable takes the resolved config."""

    prepare: Callable[[Mapping[str, Any], int], None]  # (cfg, workers): make or check the data
    datamodule: Callable[[Mapping[str, Any]], pl.LightningDataModule]
    eval_dataset: Callable[[Path, str], Dataset]  # (root, split) -> the samples to score
    default_split: str  # what an evaluation scores unless told otherwise


DATASETS: dict[str, DataSpec] = {
    "synthetic": DataSpec(
        prepare=synthetic.ensure_synthetic,
        datamodule=synthetic.SyntheticDataModule.from_config,
        eval_dataset=synthetic.validation_set,
        default_split="val",
    ),
}


def spec(name: str) -> DataSpec:
    """The entry of data set `name`; ValueError naming the known ones otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise ValueError(f"unknown data set '{name}' (data.name: one of {known})") from None


def _cfg_name(cfg: Mapping[str, Any]) -> str:
    return str(cfg["data"].get("name", "synthetic"))  # configs from before the registry


def prepare_data(cfg: Mapping[str, Any], workers: int = 1) -> None:
    """Make the experiment's data where it is missing (synthetic) or check it is there."""
    spec(_cfg_name(cfg)).prepare(cfg, workers)


def build_datamodule(cfg: Mapping[str, Any]) -> pl.LightningDataModule:
    """The training DataModule of the experiment's data set."""
    return spec(_cfg_name(cfg)).datamodule(cfg)


def eval_dataset(name: str, root: Path, split: str | None = None) -> Dataset:
    """The samples of data set `name` under `root` that an evaluation scores (default split:
    the set's own, e.g. synthetic `val`)."""
    entry = spec(name)
    return entry.eval_dataset(Path(root), split or entry.default_split)
