"""The benchmarks' protocols by hand: FreiHAND (PA errors, F-scores, AUC), RHD/STB 3D, 2D PCK."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handshape.evaluation.metrics import procrustes_align
from handshape.evaluation.protocols import (
    f_score,
    freihand_report,
    hand3d_report,
    nearest_distances,
    pck_2d_report,
)
from handshape.geometry.rotations import axis_angle_to_matrix

# --------------------------------------------------------------------------- F-score


def test_nearest_distances() -> None:
    src = np.array([[0.0, 0, 0], [10, 0, 0]])
    dst = np.array([[0.0, 0, 3], [30, 0, 0], [10, 0, 6]])
    assert np.allclose(nearest_distances(src, dst), [3.0, 6.0])
    assert np.allclose(nearest_distances(dst, src), [3.0, 20.0, 6.0])


def test_f_score_of_a_known_point_pair_set() -> None:
    # In mm (unit=1). gt -> nearest pred: 3, 6; pred -> nearest gt: 3, 20, 6.
    gt = np.array([[[0.0, 0, 0], [10, 0, 0]]])
    pred = np.array([[[0.0, 0, 3], [30, 0, 0], [10, 0, 6]]])
    f = f_score(pred, gt, [1.0, 5.0, 6.0, 15.0, 25.0], unit=1.0)
    # 1 mm: nothing matches -> 0. 5 mm: P = 1/2, R = 1/3 -> F = 2PR/(P+R) = (1/3)/(5/6) = 0.4.
    # 6 mm: "<" is strict, so the 6 mm pairs do not count yet -> 0.4 again.
    # 15 mm: P = 1, R = 2/3 -> (4/3)/(5/3) = 0.8. 25 mm: everything -> 1.
    assert np.allclose(f, [[0.0, 0.4, 0.4, 0.8, 1.0]])
    # Symmetric in its arguments (P and R swap) and in metres with the default unit.
    assert np.allclose(f_score(gt, pred, [5.0, 15.0], unit=1.0), [[0.4, 0.8]])
    assert np.allclose(f_score(torch.tensor(pred) / 1000, gt / 1000, [5.0, 15.0]), [[0.4, 0.8]])
    with pytest.raises(ValueError):
        f_score(pred[0], gt[0], [5.0])
    with pytest.raises(ValueError, match="B, N, 3"):
        f_score(pred, gt[..., :2], [5.0])


# --------------------------------------------------------------------------- FreiHAND


def _cross_joints() -> tuple[np.ndarray, np.ndarray]:
    """21 joints: a planar cross (x: +-10 mm, y: +-10 mm in gt, +-30 mm in pred) and 17 at 0.

    Procrustes with scale (hand-computed, see test_metrics): R = I, t = 0, s = 0.4; aligned
    errors 6 mm on the two x joints, 2 mm on the two y joints, exactly 0 elsewhere.
    """
    gt = np.zeros((1, 21, 3))
    pred = np.zeros((1, 21, 3))
    gt[0, 1:5] = [[0.01, 0, 0], [-0.01, 0, 0], [0, 0.01, 0], [0, -0.01, 0]]
    pred[0, 1:5] = [[0.01, 0, 0], [-0.01, 0, 0], [0, 0.03, 0], [0, -0.03, 0]]
    return pred, gt


def test_freihand_pa_mpjpe_and_auc_by_hand() -> None:
    pred, gt = _cross_joints()
    rep = freihand_report(pred, gt)
    assert rep["pa_mpjpe_mm"] == pytest.approx((2 * 6.0 + 2 * 2.0) / 21)
    # 100 thresholds t_k = 50 k / 99. A joint with error e has PCK 0 below the first t_k >= e
    # and 1 from it on: area (99 - k + 1/2) steps of 99. 6 mm -> k = 12; 2 mm -> k = 4; the 17
    # exact joints count from t_0 = 0 ("<=") -> 1.
    expected = (17 + 2 * (87.5 / 99) + 2 * (95.5 / 99)) / 21
    assert rep["auc_0_50_pa"] == pytest.approx(expected)
    # Unaligned: the two y joints are 20 mm off.
    assert rep["mpjpe_mm"] == pytest.approx(2 * 20.0 / 21)
    assert set(rep) == {"pa_mpjpe_mm", "auc_0_50_pa", "mpjpe_mm"}


def _random_hand(seed: int, batch: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    depth = np.array([0.0, 0.0, 0.6])  # in front of the camera
    joints = rng.normal(scale=0.04, size=(batch, 21, 3)) + depth
    verts = rng.normal(scale=0.04, size=(batch, 778, 3)) + depth
    return joints, verts


def _similarity(points: np.ndarray, seed: int, mirror: bool = False) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    r = axis_angle_to_matrix(torch.randn(points.shape[0], 3, generator=g, dtype=torch.float64))
    r = r.numpy()
    s = 0.7 + 0.6 * np.arange(points.shape[0])[:, None, None] / points.shape[0]
    p = points * [-1.0, 1.0, 1.0] if mirror else points
    return s * p @ r.transpose(0, 2, 1) + [0.05, -0.02, 0.3]


def test_freihand_similarity_copies_score_perfectly_reflections_included() -> None:
    joints, verts = _random_hand(0)
    # The official alignment allows reflections: a mirrored, scaled, rotated, moved copy of
    # each sample is aligned exactly (so a left/right mix-up is not penalised by PA numbers).
    pj = _similarity(joints, 1, mirror=True)
    pv = _similarity(verts, 2)
    rep = freihand_report(pj, joints, pv, verts)
    assert rep["pa_mpjpe_mm"] < 1e-9 and rep["pa_mpvpe_mm"] < 1e-9
    assert rep["f_5mm"] == 1.0 and rep["f_15mm"] == 1.0
    # Not aligned, the copies are tens of centimetres away (a few points of the two random
    # clouds still happen to lie within 15 mm of each other).
    assert rep["mpjpe_mm"] > 100 and rep["mpvpe_mm"] > 100
    assert rep["f_5mm_unaligned"] < 0.01 and rep["f_15mm_unaligned"] < 0.01
    # Errors exactly 0 would give AUC 1; float residue ~1e-13 mm misses the 0 mm threshold.
    assert rep["auc_0_50_pa"] == pytest.approx(1.0, abs=0.5 / 99 + 1e-12)


def test_freihand_mesh_of_another_topology_moves_with_the_joints() -> None:
    joints, verts = _random_hand(3, batch=2)
    # A prediction with 1556 vertices (every ground-truth vertex twice): no vertex-to-vertex
    # error, but moved by the joints' similarity it covers the ground truth exactly: F = 1.
    pj = _similarity(joints, 4)
    pv = _similarity(np.concatenate([verts, verts], axis=1), 4)
    rep = freihand_report(pj, joints, pv, verts)
    assert "pa_mpvpe_mm" not in rep and "mpvpe_mm" not in rep
    assert rep["f_5mm"] == 1.0 and rep["f_15mm"] == 1.0
    assert rep["f_5mm_unaligned"] == 0.0


def test_freihand_f_score_of_a_noisy_mesh_is_between_0_and_1_and_rises_with_t() -> None:
    joints, verts = _random_hand(5, batch=2)
    noisy = verts + np.random.default_rng(6).normal(scale=0.004, size=verts.shape)
    rep = freihand_report(joints, joints, noisy, verts)
    assert 0.0 < rep["f_5mm"] < rep["f_15mm"] <= 1.0
    assert rep["pa_mpvpe_mm"] < rep["mpvpe_mm"] + 1e-9  # alignment never hurts


def test_freihand_refuses_bad_shapes() -> None:
    joints, verts = _random_hand(7, batch=2)
    with pytest.raises(ValueError, match="21, 3"):
        freihand_report(joints[:, :20], joints[:, :20])
    with pytest.raises(ValueError, match="778"):
        freihand_report(joints, joints, verts, verts[:, :700])


# --------------------------------------------------------------------------- RHD / STB 3D


def test_hand3d_pck_and_auc_in_both_conventions_by_hand() -> None:
    rng = np.random.default_rng(0)
    gt = rng.normal(scale=0.05, size=(1, 21, 3))
    pred = gt + np.array([0.3, 0.1, -0.2])  # another root: the protocol puts the roots together
    pred[0, 5] += [0.025, 0.0, 0.0]  # 25 mm
    pred[0, 8] += [0.0, 0.0, -0.038]  # 38 mm
    rep = hand3d_report(pred, gt)
    assert rep["pck_20"] == pytest.approx(19 / 21)
    assert rep["pck_30"] == pytest.approx(20 / 21)
    assert rep["pck_40"] == pytest.approx(1.0)
    # linspace(20, 50, 20), step 30/19: 25 mm first counts at t_4 (26.3) -> 15.5 of 19 steps;
    # 38 mm at t_12 (38.9) -> 7.5 of 19 steps; the other 19 joints -> 1.
    assert rep["auc_20_50"] == pytest.approx((19 + (15.5 + 7.5) / 19) / 21)
    # Zimmermann's t_k = 50 k / 19, k = 8..19 (11 steps): 25 mm -> k = 10 -> 9.5 / 11;
    # 38 mm -> k = 15 -> 4.5 / 11.
    assert rep["auc_20_50_zb"] == pytest.approx((19 + (9.5 + 4.5) / 11) / 21)
    assert rep["mean_mm"] == pytest.approx(63.0 / 21)
    assert rep["epe_mean_mm"] == pytest.approx(63.0 / 21)


def test_hand3d_rescale_and_visibility() -> None:
    rng = np.random.default_rng(1)
    gt = rng.normal(scale=0.05, size=(2, 21, 3))
    # Twice the size elsewhere: exact only once rescaled to the gt hand scale |J9 - J10|.
    pred = 2.0 * gt + 1.0
    assert hand3d_report(pred, gt, rescale=True)["mean_mm"] < 1e-9
    assert hand3d_report(pred, gt)["mean_mm"] > 10.0
    # An invisible joint's error does not count, however large.
    far = gt.copy()
    far[0, 7] += 1.0
    visible = np.ones((2, 21), dtype=bool)
    visible[0, 7] = False
    rep = hand3d_report(far, gt, visible=visible)
    assert rep["mean_mm"] < 1e-9 and rep["auc_20_50"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="visible"):
        hand3d_report(far, gt, visible=visible[:1])


# --------------------------------------------------------------------------- 2D


def test_2d_pck_in_pixels_by_hand() -> None:
    gt = np.array([[[100.0, 100.0], [50.0, 60.0], [10.0, 20.0], [0.0, 0.0]]])
    pred = gt + np.array([[[0.0, 0.0], [3.0, 0.0], [0.0, -12.0], [100.0, 0.0]]])
    visible = np.array([[True, True, True, False]])  # the 100 px joint is not visible
    rep = pck_2d_report(pred, gt, visible)
    # linspace(0, 30, 20), step 30/19: 0 px -> 1; 3 px first counts at t_2 -> 17.5 / 19;
    # 12 px at t_8 (12.6) -> 11.5 / 19.
    assert rep["auc_0_30px"] == pytest.approx((1 + (17.5 + 11.5) / 19) / 3)
    assert rep["pck_5px"] == pytest.approx(2 / 3) and rep["pck_15px"] == pytest.approx(1.0)
    assert rep["epe_mean_px"] == pytest.approx(5.0) and rep["epe_median_px"] == pytest.approx(5.0)
    # Counted, the invisible joint would pull the numbers down.
    assert pck_2d_report(pred, gt)["pck_30px"] == pytest.approx(0.75)


# --------------------------------------------------------------------------- references


def test_alignment_matches_a_naive_scipy_reference_of_the_official_computation() -> None:
    # FreiHAND's eval.py, restated: centre both sets, divide each by its Frobenius norm,
    # (R, s) = scipy.linalg.orthogonal_procrustes(gt, pred), aligned = pred R^T s |gt| + mean(gt).
    from scipy.linalg import orthogonal_procrustes

    rng = np.random.default_rng(11)
    gt = rng.normal(size=(6, 21, 3))
    pred = gt + rng.normal(scale=0.5, size=gt.shape)
    pred[3:] *= np.array([-1.0, 1.0, 1.0])  # half of them mirrored
    ours = procrustes_align(pred, gt, allow_reflection=True)
    for b in range(gt.shape[0]):
        g, p = gt[b] - gt[b].mean(0), pred[b] - pred[b].mean(0)
        g_norm, p_norm = np.linalg.norm(g), np.linalg.norm(p)
        r, s = orthogonal_procrustes(g / g_norm, p / p_norm)
        reference = (p / p_norm) @ r.T * s * g_norm + gt[b].mean(0)
        assert np.allclose(ours[b], reference, atol=1e-12)


def test_f_score_matches_a_brute_force_loop() -> None:
    rng = np.random.default_rng(12)
    gt = rng.normal(scale=10.0, size=(3, 40, 3))
    pred = gt[:, :30] + rng.normal(scale=4.0, size=(3, 30, 3))
    thresholds = [2.0, 5.0, 15.0]
    ours = f_score(pred, gt, thresholds, unit=1.0)
    for b in range(3):
        d = np.linalg.norm(gt[b][:, None] - pred[b][None], axis=-1)  # (40, 30)
        for i, t in enumerate(thresholds):
            p, r = (d.min(1) < t).mean(), (d.min(0) < t).mean()
            assert ours[b, i] == pytest.approx(0.0 if p + r == 0 else 2 * p * r / (p + r))
