"""What the real data set readers share: the raw sample, file errors, and the cropping Dataset.

Each reader (`handshape.data.rhd`, `.stb`, `.freihand`) converts its set at the border into a
`RawSample` in the project convention (handshape.joints order, metres, right hand, OpenCV camera
frame, whole image). `RealDataset` turns raw samples into the same item dictionary as
`handshape.data.synth.reader.SyntheticDataset`, cropped around the hand and resized:

    image (3, S, S) float32 [0, 1]    mask (S, S) bool (the hand's pixels)
    ids (S, S) uint8: 1 on the hand's pixels, 0 elsewhere (the synthetic id map's hand id; real
        sets do not separate forearm and objects from the background)
    depth (S, S) float32 m, 0 = none  joints_2d (21, 2) px in the crop
    joints_3d (21, 3) m               vertices (N, 3) m
    K (3, 3) of the crop              visibility (21,) bool (labelled visible and inside the crop)
    shape (num_shapes,), pose (16, 3) zeros: no real set has handshape model parameters

plus, for labels a set may lack (the tensor is zeros of the same fixed shape when False):
has_mask, has_depth, has_joints_2d, has_joints_3d, has_mesh, has_params (always False); and what
evaluation needs to go back to the set's own frame:
    sample_id (str)  mirrored (bool: image, 2D, 3D and K were flipped to make a right hand)
    crop (3, 3) float64: pixels of the (mirrored) full image -> crop pixels
    image_size (2,) int64: (width, height) of the full image
`to_source_frame` maps a crop's 2D joints and camera-frame 3D joints back to the set's own
image and handedness: u_img = inv(crop) applied to u_crop; if mirrored, u = width - 1 - u_img and
x = -x for 3D points.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from handshape.data import crop as cropping
from handshape.data.compositing import build_augmentation
from handshape.joints import NUM_JOINTS, NUM_KINEMATIC

log = logging.getLogger(__name__)

MANO_VERTICES = 778


class DataFileError(ValueError):
    """A data file is missing, corrupt or not in the published format; the message names it."""


class LayoutError(FileNotFoundError):
    """A data root is not laid out as the set publishes it; the message names what is missing."""


def expect(path: Path, what: str, kind: str = "file") -> Path:
    """`path` if it exists as a `kind` ('file' or 'folder'), else LayoutError naming it."""
    ok = path.is_dir() if kind == "folder" else path.is_file()
    if not ok:
        raise LayoutError(f"{path}: expected {what} ({kind} not found)")
    return path


def read_image(path: Path, mode: str = "RGB") -> np.ndarray:
    """Decode an image file fully; DataFileError naming it if missing or corrupt.

    mode: PIL mode to convert to ('RGB', 'L'), or '' to keep the stored one. Returns (H, W[, C])
    uint8.
    """
    try:
        with Image.open(path) as im:
            im.load()
            if mode and im.mode != mode:
                im = im.convert(mode)
            return np.asarray(im, dtype=np.uint8).copy()
    except FileNotFoundError:
        raise DataFileError(f"{path}: file not found") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        # SyntaxError: PIL's PNG decoder reports broken chunks that way.
        raise DataFileError(f"{path}: corrupt or unreadable image ({err})") from err


@dataclass(frozen=True)
class RawSample:
    """One sample of a real set in the project convention, whole image.

    image (H, W, 3) uint8; K (3, 3); joints_2d (21, 2) px, joints_3d (21, 3) m and visibility
    (21,) bool, or None where the set has no such label; mask (H, W) bool hand pixels or None;
    depth (H, W) float32 m (0 = none) registered to the image, or None; vertices (V, 3) m or None;
    box (x, y, w, h) px in this image for a given crop (eval boxes), or None.
    """

    sample_id: str
    image: np.ndarray
    K: np.ndarray
    joints_2d: np.ndarray | None = None
    joints_3d: np.ndarray | None = None
    visibility: np.ndarray | None = None
    mask: np.ndarray | None = None
    depth: np.ndarray | None = None
    vertices: np.ndarray | None = None
    box: np.ndarray | None = None
    mirrored: bool = False

    def mirror(self) -> RawSample:
        """The same sample flipped left-right: a left hand becomes a right hand."""
        width = self.image.shape[1]
        box = None
        if self.box is not None:
            x, y, w, h = (float(v) for v in self.box)
            box = np.array([width - x - w, y, w, h])

        def maybe(arr: np.ndarray | None, fn: Any) -> np.ndarray | None:
            return None if arr is None else fn(arr)

        return replace(
            self,
            image=cropping.mirror_image(self.image),
            K=cropping.mirror_intrinsics(self.K, width),
            joints_2d=maybe(self.joints_2d, lambda p: cropping.mirror_points_2d(p, width)),
            joints_3d=maybe(self.joints_3d, cropping.mirror_points_3d),
            vertices=maybe(self.vertices, cropping.mirror_points_3d),
            mask=maybe(self.mask, cropping.mirror_image),
            depth=maybe(self.depth, cropping.mirror_image),
            box=box,
            mirrored=not self.mirrored,
        )


class Reader(Protocol):
    """A real set's split: `len(reader)` samples, `reader.load(i)` -> RawSample."""

    def __len__(self) -> int: ...

    def load(self, index: int) -> RawSample: ...


def project(K: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 3) camera-frame points -> (N, 2) pixels through (3, 3) intrinsics."""
    uvw = np.asarray(points, dtype=np.float64) @ np.asarray(K, dtype=np.float64).T
    return uvw[:, :2] / uvw[:, 2:3]


def to_source_frame(
    joints_2d: np.ndarray,
    joints_3d: np.ndarray,
    crop: np.ndarray,
    mirrored: bool,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop pixels and (possibly mirrored) camera-frame points -> the set's own image and hand.

    joints_2d: (J, 2) px in the crop; joints_3d: (J, 3) m; crop: (3, 3) an item's `crop`;
    mirrored, width: the item's `mirrored` and `image_size[0]`. Returns ((J, 2), (J, 3)).
    """
    uv = cropping.transform_points(np.linalg.inv(np.asarray(crop, np.float64)), joints_2d)
    xyz = np.asarray(joints_3d, dtype=np.float64)
    if mirrored:
        uv = cropping.mirror_points_2d(uv, width)
        xyz = cropping.mirror_points_3d(xyz)
    return uv, xyz


class RealDataset(Dataset):
    """Cropped, resized, optionally augmented samples of a real set as tensors (module docstring).

    Args:
        reader: the set's split (e.g. `RHDReader(root, "training")`).
        size: crop side S in px (the network input).
        margin: crop side / longer side of the joints' bounding box (crops from 2D joints).
        box_margin: crop side / longer side of a given box (eval boxes).
        train: augment photometrically and skip bad samples; otherwise a bad file raises.
        augmentation: `build_augmentation` config (None: its default); used when train.
        max_bad_fraction: training raises once more than this fraction of the set was skipped
            (counted per DataLoader worker, since each has its own copy of the Dataset).
        num_vertices: N of the zero `vertices` of mesh-less samples (778 = MANO's, the only
            real mesh topology; set it to the synthetic hand's when mixing with synthetic data).
        num_shapes: length of the zero `shape` entry (the handshape model has 14).
        joint_crops: crop around the labelled 2D joints where no box is given; False crops the
            whole image (FreiHAND's evaluation: its images are already crops around the hand,
            and a crop from the labels would hand the network ground truth at test time).
    """

    def __init__(
        self,
        reader: Reader,
        size: int = 256,
        margin: float = 1.5,
        box_margin: float = 1.0,
        train: bool = False,
        augmentation: Mapping[str, Any] | None = None,
        max_bad_fraction: float = 0.01,
        num_vertices: int = MANO_VERTICES,
        num_shapes: int = 14,
        joint_crops: bool = True,
    ) -> None:
        self.reader = reader
        self.joint_crops = joint_crops
        self.size, self.margin, self.box_margin = int(size), float(margin), float(box_margin)
        self.train = train
        self.augment = build_augmentation(augmentation) if train else None
        self.max_bad_fraction = float(max_bad_fraction)
        self.num_vertices, self.num_shapes = int(num_vertices), int(num_shapes)
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not self.train:
            return self.item(self.reader.load(index))
        for attempt in range(len(self)):
            current = (index + attempt) % len(self)
            try:
                return self.item(self.reader.load(current))
            except DataFileError as err:
                self.skipped += 1
                log.warning(
                    "skipping sample %d: %s (%d skipped so far)", current, err, self.skipped
                )
                if self.skipped > self.max_bad_fraction * len(self):
                    raise DataFileError(
                        f"{self.skipped} of {len(self)} samples were unreadable (more than "
                        f"{self.max_bad_fraction:.1%}); last: {err}"
                    ) from err
        raise DataFileError(f"no readable sample in {len(self)}")

    def crop_box(self, raw: RawSample) -> tuple[float, float, float]:
        """(cx, cy, side): the given box, else around the 2D joints, else the whole image."""
        if raw.box is not None:
            return cropping.box_from_xywh(raw.box, self.box_margin)
        if raw.joints_2d is not None and self.joint_crops:
            return cropping.box_from_joints(raw.joints_2d, self.margin)
        h, w = raw.image.shape[:2]
        return (w - 1) / 2.0, (h - 1) / 2.0, float(max(w, h))

    def item(self, raw: RawSample) -> dict[str, Any]:
        """The item dictionary (module docstring) of one raw sample."""
        S = self.size
        A = cropping.crop_transform(self.crop_box(raw), S)
        image = cropping.crop_image(raw.image, A, S)
        if self.augment is not None:
            seed = int(torch.randint(0, 2**31, ()).item())
            self.augment.set_random_state(np.random.default_rng(seed), random.Random(seed))
            image = np.ascontiguousarray(self.augment(image=image)["image"], dtype=np.uint8)
        zeros2 = np.zeros((NUM_JOINTS, 2))
        joints_2d = zeros2 if raw.joints_2d is None else cropping.transform_points(A, raw.joints_2d)
        inside = np.all((joints_2d > -0.5) & (joints_2d < S - 0.5), axis=1)
        labelled = np.ones(NUM_JOINTS, bool) if raw.visibility is None else raw.visibility
        visibility = inside & labelled & (raw.joints_2d is not None)
        mask = np.zeros((S, S), bool) if raw.mask is None else cropping.crop_mask(raw.mask, A, S)
        depth = (
            np.zeros((S, S), np.float32)
            if raw.depth is None
            else cropping.crop_depth(raw.depth, A, S)
        )
        joints_3d = np.zeros((NUM_JOINTS, 3)) if raw.joints_3d is None else raw.joints_3d
        vertices = np.zeros((self.num_vertices, 3)) if raw.vertices is None else raw.vertices
        h, w = raw.image.shape[:2]
        return {
            "image": torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0),
            "mask": torch.from_numpy(mask),
            # The synthetic items' id map: real sets label the hand only (1), nothing else.
            "ids": torch.from_numpy(mask.astype(np.uint8)),
            "depth": torch.from_numpy(depth),
            "joints_2d": torch.from_numpy(joints_2d).float(),
            "joints_3d": torch.from_numpy(np.asarray(joints_3d)).float(),
            "vertices": torch.from_numpy(np.asarray(vertices)).float(),
            "K": torch.from_numpy(A @ raw.K).float(),
            "visibility": torch.from_numpy(visibility),
            "shape": torch.zeros(self.num_shapes),
            "pose": torch.zeros(NUM_KINEMATIC, 3),
            "has_mask": torch.tensor(raw.mask is not None),
            "has_depth": torch.tensor(raw.depth is not None),
            "has_joints_2d": torch.tensor(raw.joints_2d is not None),
            "has_joints_3d": torch.tensor(raw.joints_3d is not None),
            "has_mesh": torch.tensor(raw.vertices is not None),
            "has_params": torch.tensor(False),
            "sample_id": raw.sample_id,
            "mirrored": torch.tensor(raw.mirrored),
            "crop": torch.from_numpy(A),
            "image_size": torch.tensor([w, h]),
        }
