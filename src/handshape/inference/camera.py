"""The camera of a photograph and the hand's distance from it, when neither is given.

- Intrinsics: the focal length given by the user, else the photograph's EXIF one, else the
  longer side of the image in pixels (about 53 degrees across it, a phone's main camera); the
  principal point at the image centre; `Camera.record` says which was used.
- Root depth: a network gives the hand's shape up to the distance (uv in its square and depths
  relative to the wrist in units of the hand scale). At the right distance Z of the wrist, the
  lifted skeleton's bones have the lengths of a hand of that scale; `root_depth` finds that Z by
  least squares over all 20 bones (their lengths relative to the scale bone from the hand
  model's mean hand), searched on a log grid over 5 cm to 20 m and refined by a parabola
  through the best three points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from handshape.geometry.camera import uv_to_pixels
from handshape.joints import JOINT_PARENTS, SCALE_BONE

NEAR, FAR, STEPS = 0.05, 20.0, 400
CHILDREN = tuple(j for j, p in enumerate(JOINT_PARENTS) if p >= 0)
PARENTS = tuple(JOINT_PARENTS[j] for j in CHILDREN)


@dataclass(frozen=True)
class Camera:
    """A photograph's pinhole camera (pixel centres at integers)."""

    focal: float
    cx: float
    cy: float
    source: str  # where the focal length came from: "given", "exif" or "default"

    @classmethod
    def of_image(
        cls, width: int, height: int, focal: float | None = None, exif_focal: float | None = None
    ) -> Camera:
        if focal is not None:
            if not (math.isfinite(focal) and focal > 0):
                raise ValueError(f"--focal must be a positive number of pixels, got {focal}")
            chosen, source = float(focal), "given"
        elif exif_focal is not None:
            chosen, source = float(exif_focal), "exif"
        else:
            chosen, source = float(max(width, height)), "default"
        return cls(chosen, (width - 1) / 2.0, (height - 1) / 2.0, source)

    def K(self) -> torch.Tensor:
        """(3, 3) intrinsics."""
        return torch.tensor(
            [[self.focal, 0.0, self.cx], [0.0, self.focal, self.cy], [0.0, 0.0, 1.0]]
        )

    def record(self) -> dict[str, Any]:
        return {
            "focal_px": self.focal,
            "focal_from": self.source,
            "principal_point_px": [self.cx, self.cy],
        }


def bone_ratios(rest_joints: np.ndarray) -> torch.Tensor:
    """(20,) each bone's length over the scale bone's, of (21, 3) rest joints."""
    joints = torch.as_tensor(rest_joints, dtype=torch.float64)
    bones = (joints[list(CHILDREN)] - joints[list(PARENTS)]).norm(dim=-1)
    a, b = SCALE_BONE
    return bones / (joints[a] - joints[b]).norm()


def root_depth(
    uvd: torch.Tensor, K: torch.Tensor, size: int, scale: torch.Tensor, ratios: torch.Tensor
) -> torch.Tensor:
    """(B,) the wrist's depth at which (B, 21, 3) uvd joints in a size-px square with
    intrinsics K (B, 3, 3) have the bone lengths `scale` (B,) x `ratios` (20,) (module
    docstring)."""
    dtype = uvd.dtype
    uvd, K = uvd.double(), K.double()
    px = uv_to_pixels(uvd[..., :2], size)
    homog = torch.cat([px, torch.ones_like(px[..., :1])], dim=-1)
    rays = torch.linalg.solve(K, homog.transpose(-1, -2)).transpose(-1, -2)
    rays = rays / rays[..., 2:3]  # (B, 21, 3) with z = 1
    s = scale.double()[:, None]
    offset = uvd[..., 2] * s  # (B, 21) depth relative to the wrist, metres
    grid = torch.logspace(math.log10(NEAR), math.log10(FAR), STEPS, dtype=torch.float64)

    def cost(z: torch.Tensor) -> torch.Tensor:  # z (B, G) -> (B, G)
        depth = z[..., None] + offset[:, None, :]  # (B, G, 21)
        points = depth[..., None] * rays[:, None]  # (B, G, 21, 3)
        bones = (points[:, :, list(CHILDREN)] - points[:, :, list(PARENTS)]).norm(dim=-1)
        want = s[:, :, None] * ratios.double()
        return ((bones - want) ** 2).sum(-1)

    values = cost(grid.expand(len(uvd), -1))
    best = values.argmin(dim=1).clamp(1, STEPS - 2)
    rows = torch.arange(len(uvd))
    z0, z1, z2 = grid[best - 1], grid[best], grid[best + 1]
    c0, c1, c2 = values[rows, best - 1], values[rows, best], values[rows, best + 1]
    # The vertex of the parabola through the three points (in log depth, where the grid is even).
    l0, l1, l2 = z0.log(), z1.log(), z2.log()
    denom = c0 - 2 * c1 + c2
    step = torch.where(denom > 0, 0.5 * (c0 - c2) / denom.clamp_min(1e-30), torch.zeros_like(c1))
    return torch.exp(l1 + step.clamp(-1, 1) * (l2 - l0) / 2).to(dtype)
