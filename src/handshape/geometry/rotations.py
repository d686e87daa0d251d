"""Rotation conversions, batched and differentiable (pure torch).

Axis-angle vectors r (..., 3) rotate by |r| radians about r/|r|, as in MANO.
"""

from __future__ import annotations

import torch

_SMALL = 1e-6


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrices: (..., 3) -> (..., 3, 3) with skew(a) @ b == a x b."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape, 3)


def axis_angle_to_matrix(r: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: (..., 3) -> (..., 3, 3).

    The zero vector maps to the identity exactly, and gradients stay finite there, because the
    coefficients switch to their Taylor series below a small angle.
    """
    theta2 = (r * r).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    small = theta2 < _SMALL**2
    theta2_safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = theta2_safe.sqrt()
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2_safe)
    k = skew(r)
    eye = torch.eye(3, dtype=r.dtype, device=r.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def matrix_to_quaternion(m: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> unit quaternions (..., 4) as (w, x, y, z) with w >= 0.

    Chooses, per matrix, the largest of the four candidate denominators so that no branch divides
    by a number near zero (a rotation near 180 degrees has w near 0).
    """
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    candidates = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
    )
    q_abs = candidates.clamp_min(1e-12).sqrt()  # 2 * |component|
    # Each row: the quaternion computed from one choice of largest component, times 2|q_i|.
    rows = torch.stack(
        [
            torch.stack([q_abs[..., 0] ** 2, m[..., 2, 1] - m[..., 1, 2],
                         m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
            torch.stack([m[..., 2, 1] - m[..., 1, 2], q_abs[..., 1] ** 2,
                         m[..., 1, 0] + m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0]], -1),
            torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1],
                         q_abs[..., 2] ** 2, m[..., 2, 1] + m[..., 1, 2]], -1),
            torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 2, 0] + m[..., 0, 2],
                         m[..., 2, 1] + m[..., 1, 2], q_abs[..., 3] ** 2], -1),
        ],
        -2,
    )  # fmt: skip
    quats = rows / (2 * q_abs[..., None])
    best = q_abs.argmax(-1)
    q = torch.gather(quats, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) (w, x, y, z) -> (..., 3), angles in [0, pi]."""
    q = torch.where(q[..., :1] < 0, -q, q)
    xyz = q[..., 1:]
    s = xyz.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(s, q[..., :1])
    small = s < _SMALL
    factor = torch.where(small, 2 / q[..., :1].clamp_min(_SMALL), angle / s.clamp_min(_SMALL))
    return xyz * factor


def matrix_to_axis_angle(m: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 3)."""
    return quaternion_to_axis_angle(matrix_to_quaternion(m))


def rotation_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The smallest rotation taking direction a to direction b: (..., 3), (..., 3) -> (..., 3, 3).

    For opposite directions the axis is any vector perpendicular to a.
    """
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    axis = torch.cross(a, b, dim=-1)
    sin = axis.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(-1, keepdim=True)
    # Fallback axis for the antiparallel case: a x e, with e the basis vector least aligned to a.
    e = torch.zeros_like(a)
    e.scatter_(-1, a.abs().argmin(-1, keepdim=True), 1.0)
    ortho = torch.cross(a, e, dim=-1)
    ortho = ortho / ortho.norm(dim=-1, keepdim=True)
    unit_axis = torch.where(sin > _SMALL, axis / sin.clamp_min(_SMALL), ortho)
    angle = torch.atan2(sin, cos)
    return axis_angle_to_matrix(unit_axis * angle)


def kabsch(
    source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """The rotation R minimising sum_i w_i |R s_i - t_i|^2 for centred point sets.

    source, target: (..., P, 3), already centred (or direction vectors); weights: (..., P).
    Returns (..., 3, 3), a proper rotation (det +1).
    """
    if weights is not None:
        source = source * weights[..., None]
    h = source.transpose(-1, -2) @ target  # (..., 3, 3)
    u, _, vt = torch.linalg.svd(h)
    d = torch.det(vt.transpose(-1, -2) @ u.transpose(-1, -2))
    diag = torch.ones_like(u[..., 0])
    diag = torch.cat([diag[..., :2], d[..., None]], -1)
    return vt.transpose(-1, -2) @ torch.diag_embed(diag) @ u.transpose(-1, -2)
