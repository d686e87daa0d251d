"""Square crops centred on a hand, resized to the network input, and horizontal mirroring.

Pixel convention (OpenCV's): pixel centres at integer coordinates, so pixel i covers
[i - 0.5, i + 0.5]. A crop is the axis-aligned similarity `u' = s * u + t` (same s for both
axes) held as a (3, 3) matrix `A`; the crop's intrinsics are `A @ K`, its 2D points `A` applied
to the image's. Image, depth and mask are resampled through the same `A` (bilinear for colour,
nearest for depth and masks, so no depth is invented between a hand and its background); what
falls outside the source image is zero (no depth, no hand).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "box_from_joints",
    "box_from_xywh",
    "crop_depth",
    "crop_image",
    "crop_mask",
    "crop_transform",
    "mirror_image",
    "mirror_intrinsics",
    "mirror_points_2d",
    "mirror_points_3d",
    "transform_points",
]


def box_from_joints(
    joints_2d: np.ndarray, margin: float = 1.5, min_side: float = 16.0
) -> tuple[float, float, float]:
    """Square box (cx, cy, side) in pixels around 2D joints.

    joints_2d: (J, 2) px. The box is centred on the joints' bounding box and its side is the
    longer side of that bounding box times `margin`, at least `min_side` px.
    """
    joints_2d = np.asarray(joints_2d, dtype=np.float64)
    if joints_2d.ndim != 2 or joints_2d.shape[1] != 2 or not np.all(np.isfinite(joints_2d)):
        raise ValueError(f"joints_2d must be finite (J, 2), got shape {joints_2d.shape}")
    lo, hi = joints_2d.min(axis=0), joints_2d.max(axis=0)
    centre = (lo + hi) / 2.0
    side = max(float((hi - lo).max()) * margin, min_side)
    return float(centre[0]), float(centre[1]), side


def box_from_xywh(box: np.ndarray, margin: float = 1.0) -> tuple[float, float, float]:
    """Square box (cx, cy, side) from a pixel box (x, y, w, h) covering pixels x..x+w-1.

    The square is centred on the box, its side the longer of w and h times `margin`.
    """
    x, y, w, h = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    if not (w > 0 and h > 0) or not np.isfinite([x, y, w, h]).all():
        raise ValueError(f"box must be finite (x, y, w, h) with w, h > 0, got {box}")
    return x + (w - 1.0) / 2.0, y + (h - 1.0) / 2.0, max(w, h) * margin


def crop_transform(box: tuple[float, float, float], size: int) -> np.ndarray:
    """(3, 3) matrix taking image pixels to pixels of a size x size crop of the square `box`.

    box: (cx, cy, side) px. The box's outer edges map to the crop's outer edges, so its centre
    lands on the crop's centre (size - 1) / 2.
    """
    cx, cy, side = box
    if not side > 0:
        raise ValueError(f"crop side must be positive, got {side}")
    s = size / side
    centre = (size - 1) / 2.0
    return np.array([[s, 0.0, centre - s * cx], [0.0, s, centre - s * cy], [0.0, 0.0, 1.0]])


def transform_points(A: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (3, 3) affine pixel transform to (N, 2) points; returns (N, 2)."""
    points = np.asarray(points, dtype=np.float64)
    return points @ A[:2, :2].T + A[:2, 2]


def _warp(image: np.ndarray, A: np.ndarray, size: int, interpolation: int) -> np.ndarray:
    return cv2.warpAffine(
        image,
        np.ascontiguousarray(A[:2], dtype=np.float64),
        (size, size),
        flags=interpolation,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def crop_image(image: np.ndarray, A: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8 through `A`, bilinear (area-averaged when
    shrinking by more than 2x, so small crops of large images do not alias)."""
    scale = float(A[0, 0])
    if scale < 0.5:
        # Pre-shrink with area averaging, then warp the rest of the way.
        factor = scale * 2.0
        h, w = image.shape[:2]
        new_w, new_h = max(1, round(w * factor)), max(1, round(h * factor))
        small = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        # Pixel centres map as u_small = (u + 0.5) * (new_w / w) - 0.5.
        fx, fy = new_w / w, new_h / h
        pre = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5], [0.0, 0.0, 1.0]])
        return _warp(small, A @ np.linalg.inv(pre), size, cv2.INTER_LINEAR)
    return _warp(image, A, size, cv2.INTER_LINEAR)


def crop_depth(depth: np.ndarray, A: np.ndarray, size: int) -> np.ndarray:
    """(H, W) float32 metres -> (size, size) float32 through `A`, nearest (0 = no depth)."""
    return _warp(np.ascontiguousarray(depth, dtype=np.float32), A, size, cv2.INTER_NEAREST)


def crop_mask(mask: np.ndarray, A: np.ndarray, size: int) -> np.ndarray:
    """(H, W) bool or integer ids -> (size, size) of the same dtype through `A`, nearest."""
    dtype = mask.dtype
    out = _warp(np.ascontiguousarray(mask, dtype=np.uint8), A, size, cv2.INTER_NEAREST)
    return out.astype(dtype)


# --- mirroring (a left hand becomes a right hand) ---------------------------------------------


def mirror_image(image: np.ndarray) -> np.ndarray:
    """(H, W, ...) -> the same array flipped left-right (a copy)."""
    return np.ascontiguousarray(image[:, ::-1])


def mirror_points_2d(points: np.ndarray, width: int) -> np.ndarray:
    """(N, 2) px in an image `width` px wide -> their positions in the flipped image."""
    out = np.array(points, dtype=np.float64)
    out[:, 0] = (width - 1) - out[:, 0]
    return out


def mirror_points_3d(points: np.ndarray) -> np.ndarray:
    """(N, 3) camera-frame points -> mirrored through the camera's y-z plane (x negated)."""
    out = np.array(points, dtype=np.float64)
    out[:, 0] = -out[:, 0]
    return out


def mirror_intrinsics(K: np.ndarray, width: int) -> np.ndarray:
    """(3, 3) intrinsics of an image -> those of its flip, for points mirrored in 3D.

    With F the pixel flip u -> width - 1 - u and M = diag(-1, 1, 1) the 3D mirror,
    F K x = K' M x for every x, so K' = F K M.
    """
    flip = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return flip @ np.asarray(K, dtype=np.float64) @ np.diag([-1.0, 1.0, 1.0])
