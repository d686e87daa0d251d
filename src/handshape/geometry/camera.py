"""Pinhole camera: projection, the "uvd" parametrisation and its exact inverse, heat-maps.

Conventions (see `handshape.nets`):
- camera frame as in OpenCV: x right, y down, z forward (away from the camera, z > 0 in front);
- intrinsics K (B, 3, 3) = [[fx, s, cx], [0, fy, cy], [0, 0, 1]] map camera points to pixels
  whose centres lie at integer coordinates (pixel (0, 0) covers [-0.5, 0.5]^2);
- uvd: u, v the pixel position in a square crop of `size` pixels normalised to [-1, 1] by
  u = 2 * (px + 0.5) / size - 1 (so -1 and 1 are the outer edges of the crop, not pixel centres),
  and d = (z - root_depth) / scale, the depth relative to the root joint (the wrist, joint 0) in
  units of the hand scale |J9 - J10| (`handshape.joints.SCALE_BONE`).
  K must be the intrinsics of that crop (crop and resize folded in).

All functions are batched, pure and differentiable; the batch dimension B of K, root_depth and
scale broadcasts against the points (K may also be a single (3, 3) matrix).
"""

from __future__ import annotations

import torch

from handshape.joints import SCALE_BONE

__all__ = [
    "from_uvd",
    "hand_scale",
    "heatmaps",
    "pixels_to_uv",
    "project",
    "resize_pixels",
    "scale_intrinsics",
    "to_uvd",
    "uv_to_pixels",
]


def project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Perspective projection of camera-frame points to pixels.

    Args:
        points: (B, N, 3) camera-frame points (any unit; z > 0 in front of the camera).
        K: (B, 3, 3) or (3, 3) intrinsics.

    Returns:
        (B, N, 2) pixel coordinates (px, py), pixel centres at integers.
    """
    p = points @ K.transpose(-1, -2)  # (B, N, 3) homogeneous pixels
    return p[..., :2] / p[..., 2:3]


def hand_scale(joints: torch.Tensor) -> torch.Tensor:
    """Global hand scale: the length of the middle finger's MCP-PIP bone.

    Args:
        joints: (B, 21, 3) joints in the project order.

    Returns:
        (B,) |J9 - J10|, in the unit of `joints`.
    """
    a, b = SCALE_BONE
    return torch.linalg.vector_norm(joints[..., a, :] - joints[..., b, :], dim=-1)


def pixels_to_uv(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """(..., 2) crop pixels -> (..., 2) normalised u, v = 2 * (px + 0.5) / size - 1."""
    return 2.0 * (pixels + 0.5) / size - 1.0


def uv_to_pixels(uv: torch.Tensor, size: int) -> torch.Tensor:
    """(..., 2) normalised u, v -> (..., 2) crop pixels px = (u + 1) * size / 2 - 0.5."""
    return (uv + 1.0) * (size / 2.0) - 0.5


def to_uvd(
    points: torch.Tensor,
    K: torch.Tensor,
    root_depth: torch.Tensor,
    scale: torch.Tensor,
    size: int,
) -> torch.Tensor:
    """Camera-frame points -> uvd.

    Args:
        points: (B, N, 3) camera-frame points.
        K: (B, 3, 3) or (3, 3) intrinsics of the crop.
        root_depth: (B,) camera-frame z of the root joint (same unit as `points`).
        scale: (B,) hand scale |J9 - J10| (same unit as `points`).
        size: the crop's side in pixels.

    Returns:
        (B, N, 3): u, v in [-1, 1] over the crop, d = (z - root_depth) / scale.
    """
    uv = pixels_to_uv(project(points, K), size)
    d = (points[..., 2] - root_depth[..., None]) / scale[..., None]
    return torch.cat([uv, d[..., None]], dim=-1)


def from_uvd(
    uvd: torch.Tensor,
    K: torch.Tensor,
    root_depth: torch.Tensor,
    scale: torch.Tensor,
    size: int,
) -> torch.Tensor:
    """uvd -> camera-frame points, the exact inverse of `to_uvd`.

    z = root_depth + d * scale, and (x, y, z) = z * K^-1 (px, py, 1) (for a skew-free K:
    x = (px - cx) z / fx, y = (py - cy) z / fy).

    Args:
        uvd: (B, N, 3) u, v normalised over the crop, d scale-normalised relative depth.
        K, root_depth, scale, size: as in `to_uvd`.

    Returns:
        (B, N, 3) camera-frame points in the unit of `root_depth` and `scale`, in the wider
        dtype of `uvd` and `K`, and at least float32 (half-precision network outputs under
        mixed precision are lifted in float32: torch.linalg.solve has no half kernels).
    """
    dtype = torch.promote_types(torch.promote_types(uvd.dtype, K.dtype), torch.float32)
    uvd, K = uvd.to(dtype), K.to(dtype)
    px = uv_to_pixels(uvd[..., :2], size)
    z = root_depth[..., None] + uvd[..., 2] * scale[..., None]  # (B, N)
    homog = torch.cat([px, torch.ones_like(px[..., :1])], dim=-1)  # (B, N, 3)
    rays = torch.linalg.solve(K, homog.transpose(-1, -2)).transpose(-1, -2)  # K^-1 (px, py, 1)
    # Divide by the ray's z so that a K whose last row is not exactly (0, 0, 1) stays consistent.
    return rays * (z / rays[..., 2])[..., None]


def resize_pixels(points: torch.Tensor, src: int, dst: int) -> torch.Tensor:
    """(..., 2) pixel positions in a src-px square crop -> the same points once the crop is
    resized to dst px (pixel centres at integers, as `project`)."""
    return (points.float() + 0.5) * (dst / src) - 0.5


def scale_intrinsics(K: torch.Tensor, src: int, dst: int) -> torch.Tensor:
    """K (B, 3, 3) of a src-px square crop -> K of the same crop resized to dst px (pixel
    centres at integers, as `project` assumes)."""
    factor = dst / src
    out = K.clone().float()
    out[:, :2, :2] *= factor
    out[:, :2, 2] = (out[:, :2, 2] + 0.5) * factor - 0.5
    return out


def heatmaps(
    joints_2d: torch.Tensor,
    input_size: int,
    out_size: int = 64,
    sigma: float = 4.0,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Ground-truth Gaussian heat-maps (peak value 1) of 2D joints.

    A joint at input pixel px (centre convention of `project`) lies at heat-map coordinate
    hx = (px + 0.5) * out_size / input_size - 0.5, so that both grids cover the same square;
    H[y, x] = exp(-((x - hx)^2 + (y - hy)^2) / (2 sigma^2)) with x, y the integer heat-map cells.
    The paper uses 64 x 64 heat-maps of a 256 x 256 crop with sigma = 4 heat-map pixels.

    Args:
        joints_2d: (B, J, 2) joint positions (px, py) in input-crop pixels.
        input_size: side of the input crop in pixels.
        out_size: side of the heat-map in pixels.
        sigma: standard deviation in heat-map pixels.
        valid: optional (B, J) bool; the maps of joints marked False are all zero.

    Returns:
        (B, J, out_size, out_size) heat-maps, rows indexed by y, columns by x.
    """
    centre = (joints_2d + 0.5) * (out_size / input_size) - 0.5  # (B, J, 2)
    grid = torch.arange(out_size, dtype=joints_2d.dtype, device=joints_2d.device)
    gx = torch.exp(-((grid - centre[..., 0:1]) ** 2) / (2.0 * sigma**2))  # (B, J, W)
    gy = torch.exp(-((grid - centre[..., 1:2]) ** 2) / (2.0 * sigma**2))  # (B, J, H)
    maps = gy[..., :, None] * gx[..., None, :]
    if valid is not None:
        maps = maps * valid[..., None, None].to(maps.dtype)
    return maps
