"""The benchmarks' evaluation protocols, as pure functions from predictions to numbers.

Each function takes a whole evaluation set's predictions and ground truth (numpy arrays or
torch tensors, metres / pixels) and returns a flat dict of floats (mm, px or fractions), ready
for metrics.json. The pieces (errors, PCK, AUC, alignments) are in `handshape.evaluation.metrics`.

FreiHAND (`freihand_report`), as lmb-freiburg/freihand's eval.py computes it:
- every sample's prediction is aligned to its ground truth by orthogonal Procrustes with scale,
  joints and mesh separately, reflections allowed (scipy's `orthogonal_procrustes`);
- PA-MPJPE / PA-MPVPE: mean aligned joint / vertex distance (per joint over the samples, then
  over the joints: with every point evaluated, the plain mean);
- AUC over 0-50 mm with 100 thresholds (linspace), PCK counting errors <= t, per joint then
  averaged;
- F@5 mm, F@15 mm on the aligned mesh: per sample, P = fraction of ground-truth vertices whose
  nearest predicted vertex is closer than t, R = the same from the predicted side (strictly
  "<", as the official code), F = 2PR / (P + R) (0 when both are 0), averaged over samples.
- A mesh of another topology than MANO's 778 vertices gets no PA-MPVPE; for its F-scores it is
  moved by the similarity fitted on the joints. (The official code means to do the same, but its
  `align_by_trafo` drops the prediction's own normalisation and pivots on the mesh's centroid,
  so its numbers for such meshes differ from these; with MANO's topology the two agree.)

RHD / STB 3D (`hand3d_report`), Zimmermann & Brox's protocol as Ge et al. follow it: the
prediction's root moved onto the ground-truth root (and optionally rescaled to the ground-truth
hand scale), per-joint errors including the root, 3D PCK and AUC over 20-50 mm in both threshold
conventions (`handshape.evaluation.metrics.pck_report`), plus their EvalUtil's mean / median EPE.

2D (`pck_2d_report`), Zimmermann & Brox's eval2d: pixel errors of visible joints in the data
set's image (RHD 320 x 320, STB 640 x 480, not the network crop), PCK over 0-30 px with 20
thresholds, AUC over that range.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from handshape.evaluation.metrics import (
    THRESHOLDS_0_50_100,
    THRESHOLDS_2D_PX,
    align_root_scale,
    apply_similarity,
    auc,
    joint_epe,
    pck_curve,
    pck_report,
    point_errors,
    procrustes_align,
)

__all__ = [
    "FREIHAND_F_THRESHOLDS_MM",
    "MANO_VERTICES",
    "f_score",
    "freihand_joint_errors",
    "freihand_report",
    "hand3d_errors",
    "hand3d_report",
    "nearest_distances",
    "pck_2d_report",
]

# FreiHAND's F-score thresholds (official eval.py: 0.005 and 0.015 m).
FREIHAND_F_THRESHOLDS_MM: tuple[float, ...] = (5.0, 15.0)
# MANO's vertex count: FreiHAND's meshes, and the only topology with a vertex-to-vertex error.
MANO_VERTICES = 778

Array = np.ndarray | torch.Tensor


def _np64(x: Array) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


# --------------------------------------------------------------------------- F-score


def nearest_distances(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Distance from every point of `src` to its nearest point of `dst` (a k-d tree).

    Args:
        src: (N, 3) points; dst: (M, 3) points, M >= 1.

    Returns:
        (N,) float64 distances, in the inputs' unit.
    """
    dist, _ = cKDTree(np.asarray(dst, dtype=np.float64)).query(np.asarray(src, dtype=np.float64))
    return np.asarray(dist, dtype=np.float64)


def f_score(
    pred: Array, gt: Array, thresholds_mm: tuple[float, ...] | np.ndarray, unit: float = 1000.0
) -> np.ndarray:
    """Per-sample F-scores of two point sets at distance thresholds (FreiHAND's definition).

    P(t) = fraction of gt points whose nearest pred point is closer than t, R(t) = fraction of
    pred points whose nearest gt point is closer than t (strict "<"); F = 2PR / (P + R), and 0
    when P + R = 0. No correspondence is used, so the two sets may differ in size.

    Args:
        pred: (B, M, 3) predicted points (metres by default).
        gt: (B, N, 3) ground-truth points.
        thresholds_mm: (T,) thresholds in the output unit (mm by default).
        unit: factor from the input unit to the thresholds' unit (1000: m -> mm).

    Returns:
        (B, T) float64 F-scores in [0, 1].
    """
    p, g = _np64(pred), _np64(gt)
    same_batch = p.ndim == g.ndim == 3 and p.shape[0] == g.shape[0]
    if not same_batch or p.shape[2] != 3 or g.shape[2] != 3:
        raise ValueError(f"f_score needs (B, M, 3) and (B, N, 3), got {p.shape} and {g.shape}")
    if p.shape[1] == 0 or g.shape[1] == 0:
        raise ValueError("f_score needs at least one point on each side")
    t = np.asarray(thresholds_mm, dtype=np.float64)
    out = np.empty((p.shape[0], t.size))
    for b in range(p.shape[0]):
        d_gt = nearest_distances(g[b], p[b]) * unit  # (N,) gt -> nearest pred
        d_pred = nearest_distances(p[b], g[b]) * unit  # (M,) pred -> nearest gt
        precision = (d_gt[None] < t[:, None]).mean(1)
        recall = (d_pred[None] < t[:, None]).mean(1)
        denom = precision + recall
        out[b] = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0)
    return out


# --------------------------------------------------------------------------- FreiHAND


def freihand_joint_errors(pred_joints: Array, gt_joints: Array) -> tuple[np.ndarray, tuple]:
    """(B, 21) mm errors of the Procrustes-aligned joints (per sample, reflection allowed, as
    FreiHAND's eval.py) and that similarity (s, r, t) (`metrics.procrustes_align`)."""
    pj, gj = _np64(pred_joints), _np64(gt_joints)
    if pj.shape != gj.shape or pj.ndim != 3 or pj.shape[1:] != (21, 3):
        raise ValueError(f"joints must both be (B, 21, 3), got {pj.shape} and {gj.shape}")
    aligned, transform = procrustes_align(pj, gj, return_transform=True, allow_reflection=True)
    return point_errors(aligned, gj), transform


def freihand_report(
    pred_joints: Array,
    gt_joints: Array,
    pred_vertices: Array | None = None,
    gt_vertices: Array | None = None,
) -> dict[str, float]:
    """FreiHAND's official numbers for a set of predictions.

    Args:
        pred_joints, gt_joints: (B, 21, 3) joints in metres (camera frame; the aligned numbers
            do not depend on the frame).
        pred_vertices: (B, M, 3) predicted mesh in metres, or None (joints only).
        gt_vertices: (B, 778, 3) ground-truth MANO meshes, or None (then only joint numbers).

    Returns:
        dict with
        - "pa_mpjpe_mm", "auc_0_50_pa": aligned joint error and its AUC over 0-50 mm
          (official: xyz_al_mean3d, xyz_al_auc3d);
        - "mpjpe_mm": the error without alignment (official: xyz_mean3d);
        - with both meshes: "f_5mm", "f_15mm" (aligned mesh; official f_al_score_5 / _15),
          "f_5mm_unaligned", "f_15mm_unaligned"; and when the prediction has MANO's 778
          vertices also "pa_mpvpe_mm", "auc_0_50_pa_mesh", "mpvpe_mm".
    """
    pj, gj = _np64(pred_joints), _np64(gt_joints)
    e_al, (s, r, t) = freihand_joint_errors(pj, gj)
    out = {
        "pa_mpjpe_mm": joint_epe(e_al)[0],
        "auc_0_50_pa": auc(pck_curve(e_al, THRESHOLDS_0_50_100), THRESHOLDS_0_50_100),
        "mpjpe_mm": joint_epe(point_errors(pj, gj))[0],
    }
    if pred_vertices is None or gt_vertices is None:
        return out

    pv, gv = _np64(pred_vertices), _np64(gt_vertices)
    if pv.ndim != 3 or pv.shape[0] != pj.shape[0] or pv.shape[-1] != 3:
        raise ValueError(f"pred_vertices must be ({pj.shape[0]}, M, 3), got {pv.shape}")
    if gv.shape != (pj.shape[0], MANO_VERTICES, 3):
        raise ValueError(f"gt_vertices must be ({pj.shape[0]}, 778, 3), got {gv.shape}")
    if pv.shape[1] == MANO_VERTICES:
        verts_al = procrustes_align(pv, gv, allow_reflection=True)
        ev = point_errors(verts_al, gv)  # (B, 778) mm
        out["pa_mpvpe_mm"] = joint_epe(ev)[0]
        out["auc_0_50_pa_mesh"] = auc(pck_curve(ev, THRESHOLDS_0_50_100), THRESHOLDS_0_50_100)
        out["mpvpe_mm"] = joint_epe(point_errors(pv, gv))[0]
    else:  # another topology: no correspondence; move it with the joints' similarity
        verts_al = apply_similarity(pv, s, r, t)
    f_al = f_score(verts_al, gv, FREIHAND_F_THRESHOLDS_MM).mean(0)
    f_raw = f_score(pv, gv, FREIHAND_F_THRESHOLDS_MM).mean(0)
    for th, fa, fr in zip(FREIHAND_F_THRESHOLDS_MM, f_al, f_raw, strict=True):
        out[f"f_{th:g}mm"] = float(fa)
        out[f"f_{th:g}mm_unaligned"] = float(fr)
    return out


# --------------------------------------------------------------------------- RHD / STB


def _visible_mask(visible: Array | None, shape: tuple[int, int]) -> np.ndarray:
    if visible is None:
        return np.ones(shape, dtype=bool)
    v = visible.detach().cpu().numpy() if isinstance(visible, torch.Tensor) else np.asarray(visible)
    if v.shape != shape:
        raise ValueError(f"visible must be {shape}, got {v.shape}")
    return v.astype(bool)


def hand3d_errors(
    pred: Array, gt: Array, visible: Array | None = None, rescale: bool = False
) -> np.ndarray:
    """(B, 21) mm errors `hand3d_report` scores: root aligned (and rescaled with `rescale`),
    NaN at joints not `visible`."""
    p, g = _np64(pred), _np64(gt)
    if p.shape != g.shape or p.ndim != 3 or p.shape[1:] != (21, 3):
        raise ValueError(f"pred and gt must both be (B, 21, 3), got {p.shape} and {g.shape}")
    e = point_errors(align_root_scale(p, g, rescale=rescale), g)
    return np.where(_visible_mask(visible, e.shape), e, np.nan)


def hand3d_report(
    pred: Array, gt: Array, visible: Array | None = None, rescale: bool = False
) -> dict[str, float]:
    """RHD / STB 3D pose numbers (Zimmermann & Brox's protocol, as in Ge et al. Sec. 5).

    Args:
        pred, gt: (B, 21, 3) joints in metres, the project's joint order, root = wrist (0).
            A prediction lifted with the ground-truth root depth and hand scale (the paper's
            test-time assumption) needs no more; rescale=True also scales each prediction's
            root-relative joints to the ground-truth hand scale |J9 - J10|.
        visible: (B, 21) bool, the joints to evaluate (default: all, as Ge et al. and
            Zimmermann & Brox's 3D scripts on RHD; their STB script passes the labels'
            visibility, which is all ones there).
        rescale: see above.

    Returns:
        `pck_report`'s keys (auc_20_50, auc_20_50_zb, auc_0_50, pck_20..50, mean_mm,
        median_mm; pooled over evaluated joints) plus "epe_mean_mm" / "epe_median_mm" as
        Zimmermann & Brox's EvalUtil prints them (per joint, then averaged over joints).
    """
    e = hand3d_errors(pred, gt, visible, rescale)
    out = pck_report(e)
    out["epe_mean_mm"], out["epe_median_mm"] = joint_epe(e)
    return out


def pck_2d_report(pred_uv: Array, gt_uv: Array, visible: Array | None = None) -> dict[str, float]:
    """2D keypoint numbers in pixels (Zimmermann & Brox's eval2d protocol).

    Args:
        pred_uv, gt_uv: (B, J, 2) pixel coordinates in the data set's own image.
        visible: (B, J) bool; only visible joints are evaluated (RHD's uv_vis), default all.

    Returns:
        dict with "auc_0_30px" (AUC of the PCK over linspace(0, 30, 20) px), "pck_5px",
        "pck_10px", "pck_15px", "pck_20px", "pck_30px", and "epe_mean_px" / "epe_median_px"
        (per joint, then averaged over joints, as EvalUtil).
    """
    p, g = _np64(pred_uv), _np64(gt_uv)
    if p.shape != g.shape or p.ndim != 3 or p.shape[-1] != 2:
        raise ValueError(f"pred_uv and gt_uv must both be (B, J, 2), got {p.shape} and {g.shape}")
    e = point_errors(p, g, unit=1.0)
    e = np.where(_visible_mask(visible, e.shape), e, np.nan)
    out = {"auc_0_30px": auc(pck_curve(e, THRESHOLDS_2D_PX), THRESHOLDS_2D_PX)}
    at = np.array([5.0, 10.0, 15.0, 20.0, 30.0])
    for th, v in zip(at, pck_curve(e, at), strict=True):
        out[f"pck_{th:g}px"] = float(v)
    out["epe_mean_px"], out["epe_median_px"] = joint_epe(e)
    return out
