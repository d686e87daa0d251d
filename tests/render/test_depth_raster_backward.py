"""The depth rasteriser's hand-written backward pass: against finite differences (vertices and
K, every path: covered pixels, silhouette band over background and over a farther surface) and
against autograd through a direct formula of the perspective-correct depth."""

from __future__ import annotations

import pytest
import torch

from handshape.render.depth_raster import render_depth

pytestmark = pytest.mark.usefixtures("single_thread")


def two_tilted_squares() -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 8, 3) float64 vertices and faces: a small tilted square at about 0.4 m in front of
    a larger tilted one at about 0.6 m, so that the small one's band lies partly over the
    large one and partly over the background; corners off any pixel grid."""
    small = [
        [-0.011, -0.009, 0.40],
        [0.008, -0.010, 0.41],
        [0.009, 0.012, 0.43],
        [-0.010, 0.011, 0.42],
    ]
    large = [
        [0.000, -0.035, 0.58],
        [0.040, -0.033, 0.60],
        [0.041, 0.036, 0.63],
        [0.001, 0.034, 0.61],
    ]
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    return torch.tensor([small + large], dtype=torch.float64), faces


K_SQUARES = torch.tensor(
    [[210.0, 0.7, 5.8], [0.0, 205.0, 6.3], [0.0, 0.0, 1.0]], dtype=torch.float64
)


def test_the_scene_exercises_every_path() -> None:
    v, faces = two_tilted_squares()
    out = render_depth(v, faces, K_SQUARES, 12, 12)
    band = (out.coverage > 0) & ~out.covered
    # Band pixels over the background have coverage < 1; over the far square coverage 1 and
    # a depth between the two squares'.
    assert band.sum() >= 4
    over = out.covered & (out.depth > 0.44) & (out.depth < 0.57)
    assert over.sum() >= 2
    assert (out.covered & (out.depth < 0.44)).sum() >= 4
    assert (out.covered & (out.depth > 0.57)).sum() >= 4


def test_gradients_of_vertices_and_K_match_finite_differences() -> None:
    v, faces = two_tilted_squares()

    def render(vertices: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = render_depth(vertices, faces, K, 12, 12)
        return out.depth, out.coverage

    inputs = (v.clone().requires_grad_(True), K_SQUARES.clone().requires_grad_(True))
    assert torch.autograd.gradcheck(render, inputs, eps=1e-7, atol=1e-5, rtol=1e-4)


def test_batched_K_gets_its_own_gradient() -> None:
    v, faces = two_tilted_squares()
    vertices = torch.cat([v, v + torch.tensor([0.002, -0.001, 0.01], dtype=torch.float64)])
    K = torch.stack([K_SQUARES, K_SQUARES * torch.tensor([[1.02], [0.98], [1.0]])])
    K.requires_grad_(True)
    out = render_depth(vertices, faces, K, 12, 12)
    (out.depth[1].sum() + out.coverage[1].sum()).backward()
    assert K.grad is not None
    assert K.grad[0].abs().sum() == 0 and K.grad[1].abs().sum() > 0


def perspective_depth(
    vertices: torch.Tensor, K: torch.Tensor, px: torch.Tensor, py: torch.Tensor
) -> torch.Tensor:
    """Depth (M,) of the plane through one triangle (3, 3) at pixel centres (M,), written
    directly: screen-space barycentrics l_k from the projected corners, 1 / z = sum l_k / z_k."""
    p = vertices @ K.T
    x, y, z = p[:, 0] / p[:, 2], p[:, 1] / p[:, 2], vertices[:, 2]

    T = torch.Tensor

    def twice_area(ax: T, ay: T, bx: T, by: T, cx: T, cy: T) -> T:
        return (bx - ax) * (cy - ay) - (cx - ax) * (by - ay)

    total = twice_area(x[0], y[0], x[1], y[1], x[2], y[2])
    lam = [
        twice_area(px, py, x[1], y[1], x[2], y[2]) / total,
        twice_area(x[0], y[0], px, py, x[2], y[2]) / total,
        twice_area(x[0], y[0], x[1], y[1], px, py) / total,
    ]
    return 1 / (lam[0] / z[0] + lam[1] / z[1] + lam[2] / z[2])


def test_covered_pixel_gradients_match_autograd_of_the_direct_formula() -> None:
    # One large tilted triangle; pixels well inside it (no band reaches them).
    tri = torch.tensor(
        [[-0.03, -0.025, 0.45], [0.035, -0.02, 0.5], [0.0, 0.03, 0.55]], dtype=torch.float64
    )
    K = torch.tensor([[180.0, 0.0, 7.7], [0.0, 183.0, 8.2], [0.0, 0.0, 1.0]], dtype=torch.float64)
    size = 16
    mine = tri.clone().requires_grad_(True)
    out = render_depth(mine[None], torch.tensor([[0, 1, 2]]), K, size, size)
    interior = (out.coverage[0] == 1).float()
    # Pixels whose 3 x 3 neighbourhood is all covered: away from the band.
    kernel = torch.ones(1, 1, 3, 3, dtype=torch.float32)
    deep = torch.nn.functional.conv2d(interior[None, None], kernel, padding=1)[0, 0] == 9
    rows, cols = torch.nonzero(deep & out.covered[0], as_tuple=True)
    assert rows.numel() > 20
    weights = torch.linspace(0.5, 1.5, rows.numel(), dtype=torch.float64)
    (out.depth[0, rows, cols] * weights).sum().backward()

    reference = tri.clone().requires_grad_(True)
    direct = perspective_depth(reference, K, cols.double(), rows.double())
    torch.testing.assert_close(direct.detach(), out.depth[0, rows, cols].detach())
    (direct * weights).sum().backward()
    assert mine.grad is not None and reference.grad is not None
    torch.testing.assert_close(mine.grad, reference.grad, rtol=1e-9, atol=1e-12)


def test_an_empty_batch_or_a_faceless_mesh_gives_empty_maps_and_zero_gradients() -> None:
    v, faces = two_tilted_squares()
    for vertices, f in ((v[:0], faces), (v, faces[:0])):
        vertices = vertices.clone().requires_grad_(True)
        out = render_depth(vertices, f, K_SQUARES, 12, 12)
        assert out.depth.shape == (len(vertices), 12, 12) and not out.covered.any()
        assert out.depth.abs().sum() == 0 and out.coverage.abs().sum() == 0
        (out.depth.sum() + out.coverage.sum()).backward()
        assert vertices.grad is not None and vertices.grad.abs().sum() == 0
