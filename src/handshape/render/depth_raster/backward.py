"""The depth renderer's hand-written backward pass: derivatives of the winners' depth, of the
contour bands' alpha and depth, and of the projection, summed into the vertices' (and K's)
gradients."""

from __future__ import annotations

from typing import NamedTuple

import torch

from handshape.render.depth_raster.raster import BandHits, FaceHits


def project_grads(
    vertices: torch.Tensor,
    K: torch.Tensor,
    xy: torch.Tensor,
    inv_w: torch.Tensor,
    grad_x: torch.Tensor,
    grad_y: torch.Tensor,
    grad_z: torch.Tensor,
    with_K: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gradients of the vertices (B, N, 3) and of K (B, 3, 3) (None unless `with_K`) from those
    of the pixel planes and the depth (B, N) each.

    With p = K v, x = p_0 / p_2, y = p_1 / p_2, z = v_z: d(loss)/dp = (a, b, -(a x + b y)) with
    a = g_x / p_2, b = g_y / p_2; then d(loss)/dv = K^T d(loss)/dp (+ g_z on v_z) and
    d(loss)/dK = d(loss)/dp v^T, summed over the vertices.
    """
    grad_p = inv_w.new_empty(inv_w.shape[0], 3, inv_w.shape[1])  # (B, 3, N), filled in place
    a = torch.mul(grad_x, inv_w, out=grad_p[:, 0])
    b = torch.mul(grad_y, inv_w, out=grad_p[:, 1])
    torch.mul(a, xy[0], out=grad_p[:, 2]).addcmul_(b, xy[1]).neg_()
    grad_v = torch.bmm(grad_p.transpose(1, 2), K)
    grad_v[..., 2] += grad_z
    grad_K = torch.bmm(grad_p, vertices) if with_K else None
    return grad_v, grad_K


class Grads(NamedTuple):
    """Contributions to the flat vertex gradients: vertex index and d(loss)/d(x, y, z), lists
    of (M,) tensors, summed into the gradients by one index_add per coordinate."""

    vertex: list[torch.Tensor]
    x: list[torch.Tensor]
    y: list[torch.Tensor]
    z: list[torch.Tensor]


def face_grads(hits: FaceHits, grad: torch.Tensor, out: Grads) -> None:
    """Appends d(loss)/d(corner x, y, z) of the winners' depth D = A / S to `out`.

    A = w_0 + w_1 + w_2 (twice the area, from w_k = dx_{k+1} dy_{k+2} - dx_{k+2} dy_{k+1},
    d = corner - pixel centre), S = sum_k w_k / z_k. Then dD/dw_k = (D / A)(1 - D / z_k),
    dD/dz_k = D^2 w_k / (A z_k^2), and by the chain rule through w:
    dD/dx_j = g_{j-1} dy_{j+1} - g_{j+1} dy_{j-1}, dD/dy_j = g_{j+1} dx_{j-1} - g_{j-1} dx_{j+1}
    (indices mod 3, g_k = dD/dw_k). grad (M,) is d(loss)/dD.
    """
    q = grad * hits.depth / hits.area
    g = [q * (1 - hits.depth * hits.inv_z[k]) for k in range(3)]
    for j in range(3):
        before, after = (j + 2) % 3, (j + 1) % 3
        out.vertex.append(hits.corner[j])
        out.x.append(g[before] * hits.dy[after] - g[after] * hits.dy[before])
        out.y.append(g[after] * hits.dx[before] - g[before] * hits.dx[after])
        out.z.append(q * hits.depth * hits.w[j] * hits.inv_z[j] ** 2)


def band_grads(band: BandHits, g_alpha: torch.Tensor, g_edge: torch.Tensor, out: Grads) -> None:
    """Appends d(loss)/d(end x, y, z) of the band's alpha and edge depth to `out`.

    With e = C - A, d = P - A, L = |e|, u = cross(e, d) / L: alpha = 1 + side * u (in the band),
    t = (d . e) / L^2, z_edge = 1 / ((1 - t) / z_A + t / z_C). Derivatives by C:
    du/dC = (d_y, -d_x) / L - u e / L^2, dt/dC = (d - 2 t e) / L^2; by A: minus those, plus
    (e_y, -e_x) / L and -e / L^2 (moving A moves d as well). g_alpha, g_edge (K,) are
    d(loss)/d(alpha) and d(loss)/d(z_edge).
    """
    inv_l = band.inv_length
    inv_l2 = inv_l * inv_l
    g_u = g_alpha * band.side
    u_l2 = band.cross * inv_l * inv_l2  # u / L^2
    ze2 = band.depth * band.depth
    g_t = g_edge * ze2 * (band.inv_za - band.inv_zc)
    gcx = g_u * (band.dy * inv_l - u_l2 * band.ex) + g_t * (band.dx - 2 * band.t * band.ex) * inv_l2
    gcy = (
        g_u * (-band.dx * inv_l - u_l2 * band.ey) + g_t * (band.dy - 2 * band.t * band.ey) * inv_l2
    )
    gax = g_u * band.ey * inv_l - g_t * band.ex * inv_l2 - gcx
    gay = -g_u * band.ex * inv_l - g_t * band.ey * inv_l2 - gcy
    g_z = g_edge * ze2
    out.vertex.extend((band.first, band.second))
    out.x.extend((gax, gcx))
    out.y.extend((gay, gcy))
    out.z.extend((g_z * (1 - band.t) * band.inv_za**2, g_z * band.t * band.inv_zc**2))
