"""The demonstration target domain of weak supervision (`make finetune` with no data given).

A domain the pretrained network never saw, made by the synthetic generator with other settings
(`finetune.demo.settings` on top of the experiment's generator settings: glove colours, other
lighting, wider hand shapes, other distances), whose items carry only what an RGB-D capture
gives:

    image (3, S, S)   blurred and noisy like a webcam (`handshape.data.sensor.degrade_image`)
    depth (S, S) m    degraded like a consumer depth sensor (`degrade_depth`), 0 = no reading
    mask (S, S)       the hand's pixels with a depth reading (the render's id map: the forearm,
                      sleeve and held objects have depth too but are not the hand)
    joints_2d, visibility, K of the crop
    joints_3d         zeros and has_joints_3d False, unless `finetune.demo.joints_3d` is true

The meshes and 3D joints are kept for evaluation only, as ``eval_vertices`` / ``eval_joints_3d``
(no loss reads them). Every item is a pure function of (seed, split, index).
The registry entry for it (`data.name: demo`): prepare `ensure_demo`, datamodule
`DemoDataModule.from_config`, eval_dataset `eval_split`, default split "val".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from handshape.data.sensor import SensorModel, degrade_depth, degrade_image
from handshape.data.synth.datamodule import generator_config
from handshape.data.synth.generate import Plan, generate
from handshape.data.synth.reader import SyntheticDataset

__all__ = ["DemoDataModule", "DemoDataset", "demo_plans", "ensure_demo", "eval_split"]


def demo_plans(cfg: Mapping[str, Any]) -> dict[str, Plan]:
    """The generator plans (train, val) of the demo domain of a resolved config."""
    demo, data = cfg["finetune"]["demo"], cfg["data"]
    settings = {**dict(data.get("settings") or {}), **dict(demo["settings"] or {})}
    synth = generator_config({**dict(data), "settings": settings})
    root = Path(demo["root"])
    return {
        split: Plan(root, split, int(demo[f"num_{split}"]), int(demo["seed"]), synth)
        for split in ("train", "val")
    }


def ensure_demo(cfg: Mapping[str, Any], workers: int = 1) -> None:
    """Generate the demo domain where missing (resuming a partial one); a set made with other
    settings is refused by the generator's manifest check."""
    for plan in demo_plans(cfg).values():
        generate(plan, workers=workers, progress=False)


class DemoDataset(Dataset):
    """The RGB-D view of one demo split folder (module docstring)."""

    def __init__(
        self, folder: Path, sensor: SensorModel, joints_3d: bool = False, seed: int = 0
    ) -> None:
        self.base = SyntheticDataset(Path(folder), train=False, seed=seed)
        self.sensor, self.joints_3d, self.seed = sensor, bool(joints_3d), int(seed)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Any]:
        clean = self.base[index]
        rng = np.random.default_rng([self.seed, 1, int(index)])
        image = (clean["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        image = degrade_image(image, rng, self.sensor)
        depth = degrade_depth(clean["depth"].numpy(), rng, self.sensor)
        joints = clean["joints_3d"].float()
        return {
            "image": torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0),
            "depth": torch.from_numpy(depth),
            "mask": torch.from_numpy(depth > 0) & clean["mask"],
            "joints_2d": clean["joints_2d"].float(),
            "visibility": clean["visibility"].bool(),
            "K": clean["K"].float(),
            "joints_3d": joints if self.joints_3d else torch.zeros_like(joints),
            "has_joints_3d": torch.tensor(self.joints_3d),
            "has_mask": torch.tensor(True),
            "has_depth": torch.tensor(True),
            "eval_vertices": clean["vertices"].float(),
            "eval_joints_3d": joints,
        }


def eval_split(root: Path, split: str) -> DemoDataset:
    """A split of a demo domain under `root` with the default sensor and seed (what the
    registry's `eval_dataset` gets: a folder and a split, no config); items as `DemoDataset`."""
    return DemoDataset(Path(root) / split, SensorModel(), joints_3d=True)


class DemoDataModule(pl.LightningDataModule):
    """Train and validation loaders of the demo domain (made on first use)."""

    def __init__(self, cfg: Mapping[str, Any], batch_size: int, num_workers: int) -> None:
        super().__init__()
        self.cfg, self.batch_size, self.num_workers = cfg, int(batch_size), int(num_workers)
        self.train_set: DemoDataset | None = None
        self.val_set: DemoDataset | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> DemoDataModule:
        train = cfg["train"]
        return cls(cfg, int(train["batch_size"]), int(train["num_workers"]))

    def datasets(self) -> dict[str, DemoDataset]:
        demo = self.cfg["finetune"]["demo"]
        sensor = SensorModel(**dict(demo["sensor"]))
        ensure_demo(self.cfg)
        return {
            split: DemoDataset(plan.folder, sensor, bool(demo["joints_3d"]), int(demo["seed"]))
            for split, plan in demo_plans(self.cfg).items()
        }

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            sets = self.datasets()
            self.train_set, self.val_set = sets["train"], sets["val"]

    def _loader(self, dataset: DemoDataset | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError("call setup() before asking for a DataLoader")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            drop_last=shuffle,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
