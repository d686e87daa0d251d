"""Metrics: errors in mm, PCK / AUC by hand, the two 20-50 mm protocols, alignments, the plot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handshape.evaluation.metrics import (
    THRESHOLDS_2D_PX,
    THRESHOLDS_20_50,
    THRESHOLDS_20_50_ZB,
    THRESHOLDS_ZIMMERMANN,
    align_root_scale,
    apply_similarity,
    auc,
    joint_epe,
    mean_joint_error,
    mean_vertex_error,
    pck_curve,
    pck_report,
    plot_pck,
    point_errors,
    procrustes_align,
)
from handshape.geometry.rotations import axis_angle_to_matrix

# --------------------------------------------------------------------------- errors


def test_mean_errors_in_mm_for_numpy_and_torch() -> None:
    gt = np.zeros((2, 3, 3))
    pred = gt.copy()
    pred[0, 0] = [0.003, 0.004, 0.0]  # 5 mm
    pred[0, 1] = [0.0, 0.0, 0.010]  # 10 mm
    pred[1, 2] = [0.0, -0.006, 0.0]  # 6 mm
    err = mean_vertex_error(pred, gt)
    assert isinstance(err, np.ndarray)
    assert np.allclose(err, [5.0, 2.0])
    t = mean_joint_error(torch.tensor(pred, dtype=torch.float32), torch.tensor(gt))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    assert torch.allclose(t, torch.tensor([5.0, 2.0]))
    assert np.allclose(mean_vertex_error(pred * 1000, gt, unit=1.0), [5.0, 2.0])
    assert np.allclose(point_errors(pred, gt), [[5.0, 10.0, 0.0], [0.0, 0.0, 6.0]])


# --------------------------------------------------------------------------- PCK / AUC


def test_threshold_sets() -> None:
    assert THRESHOLDS_ZIMMERMANN.shape == (20,)
    assert THRESHOLDS_20_50_ZB.shape == (12,)
    assert THRESHOLDS_20_50_ZB[0] == pytest.approx(21.05, abs=5e-3)
    assert THRESHOLDS_20_50_ZB[-1] == 50.0
    assert np.allclose(THRESHOLDS_20_50, 20 + np.arange(20) * 30 / 19)


def test_pck_curve_known_errors() -> None:
    errors = np.array([1.0, 5.0, 10.0, 20.0, 40.0])
    thr = np.array([0.0, 5.0, 15.0, 20.0, 50.0])
    # "<=": an error equal to a threshold counts.
    assert np.allclose(pck_curve(errors, thr), [0.0, 0.4, 0.6, 0.8, 1.0])
    assert np.allclose(pck_curve(torch.tensor(errors), thr), [0.0, 0.4, 0.6, 0.8, 1.0])


def test_pck_curve_per_joint_average_with_missing_joints() -> None:
    # Joint 0 has errors (1, 100), joint 1 only (1) (the other is NaN = not evaluated).
    errors = np.array([[1.0, 1.0], [100.0, np.nan]])
    # At 10 mm: joint 0 -> 0.5, joint 1 -> 1.0; Zimmermann averages per joint -> 0.75
    # (the pooled fraction would be 2/3).
    assert np.allclose(pck_curve(errors, np.array([10.0])), [0.75])
    assert np.allclose(pck_curve(np.array([[1.0, 1.0], [100.0, 1.0]]), [10.0]), [0.75])
    with pytest.raises(ValueError):
        pck_curve(np.array([np.nan]), np.array([1.0]))


def test_auc_perfect_and_hand_computed() -> None:
    for thr in (THRESHOLDS_ZIMMERMANN, THRESHOLDS_20_50, THRESHOLDS_20_50_ZB):
        assert auc(pck_curve(np.zeros(10), thr), thr) == pytest.approx(1.0)
        assert auc(pck_curve(np.full(10, 60.0), thr), thr) == pytest.approx(0.0)
    # A linear curve 0 -> 1 over the range has area 1/2.
    assert auc(np.array([0.0, 0.5, 1.0]), np.array([10.0, 20.0, 30.0])) == pytest.approx(0.5)


def test_auc_constant_error_by_hand() -> None:
    # Constant 35 mm, linspace(20, 50, 20) (step 30/19): PCK = 0 up to t_9 = 34.21, 1 from
    # t_10 = 35.79. Area = half a step + 9 steps = 9.5 * 30/19 = 15 mm over 30 mm -> 0.5.
    e35 = np.full(21, 35.0)
    assert auc(pck_curve(e35, THRESHOLDS_20_50), THRESHOLDS_20_50) == pytest.approx(0.5)
    # Constant 30 mm: 0 up to t_6 = 29.47, 1 from t_7 = 31.05: (0.5 + 12) / 19 steps.
    e30 = np.full(21, 30.0)
    assert auc(pck_curve(e30, THRESHOLDS_20_50), THRESHOLDS_20_50) == pytest.approx(12.5 / 19)
    # Zimmermann's 12 thresholds 8..19 of linspace(0, 50, 20) (step 50/19), range 11 steps.
    # 30 mm: 0 up to t_11 = 28.95, 1 from t_12 = 31.58: (0.5 + 7) / 11.
    assert auc(pck_curve(e30, THRESHOLDS_20_50_ZB), THRESHOLDS_20_50_ZB) == pytest.approx(7.5 / 11)
    # 0-50 mm with 35 mm: 0 up to t_13 = 34.21, 1 from t_14 = 36.84: (0.5 + 5) / 19.
    rep = pck_report(e35)
    assert rep["auc_0_50"] == pytest.approx(5.5 / 19)
    assert rep["auc_20_50"] == pytest.approx(0.5)
    # 35 mm in Zimmermann's subset: (0.5 + 5) / 11 = 0.5 as well.
    assert rep["auc_20_50_zb"] == pytest.approx(0.5)
    assert rep["pck_20"] == 0.0 and rep["pck_30"] == 0.0
    assert rep["pck_40"] == 1.0 and rep["pck_50"] == 1.0
    assert rep["mean_mm"] == pytest.approx(35.0) and rep["median_mm"] == pytest.approx(35.0)


def test_pck_report_mixture() -> None:
    errors = np.array([[10.0, 25.0], [35.0, 45.0]])
    rep = pck_report(errors)
    assert rep["pck_20"] == pytest.approx(0.25)
    assert rep["pck_30"] == pytest.approx(0.5)
    assert rep["pck_40"] == pytest.approx(0.75)
    assert rep["pck_50"] == pytest.approx(1.0)
    assert set(rep) == {
        "auc_20_50", "auc_20_50_zb", "auc_0_50",
        "pck_20", "pck_30", "pck_40", "pck_50", "mean_mm", "median_mm",
    }  # fmt: skip


# --------------------------------------------------------------------------- alignment


def _random_similarity(b: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    r = axis_angle_to_matrix(torch.randn(b, 3, generator=g, dtype=torch.float64))
    s = 0.5 + 2.0 * torch.rand(b, generator=g, dtype=torch.float64)
    t = torch.randn(b, 3, generator=g, dtype=torch.float64)
    return s, r, t


def test_procrustes_recovers_a_random_similarity_exactly() -> None:
    b, n = 6, 21
    g = torch.Generator().manual_seed(3)
    pred = torch.randn(b, n, 3, generator=g, dtype=torch.float64)
    s, r, t = _random_similarity(b, 4)
    gt = s[:, None, None] * pred @ r.transpose(1, 2) + t[:, None]
    aligned, (s_hat, r_hat, t_hat) = procrustes_align(pred, gt, return_transform=True)
    assert (aligned - gt).abs().max() < 1e-10
    assert torch.allclose(s_hat, s, atol=1e-10)
    assert torch.allclose(r_hat, r, atol=1e-10)
    assert torch.allclose(t_hat, t, atol=1e-10)
    # numpy in, numpy out; float32 tensors keep their dtype.
    out_np = procrustes_align(pred.numpy(), gt.numpy())
    assert isinstance(out_np, np.ndarray) and np.abs(out_np - gt.numpy()).max() < 1e-10
    assert procrustes_align(pred.float(), gt.float()).dtype == torch.float32


def test_procrustes_never_reflects() -> None:
    g = torch.Generator().manual_seed(5)
    gt = torch.randn(4, 30, 3, generator=g, dtype=torch.float64)
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)  # a chirality flip
    aligned, (s, r, _) = procrustes_align(mirrored, gt, return_transform=True)
    assert torch.allclose(torch.linalg.det(r), torch.ones(4, dtype=torch.float64))
    assert (s > 0).all()
    # The mirror cannot be undone by a proper similarity; a reflection would make it exact.
    assert (aligned - gt).abs().max() > 0.1

    # Orientation of tetrahedra is preserved: aligned is a proper similarity of the input.
    def signed_volume(x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.det(x[:, 1:4] - x[:, :1])

    assert (torch.sign(signed_volume(aligned)) == torch.sign(signed_volume(mirrored))).all()
    # The optimum beats the identity alignment (the residual is never worse than doing nothing).
    assert ((aligned - gt).square().sum((1, 2)) <= (mirrored - gt).square().sum((1, 2))).all()


def test_align_root_scale() -> None:
    gt = np.zeros((1, 21, 3))
    gt[0, 10] = [0.0, 0.03, 0.0]  # GT scale 30 mm
    gt[0, 4] = [0.01, 0.02, 0.03]
    gt += [0.1, 0.2, 0.5]
    pred = np.zeros((1, 21, 3))
    pred[0, 10] = [0.0, 0.06, 0.0]  # predicted scale 60 mm: twice as large, elsewhere
    pred[0, 4] = [0.02, 0.04, 0.06]
    pred += [-1.0, 2.0, 3.0]
    out = align_root_scale(pred, gt)
    assert np.allclose(out, gt)
    out_t = align_root_scale(torch.tensor(pred), torch.tensor(gt), rescale=False)
    assert torch.allclose(out_t[0, 0], torch.tensor(gt[0, 0]))
    assert torch.allclose(
        out_t[0, 10] - out_t[0, 0], torch.tensor([0.0, 0.06, 0.0], dtype=out_t.dtype)
    )


# --------------------------------------------------------------------------- plot


def test_plot_pck_writes_a_png_atomically(tmp_path) -> None:
    curve = pck_curve(np.linspace(0, 60, 50), THRESHOLDS_20_50)
    out = plot_pck(
        {"ours": (THRESHOLDS_20_50, curve), "perfect": (THRESHOLDS_20_50, np.ones(20))},
        tmp_path / "figs" / "pck.png",
    )
    assert out == tmp_path / "figs" / "pck.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["pck.png"]
    # Overwriting leaves no temporary file either.
    plot_pck({"ours": (THRESHOLDS_20_50, curve)}, out)
    assert [p.name for p in out.parent.iterdir()] == ["pck.png"]


def test_procrustes_with_reflection_undoes_a_mirror_as_freihand_does() -> None:
    # FreiHAND's official alignment (scipy's orthogonal_procrustes) may reflect: a mirrored,
    # scaled, rotated and moved copy is then aligned exactly, with det R = -1.
    g = torch.Generator().manual_seed(6)
    gt = torch.randn(3, 21, 3, generator=g, dtype=torch.float64)
    s, r, t = _random_similarity(3, 7)
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    pred = s[:, None, None] * (gt @ mirror) @ r.transpose(1, 2) + t[:, None]
    aligned, (_, r_hat, _) = procrustes_align(
        pred, gt, return_transform=True, allow_reflection=True
    )
    assert (aligned - gt).abs().max() < 1e-10
    assert torch.allclose(torch.linalg.det(r_hat), -torch.ones(3, dtype=torch.float64))
    # Without a mirror both variants agree.
    proper = s[:, None, None] * gt @ r.transpose(1, 2) + t[:, None]
    assert torch.allclose(
        procrustes_align(proper, gt, allow_reflection=True), procrustes_align(proper, gt)
    )
    with pytest.raises(ValueError, match="one shape"):
        procrustes_align(torch.zeros(2, 21, 3), torch.zeros(2, 20, 3))


def test_procrustes_by_hand_on_a_planar_cross() -> None:
    # P = (+-1, 0, 0), (0, +-3, 0); G = (+-1, 0, 0), (0, +-1, 0). By symmetry R = I, t = 0 and
    # s = <P, G> / |P|^2 = (1 + 1 + 3 + 3) / (1 + 1 + 9 + 9) = 0.4: the x points land at
    # +-0.4 (error 0.6), the y points at +-1.2 (error 0.2).
    pred = np.array([[[1.0, 0, 0], [-1, 0, 0], [0, 3, 0], [0, -3, 0]]])
    gt = np.array([[[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]]])
    for reflect in (False, True):
        aligned, (s, _, t) = procrustes_align(
            pred, gt, return_transform=True, allow_reflection=reflect
        )
        assert s == pytest.approx([0.4]) and np.allclose(t, 0.0)
        assert np.allclose(point_errors(aligned, gt, unit=1.0), [[0.6, 0.6, 0.2, 0.2]])


def test_apply_similarity_carries_the_joint_fit_to_other_points() -> None:
    g = torch.Generator().manual_seed(8)
    joints = torch.randn(2, 21, 3, generator=g, dtype=torch.float64)
    mesh = torch.randn(2, 50, 3, generator=g, dtype=torch.float64)
    s, r, t = _random_similarity(2, 9)

    def move(x: torch.Tensor) -> torch.Tensor:
        return s[:, None, None] * x @ r.transpose(1, 2) + t[:, None]

    # Fit on the joints (pred = joints, gt = moved joints), then move the mesh the same way.
    _, fit = procrustes_align(joints, move(joints), return_transform=True)
    assert torch.allclose(apply_similarity(mesh, *fit), move(mesh), atol=1e-10)
    out_np = apply_similarity(mesh.numpy(), *(x.numpy() for x in fit))
    assert isinstance(out_np, np.ndarray) and np.allclose(out_np, move(mesh).numpy())


def test_joint_epe_averages_per_joint_like_evalutil() -> None:
    # Joint 0: errors 1, 2, 9 (mean 4, median 2); joint 1: 4, -, 6 (mean 5, median 5).
    errors = np.array([[1.0, 4.0], [2.0, np.nan], [9.0, 6.0]])
    mean, median = joint_epe(errors)
    assert mean == pytest.approx(4.5) and median == pytest.approx(3.5)
    # The pooled statistics differ: mean 22 / 5, median 4.
    assert pck_report(errors)["mean_mm"] == pytest.approx(4.4)
    assert pck_report(errors)["median_mm"] == pytest.approx(4.0)
    # A joint never evaluated is left out, not counted as zero.
    assert joint_epe(np.array([[3.0, np.nan]])) == (3.0, 3.0)
    with pytest.raises(ValueError):
        joint_epe(np.full((2, 2), np.nan))


def test_2d_thresholds_are_zimmermanns_eval2d() -> None:
    assert THRESHOLDS_2D_PX.shape == (20,)
    assert THRESHOLDS_2D_PX[0] == 0.0 and THRESHOLDS_2D_PX[-1] == 30.0


def test_pck_curve_matches_a_naive_count_on_random_errors_with_gaps() -> None:
    rng = np.random.default_rng(13)
    errors = np.round(np.abs(rng.normal(scale=15.0, size=(60, 7))), 1)  # ties on thresholds
    errors[rng.random(errors.shape) < 0.2] = np.nan
    thr = np.arange(0.0, 50.0, 0.5)
    naive = np.array([
        np.mean([np.mean(col[~np.isnan(col)] <= t) for col in errors.T]) for t in thr
    ])  # fmt: skip
    assert np.allclose(pck_curve(errors, thr), naive)
