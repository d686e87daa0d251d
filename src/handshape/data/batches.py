"""Batch preparation: a data batch resized to a network's input, with every target derived
from its labels (uvd and normalised joints and vertices, heat-maps), as training, evaluation
and the studies read it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from handshape.geometry.camera import (
    hand_scale,
    heatmaps,
    resize_pixels,
    scale_intrinsics,
    to_uvd,
)


def network_input(gt: dict[str, torch.Tensor]) -> torch.Tensor:
    """What a network reads from a prepared batch: its keypoint features where the batch has
    them (a keypoint network's data), else the image."""
    return gt["keypoints"] if "keypoints" in gt else gt["image"]


def prepare_batch(
    batch: dict[str, torch.Tensor], size: int, heatmap_sigma: float
) -> dict[str, torch.Tensor]:
    """Resize a data batch to the network's input size and derive every training target.

    Adds: image (B, 3, size, size); K of the resized crop; root (B, 3) wrist position; scale (B,)
    hand scale; vertices_uvd / joints_uvd (B, N|21, 3); vertices_n / joints_n (B, N|21, 3)
    root-relative scale-normalised camera coordinates; heatmaps (B, 21, size/4, size/4).
    A batch without images (a keypoint network's: its K is that of the keypoints' square at
    `size` already) gets neither image nor heat-maps.
    """
    out = dict(batch)
    has_image = "image" in batch
    src = batch["image"].shape[-1] if has_image else size
    if has_image:
        out["image"] = resize_image(batch["image"], size)
    out["K"] = K = scale_intrinsics(batch["K"], src, size)
    joints, vertices = batch["joints_3d"].float(), batch["vertices"].float()
    root, scale = joints[:, 0], hand_scale(joints)
    if "has_joints_3d" in batch:  # no 3D label: a unit scale keeps the unused targets finite
        scale = torch.where(batch["has_joints_3d"], scale, torch.ones_like(scale))
    out["root"], out["scale"] = root, scale
    out["joints_uvd"] = to_uvd(joints, K, root[:, 2], scale, size)
    out["vertices_uvd"] = to_uvd(vertices, K, root[:, 2], scale, size)
    out["joints_n"] = (joints - root[:, None]) / scale[:, None, None]
    out["vertices_n"] = (vertices - root[:, None]) / scale[:, None, None]
    if has_image:
        out["heatmaps"] = joint_heatmaps(batch["joints_2d"], src, size, heatmap_sigma)
    return out


def resize_image(image: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, S, S) crops -> (B, 3, size, size), antialiased bilinear (unchanged at S = size)."""
    if image.shape[-1] == size:
        return image
    return F.interpolate(
        image, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )


def joint_heatmaps(
    joints_2d: torch.Tensor,
    src: int,
    size: int,
    sigma: float,
    visible: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, 21, size/4, size/4) target heat-maps of (B, 21, 2) joints given in a src-px crop,
    for the network's size-px input; joints outside the crop (or not `visible`) get none."""
    joints = resize_pixels(joints_2d, src, size)
    valid = ((joints >= 0) & (joints <= size - 1)).all(-1)
    if visible is not None:
        valid = valid & visible.bool()
    return heatmaps(joints, size, size // 4, sigma, valid=valid)
