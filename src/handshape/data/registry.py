"""Data sets chosen by name (`data.name` in the config): the one place that maps a name to the
code that reads it, so no command decides which DataModule to build.

Each entry knows how to make (or check) the data before training (`prepare`), build the
training DataModule, build the data set an evaluation scores (`eval_dataset`) and which labels
the set has (`labels`: a training stage whose loss has none of them is refused).

| name | what | eval default split |
|---|---|---|
| synthetic | handshape's renders (`handshape.data.synth`), made when missing | val |
| rhd | RHD_published_v2 (`handshape.data.rhd`) | evaluation |
| stb | STB, SK camera (`handshape.data.stb`; Ge et al.'s boxes: ROOT/STB_eval_bboxes.mat) | test |
| freihand | FreiHAND_pub_v2 (`handshape.data.freihand`) | evaluation |
| demo | weak supervision's target domain (`handshape.data.demo`): RGB-D captures, no meshes | val |
| keypoints | posed hands drawn on the fly (`handshape.data.keypoint_data`) | val (rendered) |
| mix | several of the above with weights (`data.mix`), e.g. synthetic + RHD | - |
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import Dataset

from handshape.data import demo
from handshape.data.freihand import FreiHANDDataset
from handshape.data.keypoint_data import KeypointDataModule
from handshape.data.real import MANO_VERTICES
from handshape.data.real_datamodule import RealDataModule, real_splits
from handshape.data.rhd import RHDDataset
from handshape.data.stb import STBDataset
from handshape.data.synth import datamodule as synthetic
from handshape.data.synth.generate import Plan, generate
from handshape.data.synth.reader import ShardGroupedSampler
from handshape.handmodel.model import HandModel

__all__ = [
    "DATASETS",
    "LABELS",
    "DataSpec",
    "build_datamodule",
    "data_labels",
    "eval_dataset",
    "prepare_data",
    "spec",
]

LABELS = ("joints_2d", "joints_3d", "mesh", "depth", "mask")


@dataclass(frozen=True)
class DataSpec:
    """What handshape needs from one data set; every callable takes the resolved config."""

    prepare: Callable[[Mapping[str, Any], int], None]  # (cfg, workers): make or check the data
    datamodule: Callable[[Mapping[str, Any]], pl.LightningDataModule]
    eval_dataset: Callable[[Path, str], Dataset] | None  # (root, split) -> the samples to score
    default_split: str  # what an evaluation scores unless told otherwise
    labels: frozenset[str]  # what its training items label (a mesh: see `data_labels`)


def _read_in_place(cfg: Mapping[str, Any], workers: int) -> None:
    """Real sets are read where they are; their readers name whatever is missing."""


def _network_vertices(cfg: Mapping[str, Any]) -> int:
    return HandModel.load(cfg["handmodel"]["mano"]).num_vertices


def _loaders(cfg: Mapping[str, Any]) -> dict[str, int]:
    train = cfg["train"]
    return {"batch_size": int(train["batch_size"]), "num_workers": int(train["num_workers"])}


def _real_datamodule(cfg: Mapping[str, Any]) -> RealDataModule:
    name, root = str(cfg["data"]["name"]), Path(cfg["data"]["root"])
    parts = [(name, *real_splits(name, root, cfg, _network_vertices(cfg)), 1.0)]
    return RealDataModule(parts, **_loaders(cfg))


def _synthetic_part(cfg: Mapping[str, Any], root: Path, weight: float) -> tuple[Any, ...]:
    """A mixture's synthetic part: the sets `SyntheticDataModule` reads, in its shard order."""
    data = synthetic.SyntheticDataModule.from_config({**cfg, "data": {**cfg["data"], "root": root}})
    data.setup()
    train, val = data.train_set, data.val_set
    assert train is not None and val is not None
    order = ShardGroupedSampler(len(train.shards), train.shards.shard_size)
    return ("synthetic", train, val, weight, order)


def _mix_entries(cfg: Mapping[str, Any]) -> list[tuple[str, Path, float]]:
    entries = cfg["data"].get("mix") or []
    if not entries:
        raise ValueError("data.name=mix needs parts in data.mix: [{name, root, weight}, ...]")
    parsed = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or set(entry) != {"name", "root", "weight"}:
            raise ValueError(f"data.mix[{i}]: expected {{name, root, weight}}, got {entry}")
        name = str(entry["name"])
        if name == "mix" or name not in DATASETS:
            raise ValueError(f"data.mix[{i}]: unknown data set '{name}'")
        parsed.append((name, Path(entry["root"]), float(entry["weight"])))
    return parsed


def _mix_datamodule(cfg: Mapping[str, Any]) -> RealDataModule:
    vertices = _network_vertices(cfg)
    parts = []
    for name, root, weight in _mix_entries(cfg):
        if name == "synthetic":
            if vertices != HandModel.default().num_vertices:
                raise ValueError(
                    f"data.mix: the synthetic meshes have handshape's topology, the network's "
                    f"hand model ({cfg['handmodel']['mano']}) {vertices} vertices; a batch holds "
                    "one topology: mix real sets only, or train on handshape's own hand"
                )
            parts.append(_synthetic_part(cfg, root, weight))
        else:
            parts.append((name, *real_splits(name, root, cfg, vertices), weight))
    return RealDataModule(parts, **_loaders(cfg))


def _prepare_mix(cfg: Mapping[str, Any], workers: int) -> None:
    for name, root, _ in _mix_entries(cfg):
        if name == "synthetic":
            synthetic.ensure_synthetic({**cfg, "data": {**cfg["data"], "root": str(root)}}, workers)


def _prepare_keypoints(cfg: Mapping[str, Any], workers: int) -> None:
    """The keypoint network trains on hands drawn on the fly; it is scored on the synthetic
    validation split at data.root, rendered here where missing."""
    data = cfg["data"]
    config = synthetic.generator_config(data)
    plan = Plan(Path(data["root"]), "val", int(data["num_val"]), int(data["seed"]), config)
    generate(plan, workers=workers)


def _stb_eval(root: Path, split: str) -> Dataset:
    boxes = root / "STB_eval_bboxes.mat"
    use = boxes if split == "test" and boxes.is_file() else None
    return STBDataset(root, split, boxes=use, depth=False, train=False)  # scores read no depth


DATASETS: dict[str, DataSpec] = {
    "synthetic": DataSpec(
        prepare=synthetic.ensure_synthetic,
        datamodule=synthetic.SyntheticDataModule.from_config,
        eval_dataset=synthetic.validation_set,
        default_split="val",
        labels=frozenset(LABELS),
    ),
    "rhd": DataSpec(
        prepare=_read_in_place,
        datamodule=_real_datamodule,
        eval_dataset=lambda root, split: RHDDataset(root, split, depth=False, train=False),
        default_split="evaluation",
        labels=frozenset({"joints_2d", "joints_3d", "mask"}),  # depth: fine-tuning reads it
    ),
    "stb": DataSpec(
        prepare=_read_in_place,
        datamodule=_real_datamodule,
        eval_dataset=_stb_eval,
        default_split="test",
        labels=frozenset({"joints_2d", "joints_3d"}),  # depth: fine-tuning reads it
    ),
    "freihand": DataSpec(
        prepare=_read_in_place,
        datamodule=_real_datamodule,
        # The whole image: FreiHAND's images are crops around the hand already.
        eval_dataset=lambda root, split: FreiHANDDataset(
            root, split, train=False, joint_crops=False
        ),
        default_split="evaluation",
        labels=frozenset({"joints_2d", "joints_3d", "mask", "mesh"}),
    ),
    "demo": DataSpec(  # weak supervision's built-in target domain (fine-tuning, evaluation)
        prepare=demo.ensure_demo,
        datamodule=demo.DemoDataModule.from_config,
        eval_dataset=demo.eval_split,
        default_split="val",
        labels=frozenset({"joints_2d", "depth", "mask"}),
    ),
    "keypoints": DataSpec(
        prepare=_prepare_keypoints,
        datamodule=KeypointDataModule.from_config,
        eval_dataset=synthetic.validation_set,
        default_split="val",
        labels=frozenset({"joints_2d", "joints_3d", "mesh"}),
    ),
    "mix": DataSpec(
        prepare=_prepare_mix,
        datamodule=_mix_datamodule,
        eval_dataset=None,
        default_split="",
        labels=frozenset(),  # the union of its parts' (`data_labels`)
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


def data_labels(cfg: Mapping[str, Any]) -> frozenset[str]:
    """The labels the experiment's training data carry. A mesh counts only where it has the
    network's topology: FreiHAND's MANO meshes train a network posing MANO, nothing else."""
    name = _cfg_name(cfg)
    names = [entry[0] for entry in _mix_entries(cfg)] if name == "mix" else [name]
    labels: set[str] = set()
    for part in names:
        own = set(spec(part).labels)
        if part == "freihand" and _network_vertices(cfg) != MANO_VERTICES:
            own.discard("mesh")
        labels |= own
    return frozenset(labels)


def prepare_data(cfg: Mapping[str, Any], workers: int = 1) -> None:
    """Make the experiment's data where it is missing (synthetic) or check it is there.

    `data.settings` (an open section, checked by the generator) is checked here whatever the
    data set: a misspelt generator setting is an error even when no synthetic data is made."""
    synthetic.generator_config(cfg["data"])
    spec(_cfg_name(cfg)).prepare(cfg, workers)


def build_datamodule(cfg: Mapping[str, Any]) -> pl.LightningDataModule:
    """The training DataModule of the experiment's data set."""
    return spec(_cfg_name(cfg)).datamodule(cfg)


def eval_dataset(name: str, root: Path, split: str | None = None) -> Dataset:
    """The samples of data set `name` under `root` that an evaluation scores (default split:
    the set's own, e.g. synthetic `val`, RHD `evaluation`)."""
    entry = spec(name)
    if entry.eval_dataset is None:
        raise ValueError(f"'{name}' cannot be evaluated as one set; evaluate each of its parts")
    return entry.eval_dataset(Path(root), split or entry.default_split)
