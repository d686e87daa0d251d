"""The training losses of Ge et al. (CVPR 2019), Sec. 4.3-4.4, one function per term.

Reduction convention (all terms except `rendered_depth_loss`): each loss is the paper's SUM over the
elements of one sample (heat-map pixels of all joints, vertices, faces, edges, joints; and over
the x/y/z components inside each squared norm), then the MEAN over the batch. The paper writes
every term as a per-sample sum and tunes its weights (lambda_v = lambda_n = lambda_e = 1,
lambda_l = 50, lambda_H = 0.5, lambda_J = 1, ...) for those sums, so the sums are kept; averaging
over the batch makes the magnitude independent of the batch size. `rendered_depth_loss`, the one
L_D, is the exception (per sample, a mean over its hand pixels, see its docstring).

Weights are NOT applied here. The functions fix no unit: magnitudes follow whatever space the
caller passes (uvd, metres, ...). For orientation, with the project's hand (1050 vertices,
2096 faces, ~3100 edges) and zero-initialised heat-maps, `heatmap_loss` starts near
J * pi * sigma^2 ~ 21 * 50 ~ 1e3 per stack, while the edge loss is quartic in edge length and
is tiny in uvd units (edges ~0.1): the relative weights belong in the config, not here.

Ground-truth tensors are treated as constants: the gradient is meant to flow into the
predictions (nothing is detached, so a target that requires grad also receives one).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from handshape.geometry.mesh_ops import face_normals

__all__ = [
    "edge_loss",
    "heatmap_loss",
    "labelled_pose_loss",
    "laplacian_loss",
    "normal_loss",
    "pose_loss",
    "rendered_depth_loss",
    "vertex_loss",
]


def _as_index(a: torch.Tensor | np.ndarray, device: torch.device | None = None) -> torch.Tensor:
    """Index array or tensor -> long tensor (on `device` when given)."""
    t = a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))
    return t.to(device=device, dtype=torch.long)


def _sq_dist_sum(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> scalar: squared differences summed over all but the batch dim, batch mean."""
    diff = (pred - gt).reshape(pred.shape[0], -1)
    return (diff * diff).sum(dim=1).mean()


def heatmap_loss(pred: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """L_H = sum_j ||H_j - H^_j||_2^2, summed over the stacks of an hourglass.

    Args:
        pred: (B, J, H, W) predicted heat-maps, or a sequence of them (one per hourglass stack,
            intermediate supervision: every stack is compared with the same target).
        target: (B, J, H, W) ground-truth heat-maps.

    Returns:
        Scalar: per sample, the squared error summed over joints and pixels (and over stacks);
        then the mean over the batch.
    """
    preds = [pred] if isinstance(pred, torch.Tensor) else list(pred)
    if not preds:
        raise ValueError("heatmap_loss needs at least one prediction")
    total = _sq_dist_sum(preds[0], target)
    for p in preds[1:]:
        total = total + _sq_dist_sum(p, target)
    return total


def vertex_loss(
    pred_3d: torch.Tensor,
    gt_3d: torch.Tensor,
    pred_2d: torch.Tensor | None = None,
    gt_2d: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_v = sum_i ||v3D_i - v^3D_i||^2 + ||v2D_i - v^2D_i||^2 (paper Eq. 2).

    Args:
        pred_3d, gt_3d: (B, N, 3) predicted and ground-truth 3D vertices.
        pred_2d, gt_2d: (B, N, 2) predicted and ground-truth 2D vertices; both or neither (then
            only the 3D term is used).

    Returns:
        Scalar: per sample, the squared distances summed over vertices (3D plus 2D); then the
        mean over the batch.
    """
    loss = _sq_dist_sum(pred_3d, gt_3d)
    if (pred_2d is None) != (gt_2d is None):
        raise ValueError("pass both pred_2d and gt_2d, or neither")
    if pred_2d is not None:
        loss = loss + _sq_dist_sum(pred_2d, gt_2d)
    return loss


def normal_loss(pred: torch.Tensor, gt: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """L_n = sum_t sum_{(i,j) in t} <v^_i - v^_j, n_t>^2 (paper Eq. 3).

    n_t is the unit normal of face t computed from the ground-truth vertices; (i, j) runs over
    the three edges (v0, v1), (v1, v2), (v2, v0) of each face, so an edge shared by two faces is
    counted once per face. Degenerate ground-truth faces (zero area) contribute nothing.

    Args:
        pred: (B, N, 3) predicted vertices.
        gt: (B, N, 3) ground-truth vertices.
        faces: (F, 3) vertex indices (tensor or array).

    Returns:
        Scalar: per sample, summed over faces and their three edges; then the mean over the batch.
    """
    faces = _as_index(faces, pred.device)
    n = face_normals(gt, faces)  # (B, F, 3)
    p0, p1, p2 = (pred[:, faces[:, k]] for k in range(3))
    loss = pred.new_zeros(pred.shape[0])
    for a, b in ((p0, p1), (p1, p2), (p2, p0)):
        loss = loss + ((a - b) * n).sum(-1).square().sum(-1)
    return loss.mean()


def edge_loss(pred: torch.Tensor, gt: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """L_e = sum_e (||e||^2 - ||e^||^2)^2 (paper Eq. 4).

    Args:
        pred: (B, N, 3) predicted vertices.
        gt: (B, N, 3) ground-truth vertices.
        edges: (E, 2) vertex index pairs (e.g. `mesh_edges(faces)`).

    Returns:
        Scalar: per sample, summed over edges; then the mean over the batch.
    """
    edges = _as_index(edges, pred.device)

    def sq_len(v: torch.Tensor) -> torch.Tensor:
        return (v[:, edges[:, 0]] - v[:, edges[:, 1]]).square().sum(-1)  # (B, E)

    return (sq_len(gt) - sq_len(pred)).square().sum(-1).mean()


def laplacian_loss(pred: torch.Tensor, gt: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
    """L_l = sum_i ||d_i - sum_{k in N(i)} d_k / B_i||^2 with d = gt - pred (paper Eq. 5).

    The sign of d does not matter (the loss is quadratic in it).

    Args:
        pred: (B, N, 3) predicted vertices.
        gt: (B, N, 3) ground-truth vertices.
        laplacian: (N, N) sparse or dense L = I - D^-1 A from `uniform_laplacian` (moved to the
            data's device and dtype here).

    Returns:
        Scalar: per sample, the squared norms summed over vertices; then the mean over the batch.
    """
    b, n, c = pred.shape
    # Sparse products have no half-precision autocast path (backward fails on mixed types):
    # float32 (or float64) here, whatever the surrounding autocast.
    dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32
    d = (gt - pred).permute(1, 0, 2).reshape(n, b * c).to(dtype)  # (N, B*3)
    lap = laplacian.to(device=pred.device, dtype=dtype)
    with torch.autocast(device_type=pred.device.type, enabled=False):
        ld = torch.sparse.mm(lap, d) if lap.is_sparse else lap @ d
    return ld.square().sum() / b


def pose_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """L_J = sum_j ||phi_j - phi^_j||^2.

    Args:
        pred, gt: (B, J, 3) predicted and ground-truth 3D joints.

    Returns:
        Scalar: per sample, summed over joints; then the mean over the batch.
    """
    return _sq_dist_sum(pred, gt)


def labelled_pose_loss(
    pred: torch.Tensor, gt: torch.Tensor, labelled: torch.Tensor
) -> torch.Tensor:
    """L_J over the samples that have 3D joint labels (weak supervision's "+ w_J L_J").

    Args:
        pred, gt: (B, J, 3) predicted and ground-truth 3D joints (gt is not read where
            unlabelled, so it may hold zeros or NaN there).
        labelled: (B,) bool, True where the sample has 3D joints.

    Returns:
        Scalar: per labelled sample, the squared distances summed over joints; then the mean
        over the labelled samples (0 when there is none).
    """
    mask = labelled.bool()
    safe = torch.where(mask[:, None, None], gt, pred.detach())
    per_sample = (pred - safe).square().sum(dim=(1, 2))
    return torch.where(mask, per_sample, 0.0).sum() / mask.sum().clamp_min(1)


def rendered_depth_loss(
    rendered: torch.Tensor,
    coverage: torch.Tensor,
    reference: torch.Tensor,
    reference_mask: torch.Tensor,
    beta: float = 0.01,
    miss: float = 0.03,
) -> torch.Tensor:
    """L_D over the hand region with the silhouette term of `handshape.render.depth_raster`.

    Per pixel of the hand region (reference_mask true), with c the rendered coverage:
        c * smoothL1(rendered - reference) + (1 - c) * smoothL1(miss),
    smoothL1(x) = 0.5 x^2 / beta if |x| < beta else |x| - 0.5 beta; the mean over the hand
    pixels of each sample. A covered pixel (c = 1) costs its depth error; a hand pixel the mesh
    does not reach costs a fixed `miss`, so the cost does not grow with the camera distance (a
    plain difference against a 0 background would); in the one-pixel band outside a contour
    edge (0 < c < 1) the two mix, and the derivative with respect to c pulls the edge onto a hand
    pixel whenever the edge's depth there is within `miss` of the reference. Pixels outside the
    hand region cost nothing (the paper's L_D); other terms keep the mesh from spreading there.
    So the loss is flat while an edge moves between the last hand pixel's centre and the next
    pixel's: it places a silhouette to within a pixel, not finer.

    Args:
        rendered: (B, H, W) `DepthRender.depth`: surface depth where coverage > 0.
        coverage: (B, H, W) `DepthRender.coverage` in [0, 1].
        reference: (B, H, W) captured depth; read only inside the mask (may hold NaN elsewhere).
        reference_mask: (B, H, W) bool, the reference pixels that belong to the hand.
        beta: the smooth-L1 transition point, in the depths' unit (default: metres, 1 cm).
        miss: the depth error a missed hand pixel counts as, same unit (default 3 cm).

    Returns:
        (B,) per sample; 0 for a sample with no hand pixel.
    """
    if not (rendered.shape == coverage.shape == reference.shape == reference_mask.shape):
        raise ValueError(
            "rendered, coverage, reference and reference_mask must have one shape, got "
            f"{tuple(rendered.shape)}, {tuple(coverage.shape)}, {tuple(reference.shape)}, "
            f"{tuple(reference_mask.shape)}"
        )
    mask = reference_mask.bool()
    safe_reference = torch.where(mask, reference, rendered.detach())
    hit = F.smooth_l1_loss(rendered, safe_reference, reduction="none", beta=beta)
    missed = F.smooth_l1_loss(
        torch.tensor(float(miss), dtype=rendered.dtype, device=rendered.device),
        torch.zeros((), dtype=rendered.dtype, device=rendered.device),
        beta=beta,
    )
    per_px = torch.where(mask, coverage * hit + (1 - coverage) * missed, 0.0)
    b = per_px.shape[0]
    return per_px.reshape(b, -1).sum(dim=1) / mask.reshape(b, -1).sum(dim=1).clamp_min(1)
