"""The differentiable depth rasteriser: what it draws (against pyrender and DEODR), its gradients
(finite differences, the silhouette band), a toy fit, batching, dtypes, devices and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handshape.handmodel.model import HandModel
from handshape.lit.losses import rendered_depth_loss
from handshape.render.depth_raster import DepthRenderer, mesh_topology, render_depth

pytestmark = pytest.mark.usefixtures("single_thread")

DISTANCE = 0.45  # metres from the camera to the hand's centre
FIELD = 0.22  # metres of the hand's plane across the crop


@pytest.fixture(scope="module")
def hand() -> HandModel:
    return HandModel.default().double()


def posed_hand(
    hand: HandModel, gesture: str, seed: int, offset: tuple[float, float, float] = (0.01, 0.0, 0.0)
) -> torch.Tensor:
    """(N, 3) float64 vertices of a random hand in the camera frame, centred near the axis."""
    gen = torch.Generator().manual_seed(seed)
    shape = torch.randn(1, hand.num_shapes, generator=gen, dtype=torch.float64)
    v = hand(shape=shape, pose=hand.gesture(gesture)[None].double()).vertices[0].detach()
    return v - v.mean(0) + torch.tensor([offset[0], offset[1], DISTANCE + offset[2]])


def crop_intrinsics(size: int) -> torch.Tensor:
    """(3, 3) float64 K of a size x size crop: fractional, unequal centre and focal lengths, so
    a half-pixel or axis mix-up anywhere shows."""
    f = size / FIELD * DISTANCE
    return torch.tensor(
        [[f, 0.0, size / 2 - 0.3], [0.0, 1.02 * f, size / 2 + 0.2], [0.0, 0.0, 1.0]],
        dtype=torch.float64,
    )


@pytest.mark.parametrize("size", [64, 256])
def test_depth_and_mask_match_pyrender(hand: HandModel, size: int) -> None:
    from handshape.render.synthetic import SyntheticRenderer

    v, K = posed_hand(hand, "victory", 3), crop_intrinsics(size)
    ours = render_depth(v[None], hand.faces, K, size, size)
    with SyntheticRenderer(size) as renderer:
        _, reference = renderer.render(
            v.numpy(), hand.faces.numpy(), K.numpy(), (0.5, 0.5, 0.5), [], np.full(3, 0.3)
        )
    mine, theirs = ours.covered[0].numpy(), reference > 0
    # The hard mask (a face contains the pixel centre) against pyrender's single-sampled mask.
    iou = (mine & theirs).sum() / (mine | theirs).sum()
    assert iou > 0.98
    both = mine & theirs
    assert both.sum() > 0.1 * size * size
    error_mm = 1000 * np.abs(ours.depth[0].numpy()[both] - reference[both])
    assert np.median(error_mm) < 1.0


def test_depth_matches_deodr(hand: HandModel) -> None:
    pytest.importorskip("deodr")
    from deodr_reference import deodr_depth

    size = 32
    v, K = posed_hand(hand, "ok", 5), crop_intrinsics(size)
    ours = render_depth(v[None], hand.faces, K, size, size)
    theirs = deodr_depth(v, hand.faces.numpy(), K.numpy(), size, size).detach().numpy()
    depth, coverage = ours.depth[0].numpy(), ours.coverage[0].numpy()
    covered = ours.covered[0].numpy()
    # Covered pixels: DEODR interpolates depth linearly on screen, we perspective-correctly; on
    # faces a pixel wide the two differ by far less than a micrometre.
    assert np.median(np.abs(depth[covered] - theirs[covered])) < 1e-5
    # Both anti-alias a one-pixel band outside the silhouette: same support, and the composite
    # over a 0 background (coverage * depth) agrees on most of it.
    ours_any, theirs_any = coverage > 0, theirs > 0
    assert (ours_any & theirs_any).sum() / (ours_any | theirs_any).sum() > 0.98
    band = ours_any & ~covered
    assert band.sum() > 20
    composite = coverage * depth
    assert np.median(np.abs(composite[band] - theirs[band])) < 1e-3


def sphere(subdivisions: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    import trimesh  # here, not at the top: the CUDA test runs where trimesh is not installed

    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.05)
    v = torch.tensor(mesh.vertices) + torch.tensor([0.004, -0.003, 0.3])
    return v, torch.tensor(mesh.faces)


def test_gradients_match_finite_differences() -> None:
    v, faces = sphere()
    K = torch.tensor([[30.0, 0.0, 7.6], [0.0, 31.0, 7.3], [0.0, 0.0, 1.0]], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    w_depth = torch.rand(1, 16, 16, generator=gen, dtype=torch.float64)
    w_cover = torch.rand(1, 16, 16, generator=gen, dtype=torch.float64)
    out = render_depth(v[None], faces, K, 16, 16)
    assert ((out.coverage > 0) & (out.coverage < 1)).sum() > 10  # the band is in the test

    def weighted(vertices: torch.Tensor) -> torch.Tensor:
        out = render_depth(vertices, faces, K, 16, 16)
        return (w_depth * out.depth).sum() + (w_cover * out.coverage).sum()

    vertices = v[None].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(weighted, (vertices,), eps=1e-7, atol=1e-5, rtol=1e-4)


def test_silhouette_band_is_one_pixel_linear_ramp_with_exact_gradient() -> None:
    # A square facing the camera at z = 0.5, fx = 100: its right edge lies at pixel x = 5.3.
    z, fx = 0.5, 100.0
    right = (5.3 - 2.0) * z / fx
    v = torch.tensor(
        [[-0.01, -0.01, z], [right, -0.01, z], [right, 0.01, z], [-0.01, 0.01, z]],
        dtype=torch.float64,
    )
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    K = torch.tensor([[fx, 0.0, 2.0], [0.0, fx, 4.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    shift = torch.zeros(1, 1, 3, dtype=torch.float64, requires_grad=True)
    out = render_depth(v[None] + shift, faces, K, 8, 8)
    row = out.coverage[0, 4]
    assert row[5].item() == 1.0 and out.covered[0, 4, 5]
    assert row[6].item() == pytest.approx(0.3)  # 0.7 px outside the edge
    assert row[7].item() == 0.0 and out.depth[0, 4, 7].item() == 0.0
    assert out.depth[0, 4, 6].item() == pytest.approx(z)  # the edge's depth in the band
    (grad,) = torch.autograd.grad(row[6], shift)
    # Moving the square right by dx metres moves the edge by fx * dx / z pixels.
    assert grad[0, 0, 0].item() == pytest.approx(fx / z)
    assert grad[0, 0, 1].item() == pytest.approx(0.0)


def test_band_over_farther_surface_blends_depth() -> None:
    # A small square at 0.4 m in front of a large one at 0.6 m: outside the small one's edge
    # the pixel stays covered and its depth mixes the two.
    near_right, far = (4.5 - 4.0) * 0.4 / 100.0, 0.6
    small = [
        [-0.01, -0.01, 0.4],
        [near_right, -0.01, 0.4],
        [near_right, 0.01, 0.4],
        [-0.01, 0.01, 0.4],
    ]
    large = [[-0.05, -0.05, far], [0.05, -0.05, far], [0.05, 0.05, far], [-0.05, 0.05, far]]
    v = torch.tensor(small + large, dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    K = torch.tensor([[100.0, 0.0, 4.0], [0.0, 100.0, 4.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    out = render_depth(v[None], faces, K, 9, 9)
    assert out.coverage[0, 4, 5].item() == 1.0
    assert out.depth[0, 4, 5].item() == pytest.approx(0.5 * 0.4 + 0.5 * far)
    assert out.depth[0, 4, 4].item() == pytest.approx(0.4)
    assert out.depth[0, 4, 7].item() == pytest.approx(far)


def test_toy_fit_moves_a_displaced_hand_back_onto_its_depth_map(hand: HandModel) -> None:
    size = 32
    v, K = posed_hand(hand, "open_palm", 1), crop_intrinsics(size)
    renderer = DepthRenderer(hand.faces, size, size).double()
    with torch.no_grad():
        target = renderer(v[None], K)
    true = torch.zeros(3, dtype=torch.float64)
    start = torch.tensor([0.006, -0.005, 0.008], dtype=torch.float64)  # about 1 px and 8 mm
    t = start.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([t], lr=5e-4)
    for _ in range(120):
        out = renderer((v + t)[None], K)
        loss = rendered_depth_loss(out.depth, out.coverage, target.depth, target.covered).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    before, after = (start - true).norm().item(), (t.detach() - true).norm().item()
    assert after < before / 10


def test_only_the_silhouette_band_pulls_a_flat_finger_sideways() -> None:
    # A flat strip ("finger") at constant depth, 0.6 px left of where the target has it: every
    # covered pixel's depth is right already, so only the edge can tell which way to move.
    z, fx = 0.4, 100.0
    length, width = 0.03, 0.012
    strip = torch.tensor(
        [
            [-width / 2, -length / 2, z],
            [width / 2, -length / 2, z],
            [width / 2, length / 2, z],
            [-width / 2, length / 2, z],
        ],
        dtype=torch.float64,
    )
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    K = torch.tensor([[fx, 0.0, 7.8], [0.0, fx, 7.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
    target = render_depth(strip[None], faces, K, 16, 16)
    start = -0.6 * z / fx  # 0.6 px
    shift = torch.tensor([start, 0.0, 0.0], dtype=torch.float64, requires_grad=True)

    def loss(hard: bool) -> torch.Tensor:
        out = render_depth((strip + shift)[None], faces, K, 16, 16)
        coverage = out.covered.to(out.depth.dtype) if hard else out.coverage
        depth = out.depth * out.covered if hard else out.depth
        return rendered_depth_loss(depth, coverage, target.depth, target.covered).sum()

    (hard_grad,) = torch.autograd.grad(loss(hard=True), shift)
    assert hard_grad[0].item() == 0.0  # a hard z-buffer gives no sideways pull at all
    before = loss(hard=False).item()
    optimiser = torch.optim.Adam([shift], lr=2e-4)
    for _ in range(60):
        optimiser.zero_grad()
        loss(hard=False).backward()
        optimiser.step()
    # L_D looks at the hand pixels only, so it is 0 wherever the strip covers all of them:
    # the fit ends inside that sub-pixel range, with every hand pixel covered again.
    assert loss(hard=False).item() < before / 100
    assert abs(shift[0].item()) < abs(start) / 2
    out = render_depth((strip + shift)[None], faces, K, 16, 16)
    assert out.covered[target.covered].all()


@pytest.mark.parametrize("size", [32, 96])
def test_back_face_culling_changes_nothing_on_the_closed_hand(hand: HandModel, size: int) -> None:
    v, K = posed_hand(hand, "fist", 6), crop_intrinsics(size)
    vertices = v[None].clone().requires_grad_(True)
    culled = render_depth(vertices, hand.faces, K, size, size, cull_back_faces=True)
    full = render_depth(v[None], hand.faces, K, size, size)
    assert torch.equal(culled.covered, full.covered) and culled.covered.any()
    torch.testing.assert_close(culled.depth, full.depth, rtol=0, atol=0)
    torch.testing.assert_close(culled.coverage, full.coverage, rtol=0, atol=0)


def test_back_face_culling_drops_faces_wound_clockwise_seen_from_the_camera() -> None:
    # Seen from the camera (y down on the image) these corners run clockwise: a back face. It
    # spans pixels 2..6 both ways (2 px = 1 cm at 0.5 m with f = 100).
    v = torch.tensor(
        [[-0.01, -0.01, 0.5], [0.01, -0.01, 0.5], [0.01, 0.01, 0.5], [-0.01, 0.01, 0.5]],
        dtype=torch.float64,
    )
    back = torch.tensor([[0, 1, 2], [0, 2, 3]])
    K = torch.tensor([[100.0, 0.0, 4.0], [0.0, 100.0, 4.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    assert render_depth(v[None], back, K, 9, 9).covered.sum() == 25
    assert render_depth(v[None], back, K, 9, 9, cull_back_faces=True).covered.sum() == 0
    front = back.flip(1)
    assert render_depth(v[None], front, K, 9, 9, cull_back_faces=True).covered.sum() == 25


def test_batch_items_are_independent(hand: HandModel) -> None:
    size = 24
    vs = torch.stack([posed_hand(hand, g, i) for i, g in enumerate(["fist", "point", "ok"])])
    Ks = torch.stack(
        [
            crop_intrinsics(size) * torch.tensor([[s, 1, 1], [1, s, 1], [1, 1, 1]])
            for s in (0.9, 1.0, 1.1)
        ]
    )
    vertices = vs.clone().requires_grad_(True)
    batch = render_depth(vertices, hand.faces, Ks, size, size)
    for i in range(3):
        single = render_depth(vs[i : i + 1], hand.faces, Ks[i], size, size)
        torch.testing.assert_close(batch.depth[i], single.depth[0], rtol=0, atol=0)
        torch.testing.assert_close(batch.coverage[i], single.coverage[0], rtol=0, atol=0)
    assert not torch.equal(batch.depth[0], batch.depth[1])
    (grad,) = torch.autograd.grad(batch.depth[1].sum() + batch.coverage[1].sum(), vertices)
    assert grad[1].abs().sum() > 0
    assert grad[0].abs().sum() == 0 and grad[2].abs().sum() == 0


def test_float32_agrees_with_float64(hand: HandModel) -> None:
    size = 32
    v, K = posed_hand(hand, "pinch", 2), crop_intrinsics(size)
    d64 = render_depth(v[None], hand.faces, K, size, size)
    v32 = v.float()[None].requires_grad_(True)
    d32 = render_depth(v32, hand.faces, K.float(), size, size)
    assert d32.depth.dtype == torch.float32 and d32.coverage.dtype == torch.float32
    same = d32.covered == d64.covered
    assert same.float().mean() > 0.99
    torch.testing.assert_close(d32.depth[same], d64.depth[same].float(), atol=1e-4, rtol=0)
    d32.depth.sum().backward()
    assert v32.grad is not None and torch.isfinite(v32.grad).all() and v32.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_mixed_precision_renders_in_float32(hand: HandModel, dtype: torch.dtype) -> None:
    """Fine-tuning runs under autocast (precision 16-mixed): the renderer must neither index
    pixels in half precision nor mix dtypes; a batch of 32 reaches past 2^15 pixels."""
    size, batch = 32, 32
    v = posed_hand(hand, "fist", 5).float()
    K = crop_intrinsics(size).float()
    expected = render_depth(v.to(dtype).float()[None], hand.faces, K, size, size)
    vertices = v.expand(batch, -1, -1).to(dtype).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = render_depth(vertices, hand.faces, K, size, size)
    assert out.depth.dtype == torch.float32
    torch.testing.assert_close(out.depth[-1], expected.depth[0], atol=0, rtol=0)
    out.depth.sum().backward()
    assert vertices.grad is not None and vertices.grad.dtype == dtype
    assert torch.isfinite(vertices.grad.float()).all() and vertices.grad.float().abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(hand: HandModel) -> None:
    size = 32
    v, K = posed_hand(hand, "fist", 4), crop_intrinsics(size)
    cpu = render_depth(v[None], hand.faces, K, size, size)
    vertices = v[None].cuda().requires_grad_(True)
    gpu = render_depth(vertices, hand.faces.cuda(), K.cuda(), size, size)
    torch.testing.assert_close(gpu.depth.cpu(), cpu.depth, atol=1e-9, rtol=0)
    torch.testing.assert_close(gpu.coverage.cpu(), cpu.coverage, atol=1e-9, rtol=0)
    (gpu.depth.sum() + gpu.coverage.sum()).backward()
    assert vertices.grad is not None and vertices.grad.abs().sum() > 0


def test_nothing_in_view_gives_empty_maps() -> None:
    v, faces = sphere()
    behind = v * torch.tensor([1.0, 1.0, -1.0])
    K = torch.tensor([[70.0, 0.0, 7.5], [0.0, 70.0, 7.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
    out = render_depth(behind[None], faces, K, 16, 16)
    assert out.depth.abs().sum() == 0 and out.coverage.sum() == 0 and not out.covered.any()


def test_bad_input_is_refused_with_a_clear_error() -> None:
    v, faces = sphere()
    K = torch.eye(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="vertices must be a \\(B, N, 3\\)"):
        render_depth(v, faces, K, 8, 8)
    with pytest.raises(TypeError, match="vertices must be float32 or float64"):
        render_depth(v[None].long(), faces, K, 8, 8)
    with pytest.raises(TypeError, match="faces must be an integer tensor"):
        render_depth(v[None], faces.double(), K, 8, 8)
    with pytest.raises(ValueError, match="faces must have shape \\(F, 3\\)"):
        render_depth(v[None], faces[:, :2], K, 8, 8)
    with pytest.raises(ValueError, match="faces index vertex"):
        render_depth(v[None, :10], faces, K, 8, 8)
    with pytest.raises(ValueError, match="K must be a \\(3, 3\\) or \\(B, 3, 3\\)"):
        render_depth(v[None], faces, K[:2], 8, 8)
    with pytest.raises(ValueError, match="K has batch size 2"):
        render_depth(v[None], faces, K.expand(2, 3, 3), 8, 8)
    with pytest.raises(ValueError, match="height must be a positive integer"):
        render_depth(v[None], faces, K, 0, 8)
    with pytest.raises(ValueError, match="belongs to 3 faces"):
        mesh_topology(torch.tensor([[0, 1, 2], [1, 0, 3], [0, 1, 4]]))


def test_topology_finds_boundary_and_shared_edges_and_their_faces() -> None:
    # Two triangles sharing the edge (0, 2): 5 edges, 4 of them on the boundary.
    topology = mesh_topology(torch.tensor([[0, 1, 2], [0, 2, 3]]))
    edges = {tuple(e) for e in topology.edges.tolist()}
    assert edges == {(0, 1), (1, 2), (0, 2), (2, 3), (0, 3)}
    shared = topology.edges.tolist().index([0, 2])
    # Face 0 runs along it from 2 to 0, face 1 from 0 to 2: opposite turns.
    assert topology.edge_faces[shared].tolist() == [0, 1]
    assert topology.edge_turn[shared].tolist() == [-1, 1]
    assert (topology.edge_faces[:, 1] < 0).sum() == 4
    assert (topology.edge_turn[:, 1] == 0).sum() == 4
