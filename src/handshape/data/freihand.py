"""FreiHAND (Zimmermann et al., ICCV 2019; FreiHAND_pub_v2).

Layout under the root (224 x 224 JPEGs)::

    training/rgb/%08d.jpg     32,560 samples x 4 versions: image id = idx + 32560 * version,
                              versions 0 gs (green screen), 1 hom, 2 sample, 3 auto (backgrounds)
    training/mask/%08d.jpg    hand masks, by idx only (all versions share the hand's pixels)
    training_K.json  training_xyz.json  training_verts.json  training_mano.json
    training_scale.json       JSON lists indexed by idx: K (3, 3), xyz (21, 3) m, verts (778, 3)
                              m, mano [[61]], scale |xyz[9] - xyz[10]|
    evaluation/rgb/%08d.jpg   3,960 samples
    evaluation_K.json  evaluation_scale.json  [evaluation_xyz.json  evaluation_verts.json]

Conventions: joints already in the project order (FreiHAND's is MANO's with fingertips, the
order handshape adopted), metres, OpenCV camera frame, right hands only (nothing mirrored).
Meshes: MANO's 778 vertices (has_mesh); the mesh losses need the network to pose the official
MANO model (handmodel.mano=PATH) so that the topologies agree.

Splits: 'train' = every idx below the validation block, 'val' = the last 5 % of the idx range,
held out from training: with the full 32,560 ids, idx 30932..32559 (1,628 ids, a contiguous
block because neighbouring ids come from the same recordings), 'evaluation' = the evaluation
set (joints and verts only if the later release's JSON files are present). Training and
validation take all four versions unless `versions` says otherwise.
Sample ids: "<idx>/<version name>" (e.g. "355/hom") in training, "<idx>" in evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from handshape.data.real import (
    DataFileError,
    LayoutError,
    RawSample,
    RealDataset,
    expect,
    project,
    read_image,
)

__all__ = ["VERSIONS", "FreiHANDDataset", "FreiHANDReader", "validation_ids"]

VERSIONS = ("gs", "hom", "sample", "auto")
SPLITS = ("train", "val", "evaluation")
VAL_FRACTION = 0.05


def validation_ids(num: int) -> range:
    """The idx held out of training for validation: the last 5 % of `num` (at least one)."""
    count = max(1, round(num * VAL_FRACTION))
    return range(num - count, num)


def _load_list(path: Path, shape: tuple[int, ...], num: int | None) -> np.ndarray:
    """A FreiHAND JSON list -> float array (len, *shape); DataFileError naming the file."""
    try:
        with path.open() as f:
            data = json.load(f)
        arr = np.asarray(data, dtype=np.float64)
    except FileNotFoundError:
        raise LayoutError(f"{path}: expected FreiHAND's {path.name} (file not found)") from None
    except (OSError, ValueError, TypeError) as err:
        raise DataFileError(f"{path}: not a JSON list of {shape} arrays ({err})") from err
    if arr.ndim != 1 + len(shape) or arr.shape[1:] != shape or not np.all(np.isfinite(arr)):
        raise DataFileError(f"{path}: expected a list of finite {shape} arrays, got {arr.shape}")
    if num is not None and len(arr) != num:
        raise DataFileError(f"{path}: {len(arr)} entries, expected {num} (as in the K file)")
    return arr


class FreiHANDReader:
    """One FreiHAND split as RawSamples (module docstring).

    Args:
        root: the FreiHAND root (training/, evaluation/ and the JSON files).
        split: 'train', 'val' or 'evaluation'.
        versions: image versions for train/val (names from VERSIONS); evaluation has one.
        load_mesh: read the verts JSON (hundreds of MB for the full set) and yield meshes.
    """

    def __init__(
        self,
        root: Path,
        split: str = "evaluation",
        versions: tuple[str, ...] = VERSIONS,
        load_mesh: bool = True,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"FreiHAND split must be one of {SPLITS}, got {split!r}")
        unknown = [v for v in versions if v not in VERSIONS]
        if unknown or not versions:
            raise ValueError(f"FreiHAND versions must be among {VERSIONS}, got {versions}")
        self.root = expect(Path(root), "the FreiHAND root (FreiHAND_pub_v2)", "folder")
        self.split = split
        part = "evaluation" if split == "evaluation" else "training"
        self.rgb = expect(self.root / part / "rgb", f"FreiHAND's {part}/rgb folder", "folder")
        self.mask_dir = self.root / "training" / "mask" if part == "training" else None
        if self.mask_dir is not None:
            expect(self.mask_dir, "FreiHAND's training/mask folder", "folder")
        self.K = _load_list(self.root / f"{part}_K.json", (3, 3), None)
        num = len(self.K)
        xyz_path = self.root / f"{part}_xyz.json"
        verts_path = self.root / f"{part}_verts.json"
        if part == "training":
            expect(xyz_path, "FreiHAND's training_xyz.json")
        self.xyz = _load_list(xyz_path, (21, 3), num) if xyz_path.is_file() else None
        self.verts = None
        if load_mesh and verts_path.is_file():
            self.verts = _load_list(verts_path, (778, 3), num)
        self.num_unique = num
        if split == "evaluation":
            self.entries = [(i, 0) for i in range(num)]
        else:
            held_out = validation_ids(num)
            ids = held_out if split == "val" else range(held_out.start)
            self.entries = [(i, VERSIONS.index(v)) for v in versions for i in ids]

    def __len__(self) -> int:
        return len(self.entries)

    def load(self, index: int) -> RawSample:
        idx, version = self.entries[index]
        image = read_image(self.rgb / f"{idx + self.num_unique * version:08d}.jpg")
        mask = None
        if self.mask_dir is not None:
            mask_image = read_image(self.mask_dir / f"{idx:08d}.jpg", mode="L")
            # JPEG-compressed binary masks: threshold halfway.
            mask = mask_image > 127
        joints_3d = None if self.xyz is None else self.xyz[idx]
        evaluation = self.split == "evaluation"
        return RawSample(
            sample_id=str(idx) if evaluation else f"{idx}/{VERSIONS[version]}",
            image=image,
            K=self.K[idx],
            joints_2d=None if joints_3d is None else project(self.K[idx], joints_3d),
            joints_3d=joints_3d,
            visibility=None if joints_3d is None else np.ones(21, bool),
            mask=mask,
            vertices=None if self.verts is None else self.verts[idx],
        )


class FreiHANDDataset(RealDataset):
    """FreiHAND as cropped tensors: `RealDataset(FreiHANDReader(root, split, ...), **options)`."""

    def __init__(
        self,
        root: Path,
        split: str = "evaluation",
        versions: tuple[str, ...] = VERSIONS,
        load_mesh: bool = True,
        **options: object,
    ) -> None:
        reader = FreiHANDReader(root, split, versions, load_mesh)
        super().__init__(reader, **options)  # type: ignore[arg-type]
