"""STB, the Stereo Hand Pose Tracking Benchmark (Zhang et al., 2016).

Layout under the root (12 sequences B1..B6 x {Counting, Random}, 1,500 frames each, 640 x 480)::

    <seq>/SK_color_N.png  <seq>/SK_depth_N.png  <seq>/BB_left_N.png  <seq>/BB_right_N.png
    labels/<seq>_SK.mat   labels/<seq>_BB.mat     (variable handPara, (3, 21, 1500), mm)

Label joint order: palm centre, then little, ring, middle, index, thumb, each MCP, PIP, DIP, tip.
One LEFT hand throughout.

Conversion to the project convention:
- joints reordered to handshape.joints (wrist, thumb..little base to tip; STB's thumb MCP..tip
  become thumb CMC..tip, as in Ge et al.'s code);
- root: wrist = ring_MCP + 2 * (palm - ring_MCP) (the palm centre pushed past itself, away from
  the ring MCP; Ge et al. and Zimmermann & Brox);
- millimetres to metres;
- SK labels are in the depth camera's frame: colour-frame points are R^T (X - T), R the Rodrigues
  matrix of (0.00531, -0.01196, 0.00301), T = (-24.0381, -0.4563, -1.2326) mm; 2D joints are the
  projections through the colour intrinsics; SK depth (depth_mm = R + 256 G, depth camera) is
  registered into the colour image (`register_depth`: each depth pixel lifted, moved, projected;
  nearest surface wins; colour pixels no depth pixel reaches stay 0 = no depth), within 2.5 times
  the hand's extent (joints or eval box) about its centre, which any crop up to that margin
  covers (it saves most of the cost of a whole frame);
- BB labels are in the left camera's frame; the right camera sees x - 120.054 mm; no depth;
- the hand is mirrored to a right hand (image, mask, depth, 2D, 3D, K); no masks exist.

Splits: 'train' = B2..B6 (15,000 frames), 'test' = B1Counting + B1Random (3,000 frames).
Sample ids: "<seq>/<frame>", e.g. "B1Counting/17". Ge et al.'s evaluation boxes
(`STB_eval_bboxes.mat`, variable bboxes (3000, 4) [x, y, w, h] px in the original SK colour
image, rows B1Counting then B1Random in frame order) are used as the crops when given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from scipy.spatial.transform import Rotation

from handshape.data.real import (
    DataFileError,
    RawSample,
    RealDataset,
    expect,
    project,
    read_image,
)

__all__ = [
    "SEQUENCES",
    "STBDataset",
    "STBReader",
    "depth_to_color_frame",
    "load_boxes",
    "load_labels",
    "palm_to_wrist",
    "register_depth",
]

KINDS = ("Counting", "Random")
SEQUENCES = {
    "train": tuple(f"B{b}{k}" for b in range(2, 7) for k in KINDS),
    "test": tuple(f"B1{k}" for k in KINDS),
}
CAMERAS = ("SK", "BB_left", "BB_right")

SK_COLOR_K = np.array([[607.92271, 0.0, 314.78337], [0.0, 607.88192, 236.42484], [0, 0, 1.0]])
SK_DEPTH_K = np.array([[475.62768, 0.0, 336.41179], [0.0, 474.77709, 238.77962], [0, 0, 1.0]])
SK_ROTATION = Rotation.from_rotvec([0.00531, -0.01196, 0.00301]).as_matrix()
SK_TRANSLATION_M = np.array([-24.0381, -0.4563, -1.2326]) / 1000.0
BB_K = np.array([[822.79041, 0.0, 318.47345], [0.0, 822.79041, 250.31296], [0, 0, 1.0]])
BB_BASELINE_M = 0.120054
REGION_SCALE = 2.5

STB_TO_PROJECT: tuple[int, ...] = (
    0,
    *(1 + 4 * stb_finger + s for stb_finger in (4, 3, 2, 1, 0) for s in range(4)),
)
"""Project joint j is STB label joint STB_TO_PROJECT[j] (STB: little, ring, middle, index,
thumb)."""
_RING_MCP = 13  # in the project order


def palm_to_wrist(joints: np.ndarray) -> np.ndarray:
    """(..., 21, 3) project-ordered joints with the palm centre at 0 -> the wrist at 0."""
    out = np.array(joints, dtype=np.float64)
    ring = out[..., _RING_MCP, :]
    out[..., 0, :] = ring + 2.0 * (out[..., 0, :] - ring)
    return out


def depth_to_color_frame(points: np.ndarray) -> np.ndarray:
    """(..., 3) points in the SK depth camera's frame (m) -> the colour camera's: R^T (X - T)."""
    return (np.asarray(points, dtype=np.float64) - SK_TRANSLATION_M) @ SK_ROTATION


MIN_RANGE_M = 0.2
"""The SK camera (RealSense F200) measures nothing nearer than this."""


def depth_window(region: tuple[float, float, float, float], shape: tuple[int, int]) -> tuple:
    """Depth-image slices (rows, cols) holding every depth pixel that can land in a colour
    `region` (u0, v0, u1, v1) px: its corners lifted at MIN_RANGE_M and far away, seen from the
    depth camera (parallax is monotonic in 1/z, so those are the extremes), plus 2 px."""
    u0, v0, u1, v1 = region
    corners = np.array([[u0, v0, 1], [u1, v0, 1], [u0, v1, 1], [u1, v1, 1]], np.float64)
    rays = corners @ np.linalg.inv(SK_COLOR_K).T
    points = np.concatenate([rays * MIN_RANGE_M, rays * 1e3])
    in_depth_frame = points @ SK_ROTATION.T + SK_TRANSLATION_M  # X = R Xc + T
    uv = project(SK_DEPTH_K, in_depth_frame)
    lo = np.maximum(np.floor(uv.min(axis=0)).astype(int) - 2, 0)
    hi = np.ceil(uv.max(axis=0)).astype(int) + 3
    return slice(lo[1], min(hi[1], shape[0])), slice(lo[0], min(hi[0], shape[1]))


def register_depth(
    depth_m: np.ndarray,
    out_shape: tuple[int, int],
    region: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """(H, W) float32 SK depth-camera depth (m, 0 = none) -> (out_shape) depth in the colour image.

    Each valid depth pixel is lifted with the depth intrinsics, moved into the colour frame and
    projected with the colour intrinsics; it is written to the 2 x 2 colour pixels around where
    it lands, because the colour camera's focal length is 1.28 times the depth camera's and one
    pixel each would leave holes between them (surfaces grow by at most a pixel). Where several
    land on one pixel the nearest surface wins; pixels nothing reaches stay 0.

    region: (u0, v0, u1, v1) colour px; when given, only the depth pixels that can land there
    are lifted (a crop's worth instead of a frame's): inside it the result is the same as for
    the whole frame, outside it may be incomplete.
    """
    rows, cols = slice(None), slice(None)
    if region is not None:
        rows, cols = depth_window(region, depth_m.shape)
    v, u = np.nonzero(depth_m[rows, cols] > 0)
    z = depth_m[rows, cols][v, u].astype(np.float32)
    v, u = v + (rows.start or 0), u + (cols.start or 0)
    f32 = np.float32
    (fx, _, cx), (_, fy, cy) = SK_DEPTH_K[:2]
    # Elementwise in float32 throughout: a full frame has 300k points, and (N, 3) float64
    # matrix products cost several times more.
    x = (u.astype(f32) - f32(cx)) * (z / f32(fx)) - f32(SK_TRANSLATION_M[0])
    y = (v.astype(f32) - f32(cy)) * (z / f32(fy)) - f32(SK_TRANSLATION_M[1])
    z = z - f32(SK_TRANSLATION_M[2])
    R = SK_ROTATION.astype(f32)  # colour point = R^T (X - T): column j of R dotted with X - T
    xc = R[0, 0] * x + R[1, 0] * y + R[2, 0] * z
    yc = R[0, 1] * x + R[1, 1] * y + R[2, 1] * z
    zc = R[0, 2] * x + R[1, 2] * y + R[2, 2] * z
    ahead = zc > 0
    xc, yc, zc = xc[ahead], yc[ahead], zc[ahead]
    (cfx, _, ccx), (_, cfy, ccy) = SK_COLOR_K[:2]
    cu0 = np.floor(f32(cfx) * xc / zc + f32(ccx)).astype(np.int64)
    cv0 = np.floor(f32(cfy) * yc / zc + f32(ccy)).astype(np.int64)
    h, w = out_shape
    flat = np.full(h * w, np.inf, np.float32)
    for du, dv in ((0, 0), (1, 0), (0, 1), (1, 1)):
        cu, cv = cu0 + du, cv0 + dv
        inside = (cu >= 0) & (cu < w) & (cv >= 0) & (cv < h)
        # The nearest surface wins at every pixel (a z-buffer).
        np.minimum.at(flat, cv[inside] * w + cu[inside], zc[inside])
    flat[np.isinf(flat)] = 0.0
    return flat.reshape(out_shape)


def _loadmat(path: Path) -> dict:
    """scipy.io.loadmat with any failure turned into an error naming the file."""
    try:
        return scipy.io.loadmat(path)
    except FileNotFoundError:
        raise DataFileError(f"{path}: file not found") from None
    except Exception as err:
        # scipy reports truncated or foreign files as many exception types (IndexError,
        # struct.error, MatReadError, ...); all mean the same thing here.
        raise DataFileError(f"{path}: not a readable MATLAB file ({err!r})") from err


def load_labels(path: Path) -> np.ndarray:
    """A labels/<seq>_{SK,BB}.mat -> (frames, 21, 3) mm in STB's joint order."""
    para = _loadmat(path).get("handPara")
    if para is None:
        raise DataFileError(f"{path}: no variable 'handPara'")
    para = np.asarray(para, dtype=np.float64)
    if para.ndim != 3 or para.shape[:2] != (3, 21) or not np.all(np.isfinite(para)):
        raise DataFileError(f"{path}: 'handPara' must be finite (3, 21, frames), got {para.shape}")
    return para.transpose(2, 1, 0)


def load_boxes(path: Path, count: int) -> np.ndarray:
    """Ge et al.'s STB_eval_bboxes.mat -> (count, 4) [x, y, w, h] px."""
    boxes = _loadmat(path).get("bboxes")
    if boxes is None:
        raise DataFileError(f"{path}: no variable 'bboxes'")
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape != (count, 4) or not np.all(np.isfinite(boxes)) or np.any(boxes[:, 2:] <= 0):
        raise DataFileError(
            f"{path}: 'bboxes' must be ({count}, 4) [x, y, w, h] with w, h > 0 for the "
            f"{count} test frames, got shape {boxes.shape}"
        )
    return boxes


class STBReader:
    """STB frames of some sequences from one camera, as RawSamples (module docstring).

    Args:
        root: the STB root (sequence folders and labels/).
        split: 'train' (B2-B6) or 'test' (B1); or give `sequences` explicitly.
        camera: 'SK' (RealSense colour + registered depth; Ge et al.'s), 'BB_left' or 'BB_right'.
        boxes: Ge et al.'s STB_eval_bboxes.mat, for the SK test split only.
        depth: read and register the SK depth (the costliest part of a frame); False leaves
            it out, for training and scoring, which never read it.
    """

    def __init__(
        self,
        root: Path,
        split: str = "test",
        camera: str = "SK",
        sequences: tuple[str, ...] | None = None,
        boxes: Path | None = None,
        depth: bool = True,
    ) -> None:
        if camera not in CAMERAS:
            raise ValueError(f"STB camera must be one of {CAMERAS}, got {camera!r}")
        if sequences is None:
            if split not in SEQUENCES:
                raise ValueError(f"STB split must be one of {tuple(SEQUENCES)}, got {split!r}")
            sequences = SEQUENCES[split]
        self.root = expect(Path(root), "the STB root", "folder")
        self.camera, self.sequences, self.depth = camera, tuple(sequences), depth
        kind = "SK" if camera == "SK" else "BB"
        self.frames: list[tuple[str, int]] = []
        joints = []
        for seq in self.sequences:
            expect(self.root / seq, f"STB sequence folder {seq}", "folder")
            label = expect(self.root / "labels" / f"{seq}_{kind}.mat", f"STB's {seq} labels")
            mm = load_labels(label)[:, list(STB_TO_PROJECT)]
            metres = mm / 1000.0
            if camera == "SK":
                metres = depth_to_color_frame(metres)
            elif camera == "BB_right":
                metres = metres - np.array([BB_BASELINE_M, 0.0, 0.0])
            joints.append(palm_to_wrist(metres))
            self.frames.extend((seq, n) for n in range(len(mm)))
        self.joints_3d = np.concatenate(joints) if joints else np.zeros((0, 21, 3))
        self.K = SK_COLOR_K if camera == "SK" else BB_K
        self.boxes = None
        if boxes is not None:
            if camera != "SK" or self.sequences != SEQUENCES["test"]:
                raise ValueError(
                    f"{boxes}: Ge et al.'s boxes are for the SK camera's test split "
                    f"({', '.join(SEQUENCES['test'])}), not {camera} {self.sequences}"
                )
            self.boxes = load_boxes(Path(boxes), len(self.frames))

    def __len__(self) -> int:
        return len(self.frames)

    def _file(self, seq: str, stem: str, frame: int) -> Path:
        return self.root / seq / f"{stem}_{frame}.png"

    def _region(self, index: int) -> tuple[float, float, float, float]:
        """Where depth is registered: the eval box, or the joints' bounding box, each grown to
        REGION_SCALE times its longer side about its centre (any crop with a margin up to that
        sees registered depth throughout)."""
        if self.boxes is not None:
            x, y, w, h = self.boxes[index]
            lo, hi = np.array([x, y]), np.array([x + w, y + h])
        else:
            uv = project(self.K, self.joints_3d[index])
            lo, hi = uv.min(axis=0), uv.max(axis=0)
        centre, half = (lo + hi) / 2, (hi - lo).max() * REGION_SCALE / 2
        return (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)

    def load(self, index: int) -> RawSample:
        seq, frame = self.frames[index]
        stem = "SK_color" if self.camera == "SK" else self.camera
        image = read_image(self._file(seq, stem, frame))
        depth = None
        if self.camera == "SK" and self.depth:
            path = self._file(seq, "SK_depth", frame)
            raw = read_image(path)
            if raw.shape[:2] != image.shape[:2]:
                raise DataFileError(f"{path}: size {raw.shape[:2]} differs from the colour image")
            mm = raw[..., 0].astype(np.float32) + 256.0 * raw[..., 1].astype(np.float32)
            depth = register_depth(mm / 1000.0, image.shape[:2], self._region(index))
        joints_3d = self.joints_3d[index]
        sample = RawSample(
            sample_id=f"{seq}/{frame}",
            image=image,
            K=self.K,
            joints_2d=project(self.K, joints_3d),
            joints_3d=joints_3d,
            visibility=np.ones(21, bool),
            depth=depth,
            box=None if self.boxes is None else self.boxes[index],
        )
        return sample.mirror()


class STBDataset(RealDataset):
    """STB as cropped tensors: `RealDataset(STBReader(root, split, ...), **options)`."""

    def __init__(
        self,
        root: Path,
        split: str = "test",
        camera: str = "SK",
        boxes: Path | None = None,
        depth: bool = True,
        **options: object,
    ) -> None:
        reader = STBReader(root, split, camera, boxes=boxes, depth=depth)
        super().__init__(reader, **options)  # type: ignore[arg-type]
