"""Reading the synthetic shards: raw samples, and a torch Dataset that blends backgrounds.

Backgrounds and augmentation are drawn on the fly: a training sample gets a new background every
epoch (its random stream is seeded from torch's generator), a validation sample always the same
one (seeded from the sample index alone).
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from handshape.data.backgrounds import BackgroundSource
from handshape.data.compositing import blend_sample, build_augmentation

LABEL_KEYS = ("joints_2d", "joints_3d", "vertices", "K", "visibility", "shape", "pose")
HAS_LABELS = ("mask", "depth", "joints_2d", "joints_3d", "mesh", "params")


class SyntheticShards:
    """Random access to the raw samples of one split folder (OUT/<split>).

    `get(i)` returns the arrays stored for sample i (see `handshape.data.synth.generate`), with
    depth converted to float32 metres. Recently used shards stay decoded in memory.
    """

    def __init__(self, folder: Path, cache_shards: int = 2) -> None:
        self.folder = Path(folder)
        manifest_path = self.folder / "manifest.json"
        try:
            self.manifest = json.loads(manifest_path.read_text())
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{manifest_path}: no synthetic data here (the generator writes a split's "
                "manifest.json; make the data with the synthetic generator first)"
            ) from err
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{manifest_path}: unreadable manifest ({err})") from err
        self.num = int(self.manifest["num"])
        self.shard_size = int(self.manifest["config"]["shard_size"])
        self.depth_unit = float(self.manifest["depth_unit_m"])
        missing = [
            k for k in range(int(self.manifest["num_shards"])) if not self._shard_path(k).exists()
        ]
        if missing:
            raise ValueError(
                f"{self.folder}: {len(missing)} of {self.manifest['num_shards']} shards are "
                f"missing (e.g. {self._shard_path(missing[0]).name}); run the same `handshape "
                f"synth` command again to finish them"
            )
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._cache_shards = cache_shards

    def _shard_path(self, k: int) -> Path:
        return self.folder / f"shard_{k:05d}.npz"

    def __len__(self) -> int:
        return self.num

    def _shard(self, k: int) -> dict[str, np.ndarray]:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        path = self._shard_path(k)
        try:
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
                arrays = {key: z[key] for key in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
            raise ValueError(
                f"{path}: corrupt shard ({err}); delete it and rerun the same "
                "generation to regenerate it"
            ) from err
        self._cache[k] = arrays
        while len(self._cache) > self._cache_shards:
            self._cache.popitem(last=False)
        return arrays

    def get(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < self.num:
            raise IndexError(f"sample {index} out of range for {self.num} samples")
        shard = self._shard(index // self.shard_size)
        i = index % self.shard_size
        sample = {key: values[i] for key, values in shard.items()}
        sample["depth"] = sample["depth"].astype(np.float32) * self.depth_unit
        return sample


class ShardGroupedSampler(Sampler[int]):
    """Shuffled order that visits one shard at a time (shards and samples within each shuffled).

    Random access across compressed shards would decode a whole shard for nearly every sample;
    grouping by shard decodes each shard about once per epoch and DataLoader worker. The order
    is drawn from torch's generator, so it changes every epoch and follows torch.manual_seed.
    """

    def __init__(self, num: int, shard_size: int) -> None:
        self.num, self.shard_size = num, shard_size

    def __len__(self) -> int:
        return self.num

    def __iter__(self) -> Iterator[int]:
        shards = -(-self.num // self.shard_size)
        for shard in torch.randperm(shards).tolist():
            start = shard * self.shard_size
            count = min(self.shard_size, self.num - start)
            yield from (start + torch.randperm(count)).tolist()


class SyntheticDataset(Dataset):
    """Training samples: the render blended over a background, plus its labels, as tensors.

    Items: image (3, S, S) float32 in [0, 1]; mask (S, S) bool; depth (S, S) float32 metres;
    joints_2d (21, 2) px; joints_3d (21, 3) m, camera frame; vertices (N, 3) m; K (3, 3);
    visibility (21,) bool; shape (S,); pose (16, 3); and, as the real sets' items
    (`handshape.data.real`), the label flags has_* (all True), sample_id (the index),
    mirrored (False), crop (identity) and image_size.
    """

    def __init__(
        self,
        folder: Path,
        backgrounds: Path | None = None,
        augmentation: Mapping[str, Any] | None = None,
        train: bool = True,
        seed: int = 0,
    ) -> None:
        """backgrounds: a folder of jpg/png photos, or None for the built-in backgrounds."""
        self.shards = SyntheticShards(folder)
        size = int(self.shards.manifest["config"]["size"])
        self.backgrounds = BackgroundSource(backgrounds, size=size)
        self.augment = build_augmentation(augmentation) if train else None
        self.train = train
        self.seed = seed

    def __len__(self) -> int:
        return len(self.shards)

    def _rng(self, index: int) -> np.random.Generator:
        if self.train:
            # Drawn from torch's generator, whose stream moves on with every item (in each
            # DataLoader worker too, persistent or not): a new background every epoch, and
            # reproducible under torch.manual_seed.
            return np.random.default_rng([int(torch.randint(0, 2**62, ()).item()), index])
        return np.random.default_rng([self.seed, index])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        raw = self.shards.get(index)
        image = blend_sample(raw["rgba"], self.backgrounds, self._rng(index), self.augment)
        item = {
            "image": torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0),
            "mask": torch.from_numpy(raw["rgba"][..., 3] > 0),
            "depth": torch.from_numpy(raw["depth"]),
        }
        for key in LABEL_KEYS:
            item[key] = torch.from_numpy(np.asarray(raw[key]))
        # The label flags and frame of the real sets' items (handshape.data.real), so that
        # synthetic and real samples share batches: a render has every label.
        size = image.shape[0]
        item.update({f"has_{label}": torch.tensor(True) for label in HAS_LABELS})
        item.update(
            sample_id=str(index),
            mirrored=torch.tensor(False),
            crop=torch.eye(3, dtype=torch.float64),
            image_size=torch.tensor([size, size]),
        )
        return item
