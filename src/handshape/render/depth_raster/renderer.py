"""What the rest of the code calls: `render_depth` and `DepthRenderer` check their inputs and run
the one autograd node `_Rasterise`, whose forward pass is `raster` (with `culling`) and whose
backward pass is `backward`."""

from __future__ import annotations

from typing import NamedTuple

import torch

from handshape.render.depth_raster.backward import Grads, band_grads, face_grads, project_grads
from handshape.render.depth_raster.culling import drawn_faces
from handshape.render.depth_raster.raster import (
    FAR_KEY,
    LOW32,
    FaceFrame,
    band_hits,
    face_hits,
    project,
    zbuffer,
)
from handshape.render.depth_raster.topology import MeshTopology, is_closed, mesh_topology

__all__ = ["DepthRender", "DepthRenderer", "render_depth"]


class DepthRender(NamedTuple):
    """What `render_depth` returns; see the module docstring for the conventions."""

    depth: torch.Tensor  # (B, H, W), dtype of the vertices
    coverage: torch.Tensor  # (B, H, W) in [0, 1]
    covered: torch.Tensor  # (B, H, W) bool


def render_depth(
    vertices: torch.Tensor,
    faces: torch.Tensor | MeshTopology,
    K: torch.Tensor,
    height: int,
    width: int,
    near: float = 1e-3,
    cull_back_faces: bool | None = None,
) -> DepthRender:
    """Render the depth and coverage of a batch of meshes (see the module docstring).

    Args:
        vertices: (B, N, 3) float32 or float64 camera-frame vertices (OpenCV frame); float16
            and bfloat16 are rendered in float32. Autocast is switched off inside.
        faces: (F, 3) integer vertex indices, or a `MeshTopology` built from them (faster when
            the same faces are drawn again and again).
        K: (B, 3, 3) or (3, 3) intrinsics of the H x W image (pixel centres at integers, last
            row [0, 0, 1]); cast to the vertices' dtype.
        height, width: image size in pixels.
        near: faces with a vertex at z <= near are not drawn.
        cull_back_faces: leave faces that turn their back to the camera out of the z-buffer.
            Exact for a closed mesh seen from outside (tested on the hand), where it drops
            about 60 % of the faces from the z-buffer and saves about a quarter of the time at
            32 x 32 (see docs/benchmarks.md); contour edges still come from all faces.
            True: a face is front-facing when its corners run counter-clockwise seen from
            outside the mesh (handshape's hand and MANO are wound so). None (the default):
            cull where that is exact and safe, i.e. where every edge has two faces that run
            along it in opposite directions (a closed, consistently wound mesh) and the mesh
            lies wholly beyond `near`, taking each mesh's outside from the sign of the volume
            it encloses (so a mirrored, inside-out wound copy is culled right too); meshes of
            several parts wound against each other are not supported there. False: never.

    Returns:
        DepthRender(depth (B, H, W), coverage (B, H, W), covered (B, H, W) bool), differentiable
        with respect to `vertices` (and K) through depth and coverage.
    """
    topology = faces if isinstance(faces, MeshTopology) else mesh_topology(faces)
    return _render(vertices, topology, is_closed(topology), K, height, width, near, cull_back_faces)


def _render(
    vertices: torch.Tensor,
    topology: MeshTopology,
    closed: bool,
    K: torch.Tensor,
    height: int,
    width: int,
    near: float,
    cull_back_faces: bool | None,
) -> DepthRender:
    """`render_depth` with `is_closed(topology)` given (`DepthRenderer` finds it once)."""
    if isinstance(vertices, torch.Tensor) and vertices.dtype in (torch.float16, torch.bfloat16):
        vertices = vertices.float()  # half precision cannot index the pixels of a batch
    _check_inputs(vertices, topology.faces, K, height, width)
    shape = (vertices.shape[0], height, width)
    if vertices.shape[0] == 0 or topology.faces.shape[0] == 0:
        empty = vertices.new_zeros(shape) + 0 * vertices.sum()  # zero gradients, not none
        return DepthRender(empty, empty.clone(), torch.zeros_like(empty, dtype=torch.bool))
    K = K.to(vertices.dtype)
    if K.ndim == 2:
        K = K.expand(vertices.shape[0], 3, 3)
    if cull_back_faces is None:
        cull: bool | None = None if closed else False
    else:
        cull = bool(cull_back_faces)
    # Autocast reaches into custom Functions; the projection and the pixel indices must stay in
    # the vertices' precision (mixed-precision fine-tuning renders in float32).
    with torch.autocast(vertices.device.type, enabled=False):
        depth, coverage, covered = _Rasterise.apply(
            vertices, K, topology, closed, int(height), int(width), float(near), cull
        )
    return DepthRender(depth.view(shape), coverage.view(shape), covered.view(shape))


class DepthRenderer(torch.nn.Module):
    """`render_depth` for one fixed topology and image size; the edge structure is built once.

    Example:
        >>> renderer = DepthRenderer(hand.faces, 32, 32, cull_back_faces=True)  # doctest: +SKIP
        >>> out = renderer(vertices, K)  # depth, coverage, covered: (B, 32, 32)
    """

    def __init__(
        self,
        faces: torch.Tensor,
        height: int,
        width: int,
        near: float = 1e-3,
        cull_back_faces: bool | None = None,
    ) -> None:
        super().__init__()
        _check_size(height, width)
        topology = mesh_topology(torch.as_tensor(faces))
        self.register_buffer("faces", topology.faces, persistent=False)
        self.register_buffer("edges", topology.edges, persistent=False)
        self.register_buffer("edge_faces", topology.edge_faces, persistent=False)
        self.register_buffer("edge_turn", topology.edge_turn, persistent=False)
        self.height, self.width, self.near = int(height), int(width), float(near)
        self.cull_back_faces = None if cull_back_faces is None else bool(cull_back_faces)
        self.closed = is_closed(topology)

    def forward(self, vertices: torch.Tensor, K: torch.Tensor) -> DepthRender:
        """(B, N, 3) vertices, (B, 3, 3) or (3, 3) K -> DepthRender of (B, H, W) maps."""
        topology = MeshTopology(self.faces, self.edges, self.edge_faces, self.edge_turn)
        return _render(
            vertices,
            topology,
            self.closed,
            K,
            self.height,
            self.width,
            self.near,
            self.cull_back_faces,
        )


def _check_size(height: int, width: int) -> None:
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or int(value) != value or int(value) <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_inputs(
    vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, height: int, width: int
) -> None:
    _check_size(height, width)
    if not isinstance(vertices, torch.Tensor) or vertices.ndim != 3 or vertices.shape[2] != 3:
        shape = tuple(vertices.shape) if isinstance(vertices, torch.Tensor) else type(vertices)
        raise ValueError(f"vertices must be a (B, N, 3) tensor, got {shape}")
    if vertices.dtype not in (torch.float32, torch.float64):
        raise TypeError(
            f"vertices must be float32 or float64 (half precision is drawn in float32), "
            f"got {vertices.dtype}"
        )
    if not isinstance(K, torch.Tensor) or K.shape[-2:] != (3, 3) or K.ndim not in (2, 3):
        shape = tuple(K.shape) if isinstance(K, torch.Tensor) else type(K)
        raise ValueError(f"K must be a (3, 3) or (B, 3, 3) tensor, got {shape}")
    if K.ndim == 3 and K.shape[0] != vertices.shape[0]:
        raise ValueError(f"K has batch size {K.shape[0]}, vertices {vertices.shape[0]}")
    if not K.dtype.is_floating_point:
        raise TypeError(f"K must be a floating-point tensor, got {K.dtype}")
    if K.device != vertices.device or faces.device != vertices.device:
        raise ValueError(
            f"vertices ({vertices.device}), faces ({faces.device}) and K ({K.device}) must be "
            "on one device"
        )
    if faces.numel() and int(faces.max()) >= vertices.shape[1]:
        raise ValueError(
            f"faces index vertex {int(faces.max())} but vertices has {vertices.shape[1]}"
        )


class _Rasterise(torch.autograd.Function):
    """(vertices (B, N, 3), K (B, 3, 3)) -> flat (B*H*W,) depth, coverage and covered, with a
    hand-written backward pass.

    Autograd over the same arithmetic builds a graph of dozens of small ops per call, and the
    forward pass had to evaluate the winners a second time to build it; here the forward pass
    keeps the winners' intermediate values and the backward pass is a few vector ops and one
    index_add per coordinate. Its formulas are written out in `face_grads`, `band_grads` and
    `project_grads`, and tested in float64 against finite differences and against autograd
    of the direct depth formula (tests/render/test_depth_raster_backward.py).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        vertices: torch.Tensor,
        K: torch.Tensor,
        topology: MeshTopology,
        closed: bool,
        height: int,
        width: int,
        near: float,
        cull_back_faces: bool | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = vertices.shape[0]
        if batch * topology.faces.shape[0] > LOW32:
            raise ValueError("render_depth: batch x faces must stay below 2 ** 32")
        xy, z, inv_w = project(vertices, K)
        frame = FaceFrame.of(xy, z, topology.faces, near)
        drawn = drawn_faces(frame, z, near, batch, cull_back_faces)
        keys = zbuffer(frame, drawn, batch, height, width)
        covered = keys < FAR_KEY
        hits = face_hits(xy, z, topology.faces, keys, covered, width)
        depth = xy.new_zeros(covered.numel()).index_copy_(0, hits.pixel, hits.depth)
        coverage = covered.to(xy.dtype)
        band = band_hits(xy, z, frame, topology, closed, depth, covered, height, width)
        if band is not None:
            under = covered.index_select(0, band.pixel)
            behind = depth.index_select(0, band.pixel)
            blend = band.alpha * band.depth + (1 - band.alpha) * behind
            depth.index_copy_(0, band.pixel, torch.where(under, blend, band.depth))
            coverage.index_copy_(
                0, band.pixel, torch.where(under, torch.ones_like(band.alpha), band.alpha)
            )
            ctx.under, ctx.behind = under, behind
        ctx.save_for_backward(vertices, K)
        ctx.hits, ctx.band, ctx.xy, ctx.inv_w = hits, band, xy, inv_w
        ctx.mark_non_differentiable(covered)
        return depth, coverage, covered

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        grad_depth: torch.Tensor,
        grad_coverage: torch.Tensor,
        _: torch.Tensor,
    ) -> tuple[torch.Tensor | None, ...]:
        vertices, K = ctx.saved_tensors
        hits, band = ctx.hits, ctx.band
        batch, n = vertices.shape[:2]
        grad_x, grad_y, grad_z = (grad_depth.new_zeros(batch * n) for _ in range(3))
        parts = Grads([], [], [], [])
        grad_face = grad_depth
        if band is not None:
            under = ctx.under
            g = grad_depth.index_select(0, band.pixel)
            # Over a farther surface: depth = alpha z_edge + (1 - alpha) behind, coverage 1;
            # over background: depth = z_edge, coverage = alpha.
            g_alpha = torch.where(
                under, g * (band.depth - ctx.behind), grad_coverage.index_select(0, band.pixel)
            )
            g_edge = torch.where(under, g * band.alpha, g)
            grad_face = grad_depth.index_copy(
                0, band.pixel, torch.where(under, g * (1 - band.alpha), g)
            )
            band_grads(band, g_alpha, g_edge, parts)
        if hits.pixel.numel():
            face_grads(hits, grad_face.index_select(0, hits.pixel), parts)
        if parts.vertex:
            vertex = torch.cat(parts.vertex)
            for grad, part in ((grad_x, parts.x), (grad_y, parts.y), (grad_z, parts.z)):
                grad.index_add_(0, vertex, torch.cat(part))
        grad_v, grad_K = project_grads(
            vertices,
            K,
            ctx.xy,
            ctx.inv_w,
            grad_x.view(batch, n),
            grad_y.view(batch, n),
            grad_z.view(batch, n),
            ctx.needs_input_grad[1],
        )
        return grad_v, grad_K, None, None, None, None, None, None
