"""Training on real data sets: which split trains, which validates, and mixtures of sets.

Training and validation splits (validation is never the benchmark's test split, which only
`handshape eval` scores; STB validates on a sequence of its own, since neighbouring video
frames are near copies of each other):

| set | train | validation | eval default (`handshape eval`) |
|---|---|---|---|
| rhd | `training`, all but every 20th sample | every 20th sample of `training` | `evaluation` |
| stb | B2-B5 and B6Counting (SK camera) | B6Random | B1 (`test`) |
| freihand | `train` (4 versions, all but the last 5 % of ids) | `val` (that 5 %) | `evaluation` |

A mixture (`data.name: mix`, parts in `data.mix`) concatenates the parts' sets and draws
training samples with the given weights (each part's share of the batches, whatever its size);
its validation set is the parts' validation sets interleaved, so that the first validation
batches (`train.val_batches`) hold every part. A synthetic part uses the data section's own
generator settings. A sample that cannot be read is replaced by another of the same split.

Every item carries the label flags of `handshape.data.real` (has_joints_2d, has_joints_3d,
has_mesh, ...); synthetic items have them too, so parts mix in one batch. Meshes are labels only
where they have the network's topology: FreiHAND's 778 MANO vertices when the network poses the
official MANO model (`handmodel.mano`), otherwise no real set has a mesh.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler

from handshape.data.freihand import FreiHANDDataset
from handshape.data.real import MANO_VERTICES, RealDataset
from handshape.data.rhd import RHDReader
from handshape.data.stb import SEQUENCES as STB_SEQUENCES
from handshape.data.stb import STBReader

__all__ = [
    "HOLDOUT_EVERY",
    "STB_VALIDATION",
    "MixtureSampler",
    "RealDataModule",
    "SubsetReader",
    "holdout",
    "interleaved",
    "real_splits",
]

HOLDOUT_EVERY = 20  # every 20th RHD training sample validates
STB_VALIDATION = "B6Random"  # the STB sequence that validates


class SubsetReader:
    """The samples `indices` of a reader, as a reader (so a skipped sample's replacement comes
    from the same subset)."""

    def __init__(self, reader: Any, indices: Sequence[int]) -> None:
        self.reader, self.indices = reader, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, index: int) -> Any:
        return self.reader.load(self.indices[index])


def holdout(reader: Any, part: str) -> SubsetReader:
    """The training ('train') or held-out validation ('val', every 20th) part of a reader."""
    keep = (lambda i: i % HOLDOUT_EVERY == 0) if part == "val" else (lambda i: i % HOLDOUT_EVERY)
    return SubsetReader(reader, [i for i in range(len(reader)) if keep(i)])


def _options(cfg: Mapping[str, Any], train: bool, num_vertices: int) -> dict[str, Any]:
    return {
        "size": int(cfg["model"]["input_size"]),
        "train": train,
        "augmentation": cfg["data"]["augmentation"] if train else None,
        "num_vertices": num_vertices,
    }


def real_splits(
    name: str, root: Path, cfg: Mapping[str, Any], num_vertices: int, depth: bool = False
) -> tuple[Dataset, Dataset]:
    """(train, validation) datasets of real set `name` under `root` (module docstring); with
    `depth`, RHD and STB items carry their depth maps (fine-tuning; pretraining reads none)."""
    train, val = _options(cfg, True, num_vertices), _options(cfg, False, num_vertices)
    if name == "rhd":
        reader = RHDReader(root, "training", depth=depth)
        return (
            RealDataset(holdout(reader, "train"), **train),
            RealDataset(holdout(reader, "val"), **val),
        )
    if name == "stb":
        sequences = tuple(s for s in STB_SEQUENCES["train"] if s != STB_VALIDATION)
        return (
            RealDataset(STBReader(root, sequences=sequences, depth=depth), **train),
            RealDataset(STBReader(root, sequences=(STB_VALIDATION,), depth=depth), **val),
        )
    if name == "freihand":
        mesh = num_vertices == MANO_VERTICES  # FreiHAND's meshes fit only a MANO network
        return (
            FreiHANDDataset(root, "train", load_mesh=mesh, **train),
            FreiHANDDataset(root, "val", load_mesh=mesh, **val),
        )
    raise ValueError(f"'{name}' is not a real data set (rhd, stb, freihand)")


class MixtureSampler(Sampler[int]):
    """Indices into the concatenation of parts: each draw picks a part with probability
    proportional to its weight, then that part's next index in its own order (its sampler's,
    or a fresh permutation), restarting a part's order when it runs out. One epoch is as many
    draws as the parts hold together. Everything is drawn from torch's generator."""

    def __init__(
        self,
        sizes: Sequence[int],
        weights: Sequence[float],
        samplers: Sequence[Sampler[int] | None] | None = None,
    ) -> None:
        if len(sizes) != len(weights) or not sizes:
            raise ValueError("one weight per part, at least one part")
        if any(n <= 0 for n in sizes):
            raise ValueError(f"every part needs samples, got sizes {list(sizes)}")
        self.sizes, self.weights = list(sizes), torch.tensor(weights, dtype=torch.float64)
        self.samplers = list(samplers or [None] * len(sizes))
        self.offsets = [sum(self.sizes[:k]) for k in range(len(self.sizes))]

    def __len__(self) -> int:
        return sum(self.sizes)

    def _order(self, k: int) -> Iterator[int]:
        while True:
            sampler = self.samplers[k]
            yield from (
                iter(sampler) if sampler is not None else torch.randperm(self.sizes[k]).tolist()
            )

    def __iter__(self) -> Iterator[int]:
        orders = [self._order(k) for k in range(len(self.sizes))]
        parts = torch.multinomial(self.weights, len(self), replacement=True).tolist()
        for k in parts:
            yield self.offsets[k] + next(orders[k])


def interleaved(sizes: Sequence[int]) -> list[int]:
    """Indices into the concatenation of parts taking one of each part in turn (a part that
    runs out drops out): any prefix holds every part in proportion, to its own end."""
    offsets = [sum(sizes[:k]) for k in range(len(sizes))]
    order = []
    for i in range(max(sizes, default=0)):
        order += [offsets[k] + i for k, n in enumerate(sizes) if i < n]
    return order


class RealDataModule(pl.LightningDataModule):
    """Train and validation loaders over given datasets, drawn with per-part weights.

    parts: (name, train set, validation set, weight[, sampler]) per part; one part for a single
    set. A part's sampler orders its own draws (the synthetic set's shard-grouped order); by
    default they are shuffled.
    """

    def __init__(
        self,
        parts: Sequence[tuple[Any, ...]],
        batch_size: int = 32,
        num_workers: int = 2,
    ) -> None:
        super().__init__()
        if not parts:
            raise ValueError("a data module needs at least one data set")
        bad = [part[0] for part in parts if not part[3] > 0]
        if bad:
            raise ValueError(f"data.mix: weights must be positive (parts {bad})")
        self.parts = list(parts)
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.train_set: Dataset = ConcatDataset([p[1] for p in self.parts])
        self.val_set: Dataset = ConcatDataset([p[2] for p in self.parts])

    def setup(self, stage: str | None = None) -> None:
        """The datasets are built at construction: nothing to do."""

    def train_dataloader(self) -> DataLoader:
        samplers = [p[4] if len(p) > 4 else None for p in self.parts]
        sampler = MixtureSampler(
            [len(p[1]) for p in self.parts],  # type: ignore[arg-type]
            [p[3] for p in self.parts],
            samplers,
        )
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            drop_last=True,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_set,
            batch_size=self.batch_size,
            sampler=interleaved([len(p[2]) for p in self.parts]),  # type: ignore[arg-type]
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
