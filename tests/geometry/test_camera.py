"""Camera: projection of known points, the uvd round trip, hand scale and Gaussian heat-maps."""

from __future__ import annotations

import math

import pytest
import torch

from handshape.geometry.camera import (
    from_uvd,
    hand_scale,
    heatmaps,
    pixels_to_uv,
    project,
    resize_pixels,
    scale_intrinsics,
    to_uvd,
    uv_to_pixels,
)

F64 = torch.float64


def _k(fx: float, fy: float, cx: float, cy: float, skew: float = 0.0) -> torch.Tensor:
    return torch.tensor([[fx, skew, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=F64)


def test_project_known_points() -> None:
    K = _k(500.0, 400.0, 128.0, 100.0)[None]
    pts = torch.tensor([[[0.0, 0.0, 2.0], [0.1, -0.2, 0.5], [0.3, 0.3, 3.0]]], dtype=F64)
    # px = fx x / z + cx: (128, 100), (500*0.2+128, 400*-0.4+100), (50+128, 40+100)
    expected = torch.tensor([[[128.0, 100.0], [228.0, -60.0], [178.0, 140.0]]], dtype=F64)
    assert torch.allclose(project(pts, K), expected, atol=1e-12)


def test_project_broadcasts_a_single_K_and_uses_skew() -> None:
    K = _k(100.0, 100.0, 10.0, 20.0, skew=5.0)
    pts = torch.tensor([[[1.0, 2.0, 4.0]], [[0.0, 0.0, 1.0]]], dtype=F64)
    # px = (fx x + s y) / z + cx = (100 + 10) / 4 + 10 = 37.5; py = 100 * 2 / 4 + 20 = 70
    expected = torch.tensor([[[37.5, 70.0]], [[10.0, 20.0]]], dtype=F64)
    assert torch.allclose(project(pts, K), expected, atol=1e-12)


def test_pixel_centre_convention() -> None:
    size = 4
    px = torch.tensor([[-0.5, -0.5], [0.0, 3.0], [3.5, 1.5]], dtype=F64)
    # The outer edges of the crop map to -1 and 1; pixel centre 0 to -1 + 1/size.
    expected = torch.tensor([[-1.0, -1.0], [-0.75, 0.75], [1.0, 0.0]], dtype=F64)
    assert torch.allclose(pixels_to_uv(px, size), expected, atol=1e-15)
    assert torch.allclose(uv_to_pixels(expected, size), px, atol=1e-15)


def test_hand_scale_is_the_middle_mcp_pip_bone() -> None:
    j = torch.zeros(2, 21, 3, dtype=F64)
    j[0, 9] = torch.tensor([1.0, 2.0, 3.0])
    j[0, 10] = torch.tensor([1.0, 5.0, 7.0])
    j[1, 10] = torch.tensor([0.0, 0.0, 0.25])
    j[1, 5] = torch.tensor([9.0, 9.0, 9.0])  # another joint: irrelevant
    assert torch.allclose(hand_scale(j), torch.tensor([5.0, 0.25], dtype=F64))


def test_to_uvd_known_values() -> None:
    size = 256
    K = _k(500.0, 500.0, 127.5, 127.5)[None]
    pts = torch.tensor([[[0.0, 0.0, 0.5], [0.02, 0.0, 0.52]]], dtype=F64)
    uvd = to_uvd(pts, K, torch.tensor([0.5], dtype=F64), torch.tensor([0.01], dtype=F64), size)
    # Point 0 at the principal point 127.5 = the crop centre -> u = v = 0, d = 0.
    # Point 1: px = 500 * 0.02 / 0.52 + 127.5; d = 0.02 / 0.01 = 2.
    u1 = 2 * (500 * 0.02 / 0.52 + 128.0) / size - 1
    expected = torch.tensor([[[0.0, 0.0, 0.0], [u1, 0.0, 2.0]]], dtype=F64)
    assert torch.allclose(uvd, expected, atol=1e-12)


def test_uvd_round_trip_is_exact() -> None:
    g = torch.Generator().manual_seed(0)
    b, n, size = 5, 50, 224
    pts = torch.randn(b, n, 3, generator=g, dtype=F64) * 0.05
    pts[..., 2] += 0.3 + torch.rand(b, 1, generator=g, dtype=F64)
    fx = 300 + 400 * torch.rand(b, generator=g, dtype=F64)
    K = torch.zeros(b, 3, 3, dtype=F64)
    K[:, 0, 0], K[:, 1, 1] = fx, fx * 1.1
    K[:, 0, 1] = 3.0  # a little skew
    K[:, 0, 2], K[:, 1, 2] = 100 + 20 * torch.rand(b, generator=g, dtype=F64), 115.0
    K[:, 2, 2] = 1.0
    root = pts[:, 0, 2]
    scale = 0.005 + 0.01 * torch.rand(b, generator=g, dtype=F64)
    uvd = to_uvd(pts, K, root, scale, size)
    assert torch.allclose(uvd[:, 0, 2], torch.zeros(b, dtype=F64))
    back = from_uvd(uvd, K, root, scale, size)
    assert (back - pts).abs().max() < 1e-9
    again = to_uvd(back, K, root, scale, size)
    assert (again - uvd).abs().max() < 1e-9


def test_from_uvd_is_differentiable() -> None:
    K = _k(400.0, 400.0, 60.0, 70.0)[None]
    uvd = torch.tensor([[[0.1, -0.2, 0.5], [0.0, 0.3, -1.0]]], dtype=F64, requires_grad=True)
    root = torch.tensor([0.4], dtype=F64, requires_grad=True)
    scale = torch.tensor([0.01], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, r, s: from_uvd(a, K, r, s, 128), (uvd, root, scale))


def test_heatmap_peak_position_and_width() -> None:
    sigma = 4.0
    # Input pixel 130 of a 256 crop -> heat-map coordinate (130.5) / 4 - 0.5 = 32.125;
    # input pixel 41.5 -> 10.0 exactly (a cell centre).
    joints = torch.tensor([[[41.5, 41.5], [130.0, 41.5]]], dtype=F64)
    h = heatmaps(joints, input_size=256, out_size=64, sigma=sigma)
    assert h.shape == (1, 2, 64, 64)
    # Joint 0: peak 1 at row 10, column 10; value exp(-0.5) one sigma (4 cells) away.
    assert h[0, 0, 10, 10] == pytest.approx(1.0, abs=1e-12)
    assert h[0, 0].argmax() == 10 * 64 + 10
    assert h[0, 0, 10, 14] == pytest.approx(math.exp(-0.5), abs=1e-12)
    assert h[0, 0, 6, 10] == pytest.approx(math.exp(-0.5), abs=1e-12)
    assert h[0, 0, 14, 14] == pytest.approx(math.exp(-1.0), abs=1e-12)
    # Joint 1: the argmax is the nearest cell, column 32, row 10.
    assert h[0, 1].argmax() == 10 * 64 + 32
    assert h[0, 1, 10, 32] == pytest.approx(math.exp(-(0.125**2) / (2 * sigma**2)), abs=1e-12)


def test_heatmap_sub_pixel_centre_matches_projection_convention() -> None:
    # A joint at the crop centre (127.5 of 256) lies between heat-map cells 31 and 32.
    h = heatmaps(torch.tensor([[[127.5, 127.5]]], dtype=F64), 256, 64, 2.0)
    assert torch.allclose(h[0, 0, 31, 31], h[0, 0, 32, 32])
    assert torch.allclose(h[0, 0, 31, 31], h[0, 0, 32, 31])
    assert torch.allclose(h[0, 0], h[0, 0].flip(0).flip(1))


def test_heatmap_valid_mask_zeroes_maps() -> None:
    joints = torch.full((2, 3, 2), 100.0, dtype=F64)
    valid = torch.tensor([[True, False, True], [False, True, True]])
    h = heatmaps(joints, 256, valid=valid)
    assert (h.amax(dim=(2, 3)) > 0.99).eq(valid).all()
    assert h[0, 1].abs().max() == 0 and h[1, 0].abs().max() == 0


def test_scaled_intrinsics_keep_pixel_centres() -> None:
    K = torch.tensor([[[100.0, 0, 31.5], [0, 100.0, 31.5], [0, 0, 1]]])
    point = torch.tensor([[[0.01, -0.02, 0.5]]])
    small = scale_intrinsics(K, 64, 32)
    expected = (project(point, K) + 0.5) * 0.5 - 0.5
    torch.testing.assert_close(project(point, small), expected)
    torch.testing.assert_close(project(point, small), resize_pixels(project(point, K), 64, 32))
