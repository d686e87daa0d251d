"""Drawing predictions on a prepared batch's images: meshes and skeletons projected with the
batch's intrinsics, one tile per sample (training previews, study and notebook figures)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from handshape.geometry.camera import project
from handshape.render.annotate import draw_mesh_overlay


def overlay_row(
    gt: dict[str, torch.Tensor],
    vertices: torch.Tensor | None,
    joints: torch.Tensor | None,
    faces: np.ndarray,
    count: int,
    size: int | None = None,
) -> np.ndarray:
    """(S, count * S, 3) uint8: the first ``count`` input images of a prepared batch with the
    given camera-frame vertices (B, N, 3; None: a pose-only network, skeleton only) and joints
    (B, 21, 3; None: the mesh only) drawn on them; a batch without images (a keypoint
    network's) is drawn on grey squares of `size` pixels."""
    K = gt["K"][:count]
    if "image" in gt:
        images = (gt["image"][:count].clamp(0, 1) * 255).byte().permute(0, 2, 3, 1).cpu().numpy()
    else:
        assert size is not None, "a batch without images needs the square's size"
        images = np.full((len(K), size, size, 3), 64, dtype=np.uint8)
    # .float() after projecting too: under bf16 autocast the projection comes back in bf16,
    # which numpy cannot hold.
    j_px: Any = [None] * len(images)
    if joints is not None:
        j_px = project(joints[:count].float(), K).detach().float().cpu().numpy()
    v_px: Any = [None] * len(images)
    if vertices is not None:
        v_px = project(vertices[:count].float(), K).detach().float().cpu().numpy()
    tiles = [draw_mesh_overlay(i, v, faces, j) for i, v, j in zip(images, v_px, j_px, strict=True)]
    return np.concatenate(tiles, axis=1)


def preview_grid(
    gt: dict[str, torch.Tensor],
    pred: dict[str, torch.Tensor],
    faces: np.ndarray,
    count: int,
    size: int | None = None,
) -> np.ndarray:
    """(2 S, count * S, 3) uint8: the predicted mesh and joints (top row) and the ground truth
    (bottom row) on the first ``count`` images of a prepared batch (`overlay_row`)."""
    top = overlay_row(gt, pred.get("vertices"), pred["joints"], faces, count, size)
    has_mesh = bool(gt.get("has_mesh", torch.ones(1, dtype=torch.bool))[:count].all())
    truth = gt["vertices"] if has_mesh else None
    bottom = overlay_row(gt, truth, gt["joints_3d"], faces, count, size)
    return np.concatenate([top, bottom], axis=0)
