"""What the keypoint network sees: 21 keypoints in a square of their own, upright, and the ray
to that square.

The square is centred on the keypoints' box in a frame turned so that the wrist points at the
palm's middle (the mean of the index and ring MCP joints averaged with the middle MCP, as
MediaPipe orients its crops), its side `MARGIN` times the box's longer side. It plays the part
an image crop plays for the image network: its intrinsics K_crop = A K (A: image pixels ->
crop pixels, a similarity with the turn) are what `handshape.geometry.camera.from_uvd` needs,
so the network's uvd output is read exactly as the image network's is.

Features (B, 21 * 4 + 3), flat, the network's input:
- per keypoint: u, v in the square (`pixels_to_uv`, [-1, 1] over its side), its confidence in
  [0, 1] and its depth relative to the wrist in the units of u (MediaPipe's z: pixels, smaller
  is closer; 0 where unknown);
- the square's ray: its centre's direction (x / z, y / z, turned into the square's frame) and its
  side over the focal length, which carry the perspective of off-centre and near hands.

Pure functions, tensors in and out, batched; pixel centres at integers (`geometry.camera`).
"""

from __future__ import annotations

import math

import torch

from handshape.geometry.camera import pixels_to_uv

MARGIN = 1.5
NUM_CHANNELS = 4
NUM_RAY = 3
WRIST, INDEX_MCP, MIDDLE_MCP, RING_MCP = 0, 5, 9, 13


def num_features(num_joints: int = 21) -> int:
    return num_joints * NUM_CHANNELS + NUM_RAY


def upright_angle(keypoints: torch.Tensor) -> torch.Tensor:
    """(B,) the angle theta that turns (B, 21, 2) image keypoints upright: the square's axes
    are the image's turned by theta (x' = R(theta)^T (x - c))."""
    palm = ((keypoints[:, INDEX_MCP] + keypoints[:, RING_MCP]) / 2 + keypoints[:, MIDDLE_MCP]) / 2
    d = palm - keypoints[:, WRIST]
    # The wrist -> palm direction should become "up" (-y): theta = atan2(dy, dx) + pi / 2.
    return torch.atan2(d[:, 1], d[:, 0]) + math.pi / 2


def keypoint_square(
    keypoints: torch.Tensor, size: int, margin: float = MARGIN
) -> tuple[torch.Tensor, torch.Tensor]:
    """(A (B, 3, 3) image pixels -> pixels of a size-px square, side (B,) in image pixels)."""
    theta = upright_angle(keypoints)
    c, s = theta.cos(), theta.sin()
    R = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (B, 2, 2)
    local = keypoints @ R  # rows: R^T x
    lo, hi = local.amin(1), local.amax(1)
    side = (hi - lo).amax(1).clamp_min(1e-6) * margin
    centre_local = (lo + hi) / 2
    scale = (size / side)[:, None, None]
    A = torch.zeros(len(keypoints), 3, 3, dtype=keypoints.dtype, device=keypoints.device)
    A[:, :2, :2] = scale * R.transpose(1, 2)
    A[:, :2, 2] = -scale[:, :, 0] * centre_local + (size - 1) / 2
    A[:, 2, 2] = 1
    return A, side


def keypoint_inputs(
    keypoints: torch.Tensor,
    confidence: torch.Tensor,
    depth: torch.Tensor | None,
    K: torch.Tensor,
    size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (B, 21 * 4 + 3) and K_crop (B, 3, 3) of the keypoints' square (module
    docstring).

    keypoints: (B, 21, 2) image pixels; confidence: (B, 21); depth: (B, 21) pixels relative to
    the wrist (None: unknown, zeros); K: (B, 3, 3) or (3, 3) the image's intrinsics (no skew);
    size: the square's nominal side in pixels (the network's `input_size`)."""
    keypoints = keypoints.float()
    K = K.float().expand(len(keypoints), 3, 3)
    A, side = keypoint_square(keypoints, size)
    inside = keypoints @ A[:, :2, :2].transpose(1, 2) + A[:, None, :2, 2]
    uv = pixels_to_uv(inside, size)
    if depth is None:
        depth = torch.zeros_like(keypoints[..., 0])
    z = 2.0 * depth.float() / side[:, None]
    per_joint = torch.cat([uv, confidence.float()[..., None], z[..., None]], dim=-1)
    # The square's centre back in the image, and its ray in the square's own axes.
    centre = torch.linalg.solve(A, torch.tensor([(size - 1) / 2] * 2 + [1.0]).expand(len(A), 3))
    focal = K[:, 0, 0]
    ray = torch.stack(
        [(centre[:, 0] - K[:, 0, 2]) / focal, (centre[:, 1] - K[:, 1, 2]) / K[:, 1, 1]], -1
    )
    ray = (A[:, :2, :2] @ ray[..., None])[..., 0] * (side / size)[:, None]
    view = torch.cat([ray, (side / focal)[:, None]], dim=-1)
    features = torch.cat([per_joint.flatten(1), view], dim=-1)
    return features, A @ K
