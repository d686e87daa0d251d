"""The synthetic set as the registry uses it (`handshape.data.registry`): made where missing,
a LightningDataModule for training, the validation split for evaluation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from handshape.config import config_file
from handshape.data.synth.generate import Plan, generate
from handshape.data.synth.reader import ShardGroupedSampler, SyntheticDataset
from handshape.data.synth.scene import SynthConfig


def generator_config(data: Mapping[str, Any]) -> SynthConfig:
    """The generator settings of a config's data section: the settings file `data.config` (a
    name in configs/data/ or a path) with `data.settings` on top."""
    settings = data.get("settings") or {}
    if isinstance(settings, DictConfig):
        settings = OmegaConf.to_container(settings, resolve=True)
    return SynthConfig.load(config_file("data", str(data.get("config") or "synthetic")), settings)


def ensure_synthetic(cfg: Mapping[str, Any], workers: int = 1) -> None:
    """Generate the experiment's synthetic set where it is missing (resuming a partial one);
    a complete set made with other settings is refused, not silently reused."""
    data = cfg["data"]
    root = Path(data["root"])
    synth_cfg = generator_config(data)
    for split, num in (("train", data["num_train"]), ("val", data["num_val"])):
        generate(Plan(root, split, int(num), int(data["seed"]), synth_cfg), workers=workers)


def validation_set(root: Path, split: str) -> SyntheticDataset:
    """A split folder of a synthetic set (root/split), read without augmentation."""
    return SyntheticDataset(Path(root) / split, train=False)


class SyntheticDataModule(pl.LightningDataModule):
    """Train and validation loaders over OUT/train and OUT/val made by `handshape synth`.

    backgrounds: a folder of jpg/png images (COCO, LSUN, Flickr, ...) or None for the built-in
    procedural and bundled backgrounds; augmentation: see `build_augmentation`.
    """

    def __init__(
        self,
        root: Path,
        batch_size: int = 32,
        num_workers: int = 2,
        backgrounds: Path | None = None,
        augmentation: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.backgrounds = backgrounds
        self.augmentation = augmentation
        self.seed = seed
        self.train_set: SyntheticDataset | None = None
        self.val_set: SyntheticDataset | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SyntheticDataModule:
        """The DataModule of a resolved experiment config (data and train sections)."""
        data, train = cfg["data"], cfg["train"]
        return cls(
            Path(data["root"]),
            batch_size=int(train["batch_size"]),
            num_workers=int(train["num_workers"]),
            backgrounds=data["backgrounds"],
            augmentation=data["augmentation"],
            seed=int(train["seed"]),
        )

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = SyntheticDataset(
                self.root / "train", self.backgrounds, self.augmentation, train=True, seed=self.seed
            )
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = SyntheticDataset(
                self.root / "val", self.backgrounds, train=False, seed=self.seed
            )

    def _loader(self, dataset: SyntheticDataset | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError("call setup() before asking for a DataLoader")
        shards = dataset.shards
        sampler = ShardGroupedSampler(len(shards), shards.shard_size) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            drop_last=shuffle,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
