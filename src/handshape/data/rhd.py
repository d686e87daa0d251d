"""RHD, the Rendered Hand Pose Dataset (RHD_published_v2; Zimmermann & Brox, ICCV 2017).

Layout under the root (320 x 320 px renders; 41,258 training and 2,728 evaluation samples)::

    training/color/%05d.png  training/mask/%05d.png  training/depth/%05d.png
    training/anno_training.pickle
    evaluation/...           evaluation/anno_evaluation.pickle

Annotations: a Python 2 pickle ``{sample_id: {'xyz': (42, 3), 'uv_vis': (42, 3), 'K': (3, 3)}}``;
xyz in metres in the camera frame, uv in pixels with a visibility column (1 = visible). Joints
0-20 are the left hand, 21-41 the right; per hand 0 wrist, then thumb, index, middle, ring, little,
each TIP FIRST (tip, DIP, PIP, MCP). The pickle is read only through `handshape.safeio.pickles`
(numpy arrays and the containers pickle builds itself; latin1 for the Python 2 array bytes).

Masks: 0 background, 1 person, 2-17 the left hand (thumb, index, middle, ring, little three ids
each, 17 the palm), 18-33 the same for the right hand. Depth: 3 channels,
depth_m = (R * 256 + G) / 65535 * 5 (high byte red, low byte green).

Conversion to the project convention (protocol of Zimmermann & Brox and Ge et al.):
- the sample's hand is the one with more mask pixels (ties: the right hand);
- each finger reversed to base-to-tip (handshape.joints order); metres kept;
- a left hand is mirrored: image, mask, depth, 2D (u -> 319 - u), 3D (x -> -x) and K;
- mask ids are kept apart: `mask` is that hand's own pixels (its 16 ids), not the person's.
Sample ids are the pickle keys (ints), as strings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from handshape.data.real import (
    DataFileError,
    RawSample,
    RealDataset,
    expect,
    read_image,
)
from handshape.safeio.pickles import (
    NUMPY_GLOBALS,
    PickleFileError,
    UnsafePickleError,
    load_restricted,
)

__all__ = ["RHD_TO_PROJECT", "RHDDataset", "RHDReader", "decode_depth", "load_annotations"]

SPLITS = ("training", "evaluation")
LEFT_IDS = range(2, 18)
RIGHT_IDS = range(18, 34)

RHD_TO_PROJECT: tuple[int, ...] = (0, *(4 * f + 4 - s for f in range(5) for s in range(4)))
"""Project joint j is RHD hand joint RHD_TO_PROJECT[j] (each finger reversed)."""


def decode_depth(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RHD depth PNG (RGB order) -> (H, W) float32 metres."""
    r = rgb[..., 0].astype(np.float32)
    g = rgb[..., 1].astype(np.float32)
    return (r * 256.0 + g) / 65535.0 * 5.0


def read_mask_ids(path: Path) -> np.ndarray:
    """A mask PNG -> (H, W) uint8 ids, whether stored as grey levels or palette indices (never
    converted through a palette, which would turn ids into colours)."""
    ids = read_image(path, mode="")
    return ids[..., 0] if ids.ndim == 3 else ids


def load_annotations(path: Path) -> dict[int, dict[str, np.ndarray]]:
    """Read and check an anno_*.pickle; DataFileError naming the file and what is wrong.

    A pickle naming any global beyond numpy's array helpers raises UnsafePickleError (nothing it
    names is imported or run)."""
    try:
        raw = load_restricted(path, NUMPY_GLOBALS, what="numpy arrays")
    except UnsafePickleError:
        raise  # names the file and the refused global already
    except PickleFileError as err:
        raise DataFileError(str(err)) from err
    if not isinstance(raw, dict):
        raise DataFileError(f"{path}: expected a dict of samples, got {type(raw).__name__}")
    shapes = {"xyz": (42, 3), "uv_vis": (42, 3), "K": (3, 3)}
    out: dict[int, dict[str, np.ndarray]] = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict):
            raise DataFileError(f"{path}: sample {key!r} is not a dict")
        checked = {}
        for name, shape in shapes.items():
            value = np.asarray(entry.get(name), dtype=np.float64) if name in entry else None
            if value is None or value.shape != shape or not np.all(np.isfinite(value)):
                got = None if value is None else value.shape
                raise DataFileError(
                    f"{path}: sample {key!r}: '{name}' must be finite {shape}, got {got}"
                )
            checked[name] = value
        out[int(key)] = checked
    return out


class RHDReader:
    """One split of RHD ('training' or 'evaluation') as RawSamples (module docstring).

    ``depth=False`` leaves the depth PNGs unread (training and scoring never read them).
    """

    def __init__(self, root: Path, split: str = "evaluation", depth: bool = True) -> None:
        if split not in SPLITS:
            raise ValueError(f"RHD split must be one of {SPLITS}, got {split!r}")
        self.root = expect(Path(root), "the RHD root (RHD_published_v2)", "folder")
        self.folder = expect(self.root / split, f"RHD's {split} folder", "folder")
        for sub in ("color", "mask", "depth"):
            expect(self.folder / sub, f"RHD's {split}/{sub} folder of %05d.png", "folder")
        anno = expect(self.folder / f"anno_{split}.pickle", f"RHD's {split} annotation pickle")
        self.annotations = load_annotations(anno)
        self.ids = sorted(self.annotations)
        self.depth = depth

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> RawSample:
        key = self.ids[index]
        name = f"{key:05d}.png"
        image = read_image(self.folder / "color" / name)
        ids = read_mask_ids(self.folder / "mask" / name)
        depth = decode_depth(read_image(self.folder / "depth" / name)) if self.depth else None
        shapes = (image.shape[:2], ids.shape) + (() if depth is None else (depth.shape,))
        if len(set(shapes)) != 1:
            raise DataFileError(
                f"{self.folder}/{{color,mask,depth}}/{name}: sizes differ "
                f"({', '.join(str(shape) for shape in shapes)})"
            )
        anno = self.annotations[key]
        left_pixels = int(np.isin(ids, LEFT_IDS).sum())
        right_pixels = int(np.isin(ids, RIGHT_IDS).sum())
        left = left_pixels > right_pixels
        offset = 0 if left else 21
        order = [offset + j for j in RHD_TO_PROJECT]
        sample = RawSample(
            sample_id=str(key),
            image=image,
            K=anno["K"],
            joints_2d=anno["uv_vis"][order, :2],
            joints_3d=anno["xyz"][order],
            visibility=anno["uv_vis"][order, 2] >= 0.5,
            mask=np.isin(ids, LEFT_IDS if left else RIGHT_IDS),
            depth=depth,
        )
        return sample.mirror() if left else sample


class RHDDataset(RealDataset):
    """RHD as cropped tensors: `RealDataset(RHDReader(root, split, depth), **options)`."""

    def __init__(
        self, root: Path, split: str = "evaluation", depth: bool = True, **options: object
    ) -> None:
        super().__init__(RHDReader(root, split, depth), **options)  # type: ignore[arg-type]
