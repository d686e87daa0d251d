"""Rotation conversions: exact at the special points, inverse of each other elsewhere."""

import math

import torch

from handshape.geometry.rotations import (
    axis_angle_to_matrix,
    kabsch,
    matrix_to_axis_angle,
    rotation_between,
)


def _random_axis_angle(n: int, max_angle: float = math.pi - 1e-3) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=1)
    angle = torch.rand(n, 1, generator=g, dtype=torch.float64) * max_angle
    return axis * angle


def test_zero_vector_is_identity_with_finite_gradient() -> None:
    r = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    m = axis_angle_to_matrix(r)
    assert torch.equal(m[0], torch.eye(3, dtype=torch.float64))
    m.sum().backward()
    assert torch.isfinite(r.grad).all()


def test_rodrigues_matches_matrix_exponential() -> None:
    r = _random_axis_angle(64)
    k = torch.zeros(64, 3, 3, dtype=torch.float64)
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -r[:, 2], r[:, 1], -r[:, 0]
    k = k - k.transpose(1, 2)
    assert torch.allclose(axis_angle_to_matrix(r), torch.linalg.matrix_exp(k), atol=1e-12)


def test_matrix_to_axis_angle_inverts_rodrigues_up_to_pi() -> None:
    r = torch.cat(
        [_random_axis_angle(256), torch.tensor([[0.0, 0.0, math.pi - 1e-6]], dtype=torch.float64)]
    )
    back = matrix_to_axis_angle(axis_angle_to_matrix(r))
    assert torch.allclose(axis_angle_to_matrix(back), axis_angle_to_matrix(r), atol=1e-9)
    assert torch.allclose(back[:-1], r[:-1], atol=1e-8)


def test_rotation_between_maps_a_onto_b_including_opposite_vectors() -> None:
    a = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 2.0]], dtype=torch.float64)
    b = torch.tensor([[0, 3.0, 0], [0, -1.0, 0], [0, 0, 1.0]], dtype=torch.float64)
    r = rotation_between(a, b)
    mapped = torch.einsum("bij,bj->bi", r, torch.nn.functional.normalize(a, dim=1))
    assert torch.allclose(mapped, torch.nn.functional.normalize(b, dim=1), atol=1e-12)
    assert torch.allclose(torch.det(r), torch.ones(3, dtype=torch.float64))


def test_kabsch_recovers_a_rotation_and_never_reflects() -> None:
    g = torch.Generator().manual_seed(1)
    src = torch.randn(4, 6, 3, generator=g, dtype=torch.float64)
    src = src - src.mean(1, keepdim=True)
    rot = axis_angle_to_matrix(_random_axis_angle(4))
    assert torch.allclose(kabsch(src, src @ rot.transpose(1, 2)), rot, atol=1e-10)
    mirrored = src * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    assert torch.allclose(torch.det(kabsch(src, mirrored)), torch.ones(4, dtype=torch.float64))
