"""Losses: hand-computed small cases, the sum-per-sample / mean-over-batch convention, gradients."""

from __future__ import annotations

import pytest
import torch

from handshape.geometry.mesh_ops import mesh_edges, uniform_laplacian
from handshape.lit.losses import (
    edge_loss,
    heatmap_loss,
    laplacian_loss,
    normal_loss,
    pose_loss,
    vertex_loss,
)

F64 = torch.float64

# One triangle in the z = 0 plane, counter-clockwise seen from +z: its normal is +z.
TRI_GT = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=F64)
TRI_FACES = torch.tensor([[0, 1, 2]])
# Two triangles sharing the edge (1, 2).
QUAD_FACES = torch.tensor([[0, 1, 2], [2, 1, 3]])


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


# --------------------------------------------------------------------------- heat-maps


def test_heatmap_loss_sums_pixels_and_joints_and_stacks() -> None:
    target = torch.zeros(2, 2, 3, 3, dtype=F64)
    pred = torch.zeros_like(target)
    pred[0, 0, 1, 1] = 2.0  # sample 0: 4
    pred[0, 1, 0, 2] = -1.0  # sample 0: + 1
    target[1, 1, 2, 2] = 1.0  # sample 1: 1
    # Per sample sums 5 and 1, batch mean 3.
    assert heatmap_loss(pred, target).item() == pytest.approx(3.0)
    # Two stacks: the second is perfect, a third repeats the first: 3 + 0 + 3.
    assert heatmap_loss([pred, target, pred], target).item() == pytest.approx(6.0)
    assert heatmap_loss((pred,), target).item() == pytest.approx(3.0)
    with pytest.raises(ValueError):
        heatmap_loss([], target)


def test_heatmap_loss_gradcheck() -> None:
    target = _rand(2, 3, 4, 4)
    a = _rand(2, 3, 4, 4, seed=1).requires_grad_()
    b = _rand(2, 3, 4, 4, seed=2).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: heatmap_loss([x, y], target), (a, b))


# --------------------------------------------------------------------------- vertices, joints


def test_vertex_loss_known_values() -> None:
    gt3 = torch.zeros(2, 2, 3, dtype=F64)
    p3 = gt3.clone()
    p3[0, 0] = torch.tensor([1.0, 2.0, 2.0])  # 9
    p3[1, 1] = torch.tensor([0.0, 0.0, 1.0])  # 1
    gt2 = torch.zeros(2, 2, 2, dtype=F64)
    p2 = gt2.clone()
    p2[0, 1] = torch.tensor([3.0, 4.0])  # 25
    # Samples: 9 + 25 = 34 and 1 -> mean 17.5; 3D only: (9 + 1) / 2 = 5.
    assert vertex_loss(p3, gt3, p2, gt2).item() == pytest.approx(17.5)
    assert vertex_loss(p3, gt3).item() == pytest.approx(5.0)
    with pytest.raises(ValueError):
        vertex_loss(p3, gt3, p2, None)


def test_pose_loss_known_value_and_batch_mean() -> None:
    gt = torch.zeros(3, 21, 3, dtype=F64)
    pred = gt.clone()
    pred[0, 4] = torch.tensor([0.0, 3.0, 4.0])  # 25
    pred[0, 20] = torch.tensor([1.0, 0.0, 0.0])  # 1
    pred[2, :, 0] = 1.0  # 21
    assert pose_loss(pred, gt).item() == pytest.approx((26.0 + 0.0 + 21.0) / 3)


def test_vertex_and_pose_gradcheck() -> None:
    g3, g2 = _rand(2, 5, 3), _rand(2, 5, 2, seed=1)
    p3 = _rand(2, 5, 3, seed=2).requires_grad_()
    p2 = _rand(2, 5, 2, seed=3).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: vertex_loss(a, g3, b, g2), (p3, p2))
    assert torch.autograd.gradcheck(lambda a: pose_loss(a, g3), (p3,))


# --------------------------------------------------------------------------- normals


def test_normal_loss_single_triangle_by_hand() -> None:
    # GT normal n = (0, 0, 1): the loss sums the squared z-differences along the three edges.
    pred = torch.tensor([[[0.0, 0.0, 0.5], [1.0, 0.0, 0.0], [0.0, 1.0, -1.0]]], dtype=F64)
    # (v0 - v1).z = 0.5, (v1 - v2).z = 1, (v2 - v0).z = -1.5 -> 0.25 + 1 + 2.25 = 3.5.
    assert normal_loss(pred, TRI_GT, TRI_FACES).item() == pytest.approx(3.5)
    # x/y displacements inside the GT plane cost nothing; a second, perfect sample halves it.
    moved = pred + torch.tensor([0.3, -2.0, 0.0], dtype=F64)
    batch = torch.cat([moved, TRI_GT])
    assert normal_loss(batch, torch.cat([TRI_GT, TRI_GT]), TRI_FACES).item() == pytest.approx(1.75)
    # The GT normal is scale-free: scaling the GT triangle changes nothing.
    assert normal_loss(pred, TRI_GT * 7.0, TRI_FACES).item() == pytest.approx(3.5)


def test_normal_loss_counts_a_shared_edge_once_per_face() -> None:
    gt = torch.tensor([[[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]], dtype=F64)
    pred = gt.clone()
    pred[0, 1, 2] = 1.0  # lift vertex 1 (on the shared edge) by 1
    # Face 0 edges touching vertex 1: (0,1), (1,2) -> 2; face 1: (2,1), (1,3) -> 2. Total 4.
    assert normal_loss(pred, gt, QUAD_FACES).item() == pytest.approx(4.0)
    assert normal_loss(pred, gt, QUAD_FACES.numpy()).item() == pytest.approx(4.0)


def test_normal_loss_gradcheck() -> None:
    gt = _rand(2, 4, 3)
    pred = _rand(2, 4, 3, seed=1).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: normal_loss(p, gt, QUAD_FACES), (pred,))


# --------------------------------------------------------------------------- edges


def test_edge_loss_single_triangle_by_hand() -> None:
    pred = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 1.0]]], dtype=F64)
    # GT squared lengths (0,1): 1, (0,2): 1, (1,2): 2. Pred: 4, 2, |(2,-1,-1)|^2 = 6.
    # (1 - 4)^2 + (1 - 2)^2 + (2 - 6)^2 = 9 + 1 + 16 = 26.
    edges = mesh_edges(TRI_FACES)
    assert edge_loss(pred, TRI_GT, edges).item() == pytest.approx(26.0)
    # Rigid motions of the prediction do not change edge lengths.
    rot = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=F64)
    moved = pred @ rot.T + 5.0
    two = torch.cat([moved, TRI_GT])
    assert edge_loss(two, torch.cat([TRI_GT, TRI_GT]), edges).item() == pytest.approx(13.0)


def test_edge_loss_gradcheck() -> None:
    gt = _rand(2, 4, 3)
    pred = _rand(2, 4, 3, seed=1).requires_grad_()
    edges = mesh_edges(QUAD_FACES)
    assert torch.autograd.gradcheck(lambda p: edge_loss(p, gt, edges), (pred,))


# --------------------------------------------------------------------------- Laplacian


def test_laplacian_loss_by_hand() -> None:
    gt = torch.zeros(1, 4, 3, dtype=F64)
    pred = gt.clone()
    pred[0, 0, 0] = -3.0  # d = gt - pred: d_0 = (3, 0, 0), all others 0
    lap = uniform_laplacian(QUAD_FACES, 4)
    # Rows: 0 -> d_0 - mean(d_1, d_2) = 3; 1 -> -(d_0 + d_2 + d_3) / 3 = -1; 2 -> -1; 3 -> 0.
    assert laplacian_loss(pred, gt, lap).item() == pytest.approx(9.0 + 1.0 + 1.0)
    # Dense and sparse agree; the sign of d does not matter; batch mean.
    assert laplacian_loss(gt, pred, lap.to_dense()).item() == pytest.approx(11.0)
    two = torch.cat([pred, gt])
    assert laplacian_loss(two, torch.cat([gt, gt]), lap).item() == pytest.approx(5.5)


def test_laplacian_loss_ignores_translation_and_matches_a_naive_loop() -> None:
    gt = _rand(3, 4, 3)
    shift = _rand(3, 1, 3, seed=1)
    lap = uniform_laplacian(QUAD_FACES, 4)
    assert laplacian_loss(gt + shift, gt, lap).item() == pytest.approx(0.0, abs=1e-25)
    # A float32 matrix is cast to the data's dtype inside (rounded coefficients: ~1e-15).
    lap32 = uniform_laplacian(QUAD_FACES, 4, dtype=torch.float32)
    assert laplacian_loss(gt + shift, gt, lap32).item() == pytest.approx(0.0, abs=1e-12)
    pred = _rand(3, 4, 3, seed=2)
    nbrs = {0: [1, 2], 1: [0, 2, 3], 2: [0, 1, 3], 3: [1, 2]}
    total = 0.0
    for b in range(3):
        d = gt[b] - pred[b]
        for i, ks in nbrs.items():
            total += float(((d[i] - d[ks].mean(0)) ** 2).sum())
    assert laplacian_loss(pred, gt, lap).item() == pytest.approx(total / 3, rel=1e-12)


def test_laplacian_loss_gradcheck() -> None:
    gt = _rand(2, 4, 3)
    pred = _rand(2, 4, 3, seed=1).requires_grad_()
    lap = uniform_laplacian(QUAD_FACES, 4)
    assert torch.autograd.gradcheck(lambda p: laplacian_loss(p, gt, lap), (pred,))


# --------------------------------------------------------------------------- depth


def test_rendered_depth_loss_hand_computed() -> None:
    from handshape.lit.losses import rendered_depth_loss

    nan = float("nan")
    rendered = torch.tensor([[[1.0, 3.0, 0.5]], [[0.0, 0.0, 0.0]], [[1.0, 1.0, 1.0]]], dtype=F64)
    coverage = torch.tensor([[[1.0, 1.0, 0.25]], [[0.0, 0.0, 0.0]], [[1.0, 1.0, 1.0]]], dtype=F64)
    reference = torch.tensor([[[1.5, 1.0, 2.0]], [[4.0, nan, nan]], [[9.0, 9.0, 9.0]]], dtype=F64)
    mask = torch.tensor([[[True, True, True]], [[True, False, False]], [[False] * 3]])
    rendered.requires_grad_()
    coverage.requires_grad_()
    loss = rendered_depth_loss(rendered, coverage, reference, mask, beta=1.0, miss=2.0)
    # Sample 0: 0.5 * 0.5^2 = 0.125; 2 - 0.5 = 1.5; a quarter of smoothL1(1.5) = 1.0 plus three
    # quarters of the miss smoothL1(2) = 1.5. Sample 1: one missed hand pixel (NaN references
    # outside the hand are never read). Sample 2: no hand pixel.
    expected = [(0.125 + 1.5 + 0.25 * 1.0 + 0.75 * 1.5) / 3, 1.5, 0.0]
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=F64))
    loss.sum().backward()
    assert torch.isfinite(rendered.grad).all() and torch.isfinite(coverage.grad).all()
    # More coverage of a hand pixel whose edge depth is within `miss` lowers the loss.
    assert coverage.grad[0, 0, 2].item() == pytest.approx((1.0 - 1.5) / 3)
    assert rendered.grad[2].abs().sum() == 0 and coverage.grad[2].abs().sum() == 0
    with pytest.raises(ValueError, match="one shape"):
        rendered_depth_loss(rendered, coverage[:, :, :2], reference, mask)


def test_rendered_depth_loss_gradcheck() -> None:
    from handshape.lit.losses import rendered_depth_loss

    reference = _rand(2, 3, 3)
    rendered = (_rand(2, 3, 3, seed=1) * 2).requires_grad_()
    coverage = _rand(2, 3, 3, seed=3).clamp(0, 1).requires_grad_()
    mask = _rand(2, 3, 3, seed=2) > 0
    assert torch.autograd.gradcheck(
        lambda r, c: rendered_depth_loss(r, c, reference, mask, beta=0.5, miss=1.0),
        (rendered, coverage),
    )


def test_labelled_pose_loss_averages_over_the_labelled_samples_only() -> None:
    from handshape.lit.losses import labelled_pose_loss

    pred = torch.zeros(3, 2, 3, dtype=F64, requires_grad=True)
    gt = torch.zeros(3, 2, 3, dtype=F64)
    gt[0, 0] = torch.tensor([1.0, 2.0, 2.0])  # 9
    gt[1] = float("nan")  # unlabelled: never read
    gt[2, 1, 2] = 1.0  # 1
    labelled = torch.tensor([True, False, True])
    loss = labelled_pose_loss(pred, gt, labelled)
    assert loss.item() == pytest.approx((9 + 1) / 2)
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    assert torch.all(pred.grad[1] == 0)
    assert labelled_pose_loss(pred, gt, torch.zeros(3, dtype=torch.bool)).item() == 0.0
