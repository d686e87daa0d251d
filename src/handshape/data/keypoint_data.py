"""The keypoint network's data (``data.name: keypoints``): posed hands drawn on the fly
(`posed_hands`), seen as a landmark network would report them (`keypoint_errors`), turned into
the network's input (`keypoint_inputs`).

Training batches are pure functions of (train.seed, split, batch index), made whole in a
DataLoader worker (a batch of posed hands costs one batched pass of the hand model). Validation
during training uses a fixed set of posed hands from the held-out gesture variants. A finished
network is scored on the image network's own synthetic validation split (`keypoint_view`): the
same hands, their true keypoints given the same kind of simulated errors (fixed per sample), so
the two networks' figures sit side by side.

Settings (config `data.keypoints`): `hands` (`PosedHandSettings`), `errors` (`KeypointErrors`)
and `val_samples`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from handshape.data.keypoint_errors import KeypointErrors, simulate
from handshape.data.keypoint_inputs import keypoint_inputs
from handshape.data.posed_hands import (
    ERRORS_STREAM,
    SPLITS,
    VIEW_STREAM,
    PosedHands,
    PosedHandSettings,
    seeded_generator,
)
from handshape.data.synth.datamodule import generator_config
from handshape.geometry.camera import project
from handshape.handmodel.model import HandModel

VAL_BATCH = 256
LABELS = ("joints_2d", "joints_3d", "mesh")


@dataclass(frozen=True)
class KeypointDataSettings:
    hands: PosedHandSettings
    errors: KeypointErrors
    val_samples: int

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> KeypointDataSettings:
        section = dict(data["keypoints"])
        return cls(
            PosedHandSettings.from_dict(dict(section["hands"]), "data.keypoints.hands"),
            KeypointErrors.from_dict(dict(section["errors"]), "data.keypoints.errors"),
            int(section["val_samples"]),
        )


def keypoint_item(
    keypoints: torch.Tensor,
    joints_3d: torch.Tensor,
    vertices: torch.Tensor,
    K: torch.Tensor,
    errors: KeypointErrors,
    gen: torch.Generator,
    size: int,
) -> dict[str, torch.Tensor]:
    """A batch for the keypoint network from true image keypoints (B, 21, 2), camera-frame
    joints (B, 21, 3) and vertices (B, N, 3) and the image's K (B, 3, 3): `keypoints` (its
    features), `K` of the keypoints' square at `size` px, `joints_2d` (true, in that square),
    `joints_3d`, `vertices`."""
    noisy, confidence, depth = simulate(keypoints, joints_3d, K, errors, gen)
    features, K_square = keypoint_inputs(noisy, confidence, depth, K, size)
    return {
        "keypoints": features,
        "K": K_square,
        "joints_2d": project(joints_3d.float(), K_square),
        "joints_3d": joints_3d.float(),
        "vertices": vertices.float(),
    }


class PosedKeypointBatches(Dataset):
    """Item i: a whole batch of posed hands with simulated keypoint errors (use with a
    DataLoader of batch_size=None)."""

    def __init__(
        self,
        hands: PosedHands,
        errors: KeypointErrors,
        split: str,
        batch_size: int,
        batches: int,
        size: int,
        seed: int,
    ) -> None:
        self.hands, self.errors, self.split = hands, errors, split
        self.batch_size, self.batches, self.size, self.seed = batch_size, batches, size, seed

    def __len__(self) -> int:
        return self.batches

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        drawn = self.hands.draw(self.seed, self.split, index, self.batch_size)
        return keypoint_item(
            drawn["joints_2d"],
            drawn["joints_3d"],
            drawn["vertices"],
            drawn["K"],
            self.errors,
            seeded_generator(ERRORS_STREAM, self.seed, SPLITS.index(self.split), index),
            self.size,
        )


def posed_hands(cfg: Mapping[str, Any]) -> PosedHands:
    """The sampler of an experiment config (the generator's gesture settings and its own)."""
    settings = KeypointDataSettings.from_config(cfg["data"])
    model = HandModel.load(cfg["handmodel"]["mano"])
    return PosedHands(model, generator_config(cfg["data"]), settings.hands)


class KeypointDataModule(pl.LightningDataModule):
    """Training and validation batches of posed hands (module docstring)."""

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        super().__init__()
        self.cfg = cfg
        self.settings = KeypointDataSettings.from_config(cfg["data"])
        train = cfg["train"]
        self.batch_size, self.num_workers = int(train["batch_size"]), int(train["num_workers"])
        self.seed = int(train["seed"])
        self.size = int(cfg["model"]["input_size"])
        # One epoch holds the longest stage the network trains (no hourglass; transfer only
        # for joints from the latent), so a stage never restarts its batches mid-way.
        trained = ["pose_regressor", "full"]
        if str(cfg["model"].get("pose_from", "mesh")) == "latent":
            trained.append("transfer")
        self.batches = max(int(train["stages"][s]["steps"]) for s in trained)
        self.train_set: PosedKeypointBatches | None = None
        self.val_set: PosedKeypointBatches | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> KeypointDataModule:
        return cls(cfg)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        hands = posed_hands(self.cfg)
        errors = self.settings.errors
        self.train_set = PosedKeypointBatches(
            hands, errors, "train", self.batch_size, max(self.batches, 1), self.size, self.seed
        )
        val_batches = max(1, -(-self.settings.val_samples // VAL_BATCH))
        # A fixed seed of its own: every run validates on the same hands and errors.
        self.val_set = PosedKeypointBatches(
            hands, errors, "val", VAL_BATCH, val_batches, self.size, 0
        )

    def _loader(self, dataset: PosedKeypointBatches | None) -> DataLoader:
        if dataset is None:
            raise RuntimeError("call setup() before asking for a DataLoader")
        return DataLoader(
            dataset,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)


class KeypointView(Dataset):
    """Any labelled set (a rendered synthetic split, a real set's crops) seen as keypoints:
    each sample's true 2D joints with simulated errors fixed by its index; the image is left
    out. Its items have the keys of `keypoint_item`."""

    def __init__(self, samples: Dataset, errors: KeypointErrors, size: int, seed: int = 0) -> None:
        self.samples, self.errors, self.size, self.seed = samples, errors, size, seed

    def __len__(self) -> int:
        return len(self.samples)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.samples[index]
        batch = keypoint_item(
            torch.as_tensor(item["joints_2d"])[None],
            torch.as_tensor(item["joints_3d"])[None],
            torch.as_tensor(item["vertices"])[None],
            torch.as_tensor(item["K"])[None],
            self.errors,
            seeded_generator(VIEW_STREAM, self.seed, index),
            self.size,
        )
        return {k: v[0] for k, v in batch.items()}


def keypoint_view(samples: Dataset, cfg: Mapping[str, Any]) -> KeypointView:
    """`samples` as the keypoint network of experiment config `cfg` reads them."""
    settings = KeypointDataSettings.from_config(cfg["data"])
    return KeypointView(samples, settings.errors, int(cfg["model"]["input_size"]))
