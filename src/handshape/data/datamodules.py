"""LightningDataModules: the synthetic set (real data sets join later)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from handshape.data.synth.reader import ShardGroupedSampler, SyntheticDataset


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
