"""Evaluation metrics: mesh / joint errors, 3D PCK and AUC, alignments, the PCK plot.

Units: point inputs are in metres by default and errors come out in millimetres through the
`unit` factor (1000 by default; pass unit=1 for inputs already in mm).

Array types: the error and alignment functions accept numpy arrays or torch tensors and return
the same kind as `pred` (torch inputs keep their dtype and device; the alignment itself is
computed in float64). The PCK functions work on numpy (tensors are converted).

Protocols (shared/DATASETS.md):
- mesh error / pose error: mean Euclidean distance between corresponding points (Sec. 5);
- 3D PCK / AUC (Zimmermann & Brox): per-joint errors of root-aligned, scale-matched joints
  (`align_root_scale`); PCK(t) = fraction of errors <= t; AUC = trapezoidal area under the PCK
  curve divided by the threshold range. "20-50 mm" is reported two ways: the 12 thresholds of
  linspace(0, 50, 20) from 21.05 mm on (Zimmermann's code, `THRESHOLDS_20_50_ZB`) and
  linspace(20, 50, 20) (later papers, `THRESHOLDS_20_50`);
- FreiHAND: orthogonal Procrustes with scale (`procrustes_align`) before PA-MPJPE / PA-MPVPE;
- 2D PCK (Zimmermann & Brox's eval2d): pixel errors of visible joints, 20 thresholds over
  0-30 px (`THRESHOLDS_2D_PX`).
The benchmarks' whole recipes (which alignment, which thresholds, which keys) are in
`handshape.evaluation.protocols`; this module holds the pieces.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from handshape.joints import SCALE_BONE
from handshape.safeio.atomic import atomic_write

__all__ = [
    "THRESHOLDS_0_50_100",
    "THRESHOLDS_2D_PX",
    "THRESHOLDS_20_50",
    "THRESHOLDS_20_50_ZB",
    "THRESHOLDS_ZIMMERMANN",
    "align_root_scale",
    "apply_similarity",
    "auc",
    "format_mm",
    "joint_epe",
    "mean_joint_error",
    "mean_vertex_error",
    "pck_curve",
    "pck_report",
    "plot_pck",
    "point_errors",
    "procrustes_align",
]

# Zimmermann & Brox's 20 thresholds over 0-50 mm (step 50/19 ~ 2.63 mm).
THRESHOLDS_ZIMMERMANN: np.ndarray = np.linspace(0.0, 50.0, 20)
# Their "20-50 mm" range: the 12 of those thresholds from 21.05 mm to 50 mm.
THRESHOLDS_20_50_ZB: np.ndarray = THRESHOLDS_ZIMMERMANN[THRESHOLDS_ZIMMERMANN >= 20.0]
# The later convention (e.g. MobRecon): 20 thresholds over 20-50 mm.
THRESHOLDS_20_50: np.ndarray = np.linspace(20.0, 50.0, 20)
# FreiHAND's official evaluation: 100 thresholds over 0-50 mm.
THRESHOLDS_0_50_100: np.ndarray = np.linspace(0.0, 50.0, 100)
# Zimmermann & Brox's 2D keypoint evaluation (eval2d.py): 20 thresholds over 0-30 pixels.
THRESHOLDS_2D_PX: np.ndarray = np.linspace(0.0, 30.0, 20)

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz


# --------------------------------------------------------------------------- array plumbing


def _to_torch64(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float64)
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def _like(result: torch.Tensor, ref: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Return `result` as the kind of `ref`: a numpy array, or a tensor of ref's dtype/device."""
    if isinstance(ref, torch.Tensor):
        dtype = ref.dtype if ref.is_floating_point() else result.dtype
        return result.to(device=ref.device, dtype=dtype)
    return result.cpu().numpy()


def _to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# --------------------------------------------------------------------------- errors


def point_errors(
    pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, unit: float = 1000.0
) -> np.ndarray | torch.Tensor:
    """Per-point Euclidean distances, (B, N, 3), (B, N, 3) -> (B, N), times `unit` (m -> mm)."""
    p, g = _to_torch64(pred), _to_torch64(gt)
    return _like(torch.linalg.vector_norm(p - g, dim=-1) * unit, pred)


def mean_vertex_error(
    pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, unit: float = 1000.0
) -> np.ndarray | torch.Tensor:
    """Mesh error (paper Sec. 5): mean Euclidean vertex distance per sample.

    Args:
        pred, gt: (B, N, 3) corresponding vertices (metres by default).
        unit: factor from the input unit to the output unit (1000: m -> mm).

    Returns:
        (B,) mean distance over the N vertices of each sample, in mm by default.
    """
    p, g = _to_torch64(pred), _to_torch64(gt)
    return _like((torch.linalg.vector_norm(p - g, dim=-1) * unit).mean(-1), pred)


def mean_joint_error(
    pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, unit: float = 1000.0
) -> np.ndarray | torch.Tensor:
    """Pose error (paper Sec. 5): mean joint distance per sample, (B, J, 3) x2 -> (B,) mm."""
    return mean_vertex_error(pred, gt, unit)


# --------------------------------------------------------------------------- PCK / AUC


def pck_curve(errors: np.ndarray | torch.Tensor, thresholds: np.ndarray) -> np.ndarray:
    """3D PCK: the fraction of errors <= each threshold.

    Args:
        errors: (M,) distances, or (B, J) per-sample per-joint distances (same unit as the
            thresholds, mm). NaN entries are not evaluated (e.g. invisible joints).
        thresholds: (T,) increasing thresholds.

    Returns:
        (T,) float64 PCK values in [0, 1]. For (B, J) input the PCK is computed per joint and
        averaged over the joints that have at least one evaluated error, as in Zimmermann &
        Brox's evaluation code (identical to the pooled fraction when nothing is NaN).
    """
    e = _to_numpy(errors).astype(np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    if e.ndim == 1:
        e = e[:, None]
    elif e.ndim != 2:
        raise ValueError(f"errors must be (M,) or (B, J), got shape {e.shape}")
    valid = ~np.isnan(e)  # (B, J)
    counts = valid.sum(0)  # (J,)
    keep = counts > 0
    if not keep.any():
        raise ValueError("pck_curve: no evaluated error")
    e, counts = e[:, keep], counts[keep]
    # Sorting each joint's errors (NaN last) and counting with searchsorted avoids a (T, B, J)
    # comparison array: FreiHAND's mesh AUC has 100 x 3960 x 778 of them.
    ranked = np.sort(e, axis=0)
    per_joint = np.stack(
        [np.searchsorted(ranked[:, j], t, side="right") for j in range(e.shape[1])], axis=1
    )  # (T, J): errors <= t, NaN never counted
    return (per_joint / counts).mean(1)


def joint_epe(errors: np.ndarray | torch.Tensor) -> tuple[float, float]:
    """Mean and median end-point error the way Zimmermann & Brox's (and FreiHAND's) EvalUtil
    reports them: per joint over its evaluated samples, then averaged over the joints.

    Args:
        errors: (B, J) per-sample per-joint distances; NaN = not evaluated (invisible).

    Returns:
        (mean of the per-joint means, mean of the per-joint medians). The first equals the
        pooled mean when nothing is NaN; the second is in general not the pooled median.
    """
    e = _to_numpy(errors).astype(np.float64)
    if e.ndim != 2:
        raise ValueError(f"errors must be (B, J), got shape {e.shape}")
    keep = (~np.isnan(e)).any(0)
    if not keep.any():
        raise ValueError("joint_epe: no evaluated error")
    e = e[:, keep]
    return float(np.nanmean(e, 0).mean()), float(np.nanmedian(e, 0).mean())


def auc(curve: np.ndarray, thresholds: np.ndarray) -> float:
    """Normalised area under a PCK curve: trapezoid over the thresholds / (t_max - t_min)."""
    curve = np.asarray(curve, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    if curve.shape != t.shape or t.ndim != 1 or t.size < 2:
        raise ValueError("auc needs 1-D curve and thresholds of the same length >= 2")
    return float(_trapezoid(curve, t) / (t[-1] - t[0]))


def pck_report(errors_mm: np.ndarray | torch.Tensor) -> dict[str, float]:
    """The 3D PCK numbers reported for RHD / STB, from per-joint errors in mm.

    Args:
        errors_mm: (M,) or (B, J) distances in mm (see `pck_curve`).

    Returns:
        dict with
        - "auc_20_50": AUC over linspace(20, 50, 20) (later papers, e.g. MobRecon);
        - "auc_20_50_zb": AUC over the 12 Zimmermann thresholds 21.05-50 mm (Zimmermann & Brox,
          the protocol Ge et al. follow);
        - "auc_0_50": AUC over Zimmermann's linspace(0, 50, 20);
        - "pck_20", "pck_30", "pck_40", "pck_50": PCK at those thresholds (mm);
        - "mean_mm", "median_mm": mean and median of the evaluated errors.
    """
    e = _to_numpy(errors_mm).astype(np.float64)
    out = {
        "auc_20_50": auc(pck_curve(e, THRESHOLDS_20_50), THRESHOLDS_20_50),
        "auc_20_50_zb": auc(pck_curve(e, THRESHOLDS_20_50_ZB), THRESHOLDS_20_50_ZB),
        "auc_0_50": auc(pck_curve(e, THRESHOLDS_ZIMMERMANN), THRESHOLDS_ZIMMERMANN),
    }
    at = np.array([20.0, 30.0, 40.0, 50.0])
    for t, v in zip(at, pck_curve(e, at), strict=True):
        out[f"pck_{int(t)}"] = float(v)
    flat = e[~np.isnan(e)]
    out["mean_mm"] = float(flat.mean())
    out["median_mm"] = float(np.median(flat))
    return out


# --------------------------------------------------------------------------- alignment


def procrustes_align(
    pred: np.ndarray | torch.Tensor,
    gt: np.ndarray | torch.Tensor,
    return_transform: bool = False,
    allow_reflection: bool = False,
):
    """Align each predicted point set to its ground truth by a similarity transform.

    Solves min_{s, R, t} sum_i ||s R p_i + t - g_i||^2 per sample (Umeyama 1991): with centred
    P, G and the SVD P^T G = U S V^T, R = V D U^T, s = trace(S D) / ||P||_F^2,
    t = mean(g) - s R mean(p), where D = diag(1, 1, sign det(V U^T)) keeps R a proper rotation.
    By default a reflection is never used, so a mirrored prediction is not "explained away".

    allow_reflection=True takes D = I, so R may be a reflection (det -1) when that fits better:
    this is FreiHAND's official evaluation (`align_w_scale` in lmb-freiburg/freihand eval.py
    uses scipy's `orthogonal_procrustes`, which does not constrain the determinant). The
    official code also adds 1e-8 to both point sets' norms; that changes aligned points by a
    relative ~1e-7 (far below 0.001 mm for a hand) and is not reproduced.

    Args:
        pred: (B, N, 3) predicted points.
        gt: (B, N, 3) ground-truth points.
        return_transform: also return (s (B,), R (B, 3, 3), t (B, 3)).
        allow_reflection: let R be an improper orthogonal matrix (FreiHAND's protocol).

    Returns:
        (B, N, 3) aligned prediction s R p + t (same kind as `pred`), and the transform if asked
        (`apply_similarity` applies it to other points, e.g. a mesh, of the same sample).
    """
    p, g = _to_torch64(pred), _to_torch64(gt)
    if p.shape != g.shape or p.ndim != 3 or p.shape[-1] != 3:
        raise ValueError(
            f"procrustes_align needs pred and gt of one shape (B, N, 3), got "
            f"{tuple(p.shape)} and {tuple(g.shape)}"
        )
    mu_p, mu_g = p.mean(-2, keepdim=True), g.mean(-2, keepdim=True)
    pc, gc = p - mu_p, g - mu_g
    h = pc.transpose(-1, -2) @ gc  # (B, 3, 3)
    u, sv, vh = torch.linalg.svd(h)
    v = vh.transpose(-1, -2)
    d = torch.ones_like(sv)
    if not allow_reflection:
        sign = torch.sign(torch.linalg.det(v @ u.transpose(-1, -2)))
        d[..., -1] = torch.where(sign == 0, torch.ones_like(sign), sign)
    r = v @ torch.diag_embed(d) @ u.transpose(-1, -2)
    var_p = pc.square().sum((-1, -2))
    s = (sv * d).sum(-1) / var_p.clamp_min(torch.finfo(torch.float64).tiny)
    t = mu_g[..., 0, :] - s[..., None] * (r @ mu_p[..., 0, :, None])[..., 0]
    aligned = _apply_similarity64(p, s, r, t)
    if return_transform:
        return _like(aligned, pred), (_like(s, pred), _like(r, pred), _like(t, pred))
    return _like(aligned, pred)


def _apply_similarity64(
    p: torch.Tensor, s: torch.Tensor, r: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    return s[..., None, None] * (p @ r.transpose(-1, -2)) + t[..., None, :]


def apply_similarity(
    points: np.ndarray | torch.Tensor,
    s: np.ndarray | torch.Tensor,
    r: np.ndarray | torch.Tensor,
    t: np.ndarray | torch.Tensor,
) -> np.ndarray | torch.Tensor:
    """Apply per-sample similarities s R x + t, e.g. one fitted on joints to the mesh.

    Args:
        points: (B, M, 3).
        s: (B,) scales; r: (B, 3, 3) rotations; t: (B, 3) translations (as returned by
            `procrustes_align(..., return_transform=True)`).

    Returns:
        (B, M, 3) transformed points, same kind as `points`.
    """
    out = _apply_similarity64(_to_torch64(points), _to_torch64(s), _to_torch64(r), _to_torch64(t))
    return _like(out, points)


def align_root_scale(
    pred: np.ndarray | torch.Tensor,
    gt: np.ndarray | torch.Tensor,
    root: int = 0,
    rescale: bool = True,
    scale_bone: tuple[int, int] = SCALE_BONE,
) -> np.ndarray | torch.Tensor:
    """Zimmermann & Brox's protocol: move the prediction's root onto the GT root, match scale.

    aligned = g_root + (p - p_root) * (|g_a - g_b| / |p_a - p_b|) with (a, b) the scale bone
    (the middle finger's MCP-PIP, joints 9 and 10). With rescale=False only the root is moved:
    use that when the prediction was already lifted with the ground-truth scale and root depth
    (the paper's test-time assumption), which is then exactly this protocol.

    Args:
        pred, gt: (B, J, 3) joints (or joints followed by other points: only the indices `root`
            and `scale_bone` must be joints).
        root: index of the root joint (the wrist).
        rescale: whether to rescale the root-relative prediction to the GT hand scale.
        scale_bone: the two joints whose distance is the hand scale.

    Returns:
        (B, J, 3) aligned prediction, same kind as `pred`.
    """
    p, g = _to_torch64(pred), _to_torch64(gt)
    rel = p - p[..., root : root + 1, :]
    if rescale:
        a, b = scale_bone
        s_g = torch.linalg.vector_norm(g[..., a, :] - g[..., b, :], dim=-1)
        s_p = torch.linalg.vector_norm(p[..., a, :] - p[..., b, :], dim=-1)
        rel = rel * (s_g / s_p.clamp_min(torch.finfo(torch.float64).tiny))[..., None, None]
    return _like(rel + g[..., root : root + 1, :], pred)


# --------------------------------------------------------------------------- plot


def plot_pck(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    out: str | os.PathLike[str],
    title: str | None = None,
) -> Path:
    """Plot PCK curves with their AUC in the legend, written atomically.

    Args:
        curves: name -> (thresholds (T,) in mm, PCK curve (T,)).
        out: output path; the format follows its suffix (e.g. .png, .pdf, .svg).
        title: optional axes title.

    Returns:
        The output path. The figure is drawn to a temporary file in the same directory and moved
        into place with os.replace, so a reader never sees a partial file.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(5, 4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, (thr, curve) in curves.items():
        thr, curve = np.asarray(thr, dtype=np.float64), np.asarray(curve, dtype=np.float64)
        ax.plot(thr, curve, marker="o", markersize=3, label=f"{name} (AUC={auc(curve, thr):.3f})")
    ax.set_xlabel("error threshold (mm)")
    ax.set_ylabel("3D PCK")
    ax.set_ylim(0.0, 1.0)
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(textwrap.fill(title, 55), fontsize=9)  # long study titles wrap
    if curves:
        ax.legend(loc="lower right")
    fig.tight_layout()

    fmt = out.suffix.lstrip(".").lower() or "png"
    atomic_write(out, lambda tmp: fig.savefig(tmp, format=fmt))
    return out


def format_mm(value: float | None, digits: int = 1) -> str:
    """A distance in mm for tables and logs; "-" where there is none (the mesh error of a
    pose-only network)."""
    return "-" if value is None else f"{value:.{digits}f}"
