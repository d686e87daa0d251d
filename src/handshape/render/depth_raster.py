"""A batched differentiable depth rasteriser in pure torch (the renderer of the depth loss L_D).

Meshes (B, N, 3) in the OpenCV camera frame (x right, y down, z forward, z > 0 in front) are
drawn with the intrinsics K of a crop (pixel centres at integer coordinates, as
`handshape.geometry.camera`) into a (B, H, W) depth map and a (B, H, W) coverage map.

How it draws (vectorised over the batch; no per-mesh or per-pixel Python loop):
1. Project the vertices. Every face enumerates the pixel centres inside its screen bounding box
   (at the paper's 32 x 32 a hand's faces are about a pixel wide, so a face has 0-2 candidates).
2. Screen-space barycentrics l_i decide which centres a face covers (edges inclusive, so a
   centre on a shared edge is claimed by both faces and the z-buffer picks one; both windings:
   no back-face culling); the depth there is perspective-correct, z = 1 / sum_i(l_i / z_i).
3. A z-buffer keeps the nearest face per pixel: one `scatter_reduce(amin)` over int64 keys
   (the float32 bit pattern of the depth, which orders like the depth for positive numbers,
   shifted up, with the face index in the low bits), so the winner's identity comes for free.
4. Only the winners are evaluated again with autograd on, so the backward pass costs as much as
   one gather per covered pixel, not per candidate.

Gradients at silhouettes: an anti-aliased edge, as DEODR (de La Gorce et al., TPAMI 2011) does.
A hard z-buffer has no gradient with respect to where an edge lies: a pixel is covered or not.
A depth loss built on it could only move covered surface along z and could never pull a finger
onto the hand pixels it misses. Here every contour edge of the projected mesh (an edge whose
two faces fold onto the same side of it, or a boundary edge) draws a band one pixel wide on its
outer side, in which the edge's share of the pixel falls linearly from 1 at the edge to 0 a pixel
away: alpha = 1 - distance (pixels). alpha depends on the edge's end points, so moving an edge
by a fraction of a pixel changes the image smoothly. The band is depth-tested against the
z-buffer: where it lies over background the pixel gets coverage alpha and the edge's depth;
where it lies over a farther part of the hand (a finger in front of the palm) coverage stays 1
and the depth blends, alpha * z_edge + (1 - alpha) * z_behind; under a nearer surface it is
hidden. Why this and not a soft rasteriser (SoftRas-style blur of every face): the band leaves
every covered pixel's depth exact (what the checks against pyrender and DEODR test), costs one
extra pass over the few hundred contour edges instead of a blurred pass over all faces, and
the hard mask `covered` comes out exact, with no threshold to pick. Its reach is one pixel: an
edge more than a pixel away from a missed hand pixel gets no pull from it (at 32 x 32 a pixel
spans several millimetres of a hand filling the crop). `handshape.losses.rendered_depth_loss`
is the L_D that uses both outputs.

Outputs (`DepthRender`):
- depth (B, H, W): the camera z (unit of the vertices) of the surface at each pixel centre;
  in an outer band pixel the depth of its contour edge there; 0 where coverage is 0 (nothing
  within a pixel of the centre). Use `depth * covered` for a plain depth map.
- coverage (B, H, W) in [0, 1]: 1 on covered pixels, alpha in an outer band, 0 elsewhere.
- covered (B, H, W) bool: the hard mask, a face contains the pixel centre (no gradient).

Faces with a vertex at z <= `near` are not drawn (no clipping): meshes must lie in front of
the camera. Works on CPU and CUDA, float32 and float64 (the dtype of the vertices).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["DepthRender", "DepthRenderer", "MeshTopology", "mesh_topology", "render_depth"]

_NO_HIT = torch.iinfo(torch.int64).max
_LOW32 = 0xFFFFFFFF


class DepthRender(NamedTuple):
    """What `render_depth` returns; see the module docstring for the conventions."""

    depth: torch.Tensor  # (B, H, W), dtype of the vertices
    coverage: torch.Tensor  # (B, H, W) in [0, 1]
    covered: torch.Tensor  # (B, H, W) bool


class MeshTopology(NamedTuple):
    """Edge structure of a triangle mesh, needed to find contour edges.

    edges (E, 2) long vertex pairs (lower index first); edge_faces (E, 2) long: the edge's first
    and second face (-1 where it has one face only, i.e. on a boundary); edge_turn (E, 2) long:
    +1 where that face runs along the edge from edges[:, 0] to edges[:, 1], -1 the other way,
    0 for no face. A face's screen-space winding times its turn says on which side of the edge
    the face lies, without assuming the mesh is consistently wound.
    """

    faces: torch.Tensor  # (F, 3) long
    edges: torch.Tensor  # (E, 2) long
    edge_faces: torch.Tensor  # (E, 2) long
    edge_turn: torch.Tensor  # (E, 2) long


def mesh_topology(faces: torch.Tensor) -> MeshTopology:
    """Edges and their faces from (F, 3) faces; edges with more than two faces are refused.

    Depends only on the faces: build it once per topology (`DepthRenderer` does).
    """
    faces = _check_faces(faces)
    pairs = faces[:, [[0, 1], [1, 2], [2, 0]]].reshape(-1, 2)  # (3F, 2) as each face runs
    owner = torch.arange(faces.shape[0], device=faces.device).repeat_interleave(3)
    lo, hi = pairs.min(dim=1).values, pairs.max(dim=1).values
    turn = torch.where(pairs[:, 0] == lo, 1, -1)
    key = lo * (int(faces.max()) + 1) + hi if faces.numel() else lo
    order = torch.argsort(key, stable=True)
    key, lo, hi, owner, turn = key[order], lo[order], hi[order], owner[order], turn[order]
    unique, counts = torch.unique_consecutive(key, return_counts=True)
    if unique.numel() and int(counts.max()) > 2:
        bad = int(torch.nonzero(counts > 2)[0])
        first = int(torch.cumsum(counts, 0)[bad] - counts[bad])
        raise ValueError(
            f"faces: edge ({int(lo[first])}, {int(hi[first])}) belongs to {int(counts[bad])} "
            "faces; the depth renderer needs a mesh whose edges have at most two faces"
        )
    first = torch.cumsum(counts, 0) - counts
    second = (first + 1).clamp_max(max(key.numel() - 1, 0))
    two = counts == 2
    return MeshTopology(
        faces,
        torch.stack([lo[first], hi[first]], dim=1),
        torch.stack([owner[first], torch.where(two, owner[second], -1)], dim=1),
        torch.stack([turn[first], torch.where(two, turn[second], 0)], dim=1),
    )


def render_depth(
    vertices: torch.Tensor,
    faces: torch.Tensor | MeshTopology,
    K: torch.Tensor,
    height: int,
    width: int,
    near: float = 1e-3,
    cull_back_faces: bool = False,
) -> DepthRender:
    """Render the depth and coverage of a batch of meshes (see the module docstring).

    Args:
        vertices: (B, N, 3) float32 or float64 camera-frame vertices (OpenCV frame).
        faces: (F, 3) integer vertex indices, or a `MeshTopology` built from them (faster when
            the same faces are drawn again and again).
        K: (B, 3, 3) or (3, 3) intrinsics of the H x W image (pixel centres at integers, last
            row [0, 0, 1]); cast to the vertices' dtype.
        height, width: image size in pixels.
        near: faces with a vertex at z <= near are not drawn.
        cull_back_faces: leave faces that turn their back to the camera out of the z-buffer,
            taking a face as front-facing when its corners run counter-clockwise seen from
            outside the mesh (handshape's hand and MANO are wound so). Exact for a closed mesh
            seen from outside (tested on the hand), where it drops about 60 % of the faces from
            the z-buffer and saves a sixth to a quarter of the time at 32 x 32 (see
            docs/benchmarks.md); contour edges still come from all faces.

    Returns:
        DepthRender(depth (B, H, W), coverage (B, H, W), covered (B, H, W) bool), differentiable
        with respect to `vertices` (and K) through depth and coverage.
    """
    topology = faces if isinstance(faces, MeshTopology) else mesh_topology(faces)
    _check_inputs(vertices, topology.faces, K, height, width)
    K = K.to(vertices.dtype)
    if K.ndim == 2:
        K = K.expand(vertices.shape[0], 3, 3)
    p = vertices @ K.transpose(1, 2)
    # (2, B, N): the x and y pixel planes, each contiguous, as the flat gathers below want them.
    xy = (p[..., :2] / p[..., 2:3]).permute(2, 0, 1).contiguous()
    z = vertices[..., 2].contiguous()  # (B, N)

    with torch.no_grad():
        frame = _FaceFrame.of(xy, z, topology.faces, near)
        # Counter-clockwise seen from outside is clockwise on the image (y points down): a
        # negative signed area.
        drawn = frame.ok & (frame.area < 0) if cull_back_faces else frame.ok
        face_key = _zbuffer(frame, drawn, topology.faces.shape[0], height, width)
        covered_flat = face_key != _NO_HIT
        pixel = torch.nonzero(covered_flat).squeeze(1)
        face = face_key.index_select(0, pixel) & _LOW32
    depth_flat = xy.new_zeros(covered_flat.numel())
    if pixel.numel():
        depth_flat = depth_flat.index_put(
            (pixel,), _face_depth(xy, z, topology.faces, pixel, face, height, width)
        )
    coverage_flat = covered_flat.to(xy.dtype)

    with torch.no_grad():
        band = _band_winners(
            xy, z, frame, topology, depth_flat.detach(), covered_flat, height, width
        )
    if band is not None:
        band_pixel, edge, side = band
        alpha, z_edge = _edge_alpha_depth(
            xy, z, topology.edges, band_pixel, edge, side, height, width
        )
        under = covered_flat.index_select(0, band_pixel)
        behind = depth_flat.index_select(0, band_pixel)
        depth_flat = depth_flat.index_put(
            (band_pixel,), torch.where(under, alpha * z_edge + (1 - alpha) * behind, z_edge)
        )
        coverage_flat = coverage_flat.index_put(
            (band_pixel,), torch.where(under, torch.ones_like(alpha), alpha)
        )
    shape = (vertices.shape[0], height, width)
    return DepthRender(
        depth_flat.reshape(shape), coverage_flat.reshape(shape), covered_flat.reshape(shape)
    )


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
        cull_back_faces: bool = False,
    ) -> None:
        super().__init__()
        _check_size(height, width)
        topology = mesh_topology(torch.as_tensor(faces))
        self.register_buffer("faces", topology.faces, persistent=False)
        self.register_buffer("edges", topology.edges, persistent=False)
        self.register_buffer("edge_faces", topology.edge_faces, persistent=False)
        self.register_buffer("edge_turn", topology.edge_turn, persistent=False)
        self.height, self.width, self.near = int(height), int(width), float(near)
        self.cull_back_faces = bool(cull_back_faces)

    def forward(self, vertices: torch.Tensor, K: torch.Tensor) -> DepthRender:
        """(B, N, 3) vertices, (B, 3, 3) or (3, 3) K -> DepthRender of (B, H, W) maps."""
        topology = MeshTopology(self.faces, self.edges, self.edge_faces, self.edge_turn)
        return render_depth(
            vertices, topology, K, self.height, self.width, self.near, self.cull_back_faces
        )


# ----------------------------------------------------------------------------- checks


def _check_size(height: int, width: int) -> None:
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or int(value) != value or int(value) <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_faces(faces: torch.Tensor) -> torch.Tensor:
    if not isinstance(faces, torch.Tensor):
        raise TypeError(f"faces must be a torch.Tensor, got {type(faces).__name__}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {tuple(faces.shape)}")
    if faces.dtype.is_floating_point or faces.dtype.is_complex or faces.dtype == torch.bool:
        raise TypeError(f"faces must be an integer tensor, got {faces.dtype}")
    if faces.numel() and int(faces.min()) < 0:
        raise ValueError(f"faces holds a negative vertex index ({int(faces.min())})")
    return faces.long()


def _check_inputs(
    vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, height: int, width: int
) -> None:
    _check_size(height, width)
    if not isinstance(vertices, torch.Tensor) or vertices.ndim != 3 or vertices.shape[2] != 3:
        shape = tuple(vertices.shape) if isinstance(vertices, torch.Tensor) else type(vertices)
        raise ValueError(f"vertices must be a (B, N, 3) tensor, got {shape}")
    if vertices.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"vertices must be float32 or float64, got {vertices.dtype}")
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


# ----------------------------------------------------------------------------- rasterising
# Shared arguments below: xy (2, B, N) the vertices' pixel x and y planes, z (B, N) their depth;
# flat indices run over the batch first: pixel b * H * W + row * W + column, face b * F + f,
# edge b * E + e.
# Per-element work uses flat 1-D tensors and index_select: on a CPU, gathers and reductions
# over a trailing dimension of 2 or 3 cost several times more than the same work on columns.


def _enumerate_boxes(
    min_x: torch.Tensor,
    max_x: torch.Tensor,
    min_y: torch.Tensor,
    max_y: torch.Tensor,
    ok: torch.Tensor,
    height: int,
    width: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every pixel centre of the image inside each of M screen boxes [min, max] (floats, (M,)).

    Boxes where `ok` is false are skipped. Returns (owner (T,) index of the box, px (T,),
    py (T,)), long tensors. Works in floats up to the few boxes that hold a centre.
    """
    lo_x, hi_x = min_x.ceil().clamp_min(0), max_x.floor().clamp_max(width - 1)
    lo_y, hi_y = min_y.ceil().clamp_min(0), max_y.floor().clamp_max(height - 1)
    nx = (hi_x - lo_x + 1).clamp_min(0)
    count = torch.where(ok, nx * (hi_y - lo_y + 1).clamp_min(0), 0)
    boxes = torch.nonzero(count).squeeze(1)  # most faces of a small image hold no centre
    count, nx, lo_x, lo_y = (t.index_select(0, boxes).long() for t in (count, nx, lo_x, lo_y))
    local = torch.repeat_interleave(count)  # box of each output pixel, 0 .. len(boxes) - 1
    start = torch.cumsum(count, 0) - count
    offset = torch.arange(local.numel(), device=ok.device) - start.index_select(0, local)
    row_len = nx.index_select(0, local)
    row = offset // row_len  # one integer division (they do not vectorise); no modulo
    return (
        boxes.index_select(0, local),
        lo_x.index_select(0, local) + offset - row * row_len,
        lo_y.index_select(0, local) + row,
    )


class _FaceFrame(NamedTuple):
    """Per face of every mesh (flat index b * F + f), no gradient: corner x, y, z (three (B*F,)
    tensors each), twice the signed screen area (B*F,) and whether the face can be drawn (in
    front of the near plane, not degenerate)."""

    x: list[torch.Tensor]
    y: list[torch.Tensor]
    z: list[torch.Tensor]
    area: torch.Tensor
    ok: torch.Tensor

    @staticmethod
    def of(xy: torch.Tensor, z: torch.Tensor, faces: torch.Tensor, near: float) -> _FaceFrame:
        # Gathers along the vertex axis of contiguous (B, N) planes, one per coordinate and
        # corner: several times faster than gathering (B, N, 3) rows and slicing columns.
        cols = faces.t().contiguous()
        x, y, zc = (
            [plane.index_select(1, cols[k]).reshape(-1) for k in range(3)]
            for plane in (xy[0], xy[1], z)
        )
        area = (x[1] - x[0]) * (y[2] - y[0]) - (x[2] - x[0]) * (y[1] - y[0])
        nearest = torch.minimum(torch.minimum(zc[0], zc[1]), zc[2])
        ok = (nearest > near) & (area != 0) & area.isfinite()
        return _FaceFrame(x, y, zc, area, ok)


def _lerp_weights(
    x: list[torch.Tensor], y: list[torch.Tensor], px: torch.Tensor, py: torch.Tensor
) -> list[torch.Tensor]:
    """Unnormalised screen-space barycentrics of points (px, py) in triangles (x_k, y_k).

    w_k is twice the signed area of (point, corner k+1, corner k+2); w_0 + w_1 + w_2 is twice
    the triangle's signed area. All (M,).
    """
    dx = [xk - px for xk in x]
    dy = [yk - py for yk in y]
    return [dx[(k + 1) % 3] * dy[(k + 2) % 3] - dx[(k + 2) % 3] * dy[(k + 1) % 3] for k in range(3)]


def _zbuffer(
    frame: _FaceFrame, drawn: torch.Tensor, n_faces: int, height: int, width: int
) -> torch.Tensor:
    """(B * H * W,) int64 keys: (float32 bits of the nearest depth << 32) | face, or _NO_HIT."""
    x, y = frame.x, frame.y
    owner, px, py = _enumerate_boxes(
        torch.minimum(torch.minimum(x[0], x[1]), x[2]),
        torch.maximum(torch.maximum(x[0], x[1]), x[2]),
        torch.minimum(torch.minimum(y[0], y[1]), y[2]),
        torch.maximum(torch.maximum(y[0], y[1]), y[2]),
        drawn,
        height,
        width,
    )
    n_pixels = (x[0].numel() // n_faces) * height * width
    keys = torch.full((n_pixels,), _NO_HIT, dtype=torch.int64, device=x[0].device)
    if owner.numel() == 0:
        return keys
    w = _lerp_weights(
        [c.index_select(0, owner) for c in x],
        [c.index_select(0, owner) for c in y],
        px.to(x[0].dtype),
        py.to(x[0].dtype),
    )
    a = frame.area.index_select(0, owner)
    # Inside (edges included) when every weight has the sign of the area: either winding.
    inside = torch.nonzero((w[0] * a >= 0) & (w[1] * a >= 0) & (w[2] * a >= 0)).squeeze(1)
    owner, px, py = (t.index_select(0, inside) for t in (owner, px, py))
    w, a = [wk.index_select(0, inside) for wk in w], a.index_select(0, inside)
    inv_z = sum(w[k] / frame.z[k].index_select(0, owner) for k in range(3))
    depth = a / inv_z  # perspective-correct: 1 / z = sum_k (w_k / area) / z_k
    bits = depth.float().view(torch.int32).long()  # positive floats order like their bits
    b = owner // n_faces
    key = (bits << 32) | (owner - b * n_faces)
    pixel = b * (height * width) + py * width + px
    return keys.scatter_reduce_(0, pixel, key, "amin")


def _pixel_centres(
    pixel: torch.Tensor, height: int, width: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flat pixel indices (M,) -> (batch index, px, py), px/py in `dtype`."""
    b = pixel // (height * width)
    rest = pixel - b * (height * width)
    row = rest // width
    return b, (rest - row * width).to(dtype), row.to(dtype)


def _face_depth(
    xy: torch.Tensor,
    z: torch.Tensor,
    faces: torch.Tensor,
    pixel: torch.Tensor,
    face: torch.Tensor,
    height: int,
    width: int,
) -> torch.Tensor:
    """Differentiable perspective-correct depth of `face` at flat `pixel` (M,) -> (M,)."""
    n = xy.shape[2]
    b, px, py = _pixel_centres(pixel, height, width, xy.dtype)
    flat_x, flat_y, flat_z = xy[0].reshape(-1), xy[1].reshape(-1), z.reshape(-1)
    corner = [b * n + faces[:, k].index_select(0, face) for k in range(3)]
    x = [flat_x.index_select(0, c) for c in corner]
    y = [flat_y.index_select(0, c) for c in corner]
    w = _lerp_weights(x, y, px, py)
    inv_z = sum(w[k] / flat_z.index_select(0, corner[k]) for k in range(3))
    return (w[0] + w[1] + w[2]) / inv_z


def _contour_edges(frame: _FaceFrame, topology: MeshTopology) -> tuple[torch.Tensor, torch.Tensor]:
    """Contour edges of every mesh: (flat index b * E + edge (C,), inner side (C,) +-1).

    An edge is a contour in the image when its two faces lie on the same side of it (the
    surface folds over there), or when it has one face only. `side` is the sign of the faces'
    side (of cross(edge, point - edge start)); the band is drawn on the other one.
    """
    batch = frame.ok.numel() // topology.faces.shape[0]
    winding = torch.where(frame.ok, torch.sign(frame.area), 0).view(batch, -1)
    faces, turn = topology.edge_faces, topology.edge_turn.to(winding.dtype)
    s0 = winding.index_select(1, faces[:, 0]) * turn[:, 0]
    s1 = winding.index_select(1, faces[:, 1].clamp_min(0)) * turn[:, 1]  # 0 without a face
    contour = torch.where(faces[:, 1] < 0, s0 != 0, s0 * s1 > 0)
    flat = torch.nonzero(contour.reshape(-1)).squeeze(1)
    return flat, s0.reshape(-1).index_select(0, flat)


def _band_winners(
    xy: torch.Tensor,
    z: torch.Tensor,
    frame: _FaceFrame,
    topology: MeshTopology,
    depth_flat: torch.Tensor,
    covered_flat: torch.Tensor,
    height: int,
    width: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Per pixel the visible outer band with the largest alpha: (pixel, b * E + edge, side)."""
    flat_edge, side = _contour_edges(frame, topology)
    if flat_edge.numel() == 0:
        return None
    n_edges, n = topology.edges.shape[0], xy.shape[2]
    b = flat_edge // n_edges
    ends = topology.edges.index_select(0, flat_edge % n_edges)
    flat_x, flat_y = xy[0].reshape(-1), xy[1].reshape(-1)
    first, second = b * n + ends[:, 0], b * n + ends[:, 1]
    ax, ay = flat_x.index_select(0, first), flat_y.index_select(0, first)
    cx, cy = flat_x.index_select(0, second), flat_y.index_select(0, second)
    # The band is the parallelogram swept by the edge one pixel along its outer normal; its
    # box holds about half the pixels of the edge's box grown by a pixel on every side.
    length = torch.sqrt((cx - ax) ** 2 + (cy - ay) ** 2)
    nx, ny = side * (cy - ay) / length, -side * (cx - ax) / length
    owner, px, py = _enumerate_boxes(
        torch.minimum(ax, cx) + nx.clamp_max(0),
        torch.maximum(ax, cx) + nx.clamp_min(0),
        torch.minimum(ay, cy) + ny.clamp_max(0),
        torch.maximum(ay, cy) + ny.clamp_min(0),
        torch.ones_like(b, dtype=torch.bool),
        height,
        width,
    )
    if owner.numel() == 0:
        return None
    pixel = b.index_select(0, owner) * (height * width) + py * width + px
    alpha, z_edge = _edge_alpha_depth(
        xy,
        z,
        topology.edges,
        pixel,
        flat_edge.index_select(0, owner),
        side.index_select(0, owner),
        height,
        width,
    )
    visible = ~covered_flat.index_select(0, pixel) | (z_edge < depth_flat.index_select(0, pixel))
    keep = torch.nonzero((alpha > 0) & visible).squeeze(1)
    if keep.numel() == 0:
        return None
    owner, pixel, alpha = (t.index_select(0, keep) for t in (owner, pixel, alpha))
    key = (alpha.float().view(torch.int32).long() << 32) | owner
    best = torch.full_like(covered_flat, -1, dtype=torch.int64)
    best = best.scatter_reduce_(0, pixel, key, "amax")
    band_pixel = torch.nonzero(best >= 0).squeeze(1)
    winner = best.index_select(0, band_pixel) & _LOW32
    return band_pixel, flat_edge.index_select(0, winner), side.index_select(0, winner)


def _edge_alpha_depth(
    xy: torch.Tensor,
    z: torch.Tensor,
    edges: torch.Tensor,
    pixel: torch.Tensor,
    flat_edge: torch.Tensor,
    side: torch.Tensor,
    height: int,
    width: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Band weight and edge depth at flat `pixel` (M,) for edge b * E + e (M,), inner `side`.

    alpha = 1 - (distance of the pixel centre from the edge's line on its outer side, pixels),
    0 beside the segment's ends (projection parameter t outside [0, 1]) or a pixel or more
    away, and -1 on the inner side; z_edge: the perspective-correct depth of the edge at t.
    Differentiable with respect to xy and z. Returns ((M,), (M,)).
    """
    n_edges, n = edges.shape[0], xy.shape[2]
    b, px, py = _pixel_centres(pixel, height, width, xy.dtype)
    ends = edges.index_select(0, flat_edge % n_edges)
    first, second = b * n + ends[:, 0], b * n + ends[:, 1]
    flat_x, flat_y, flat_z = xy[0].reshape(-1), xy[1].reshape(-1), z.reshape(-1)
    ax, ay = flat_x.index_select(0, first), flat_y.index_select(0, first)
    ex, ey = flat_x.index_select(0, second) - ax, flat_y.index_select(0, second) - ay
    dx, dy = px - ax, py - ay
    length2 = ex * ex + ey * ey
    t = (dx * ex + dy * ey) / length2
    outward = -side.to(xy.dtype) * (ex * dy - ey * dx) / length2.sqrt()
    alpha = torch.where(outward > 0, (1 - outward).clamp_min(0), -1.0)
    alpha = torch.where((t >= 0) & (t <= 1), alpha, 0.0)
    inv_z = (1 - t) / flat_z.index_select(0, first) + t / flat_z.index_select(0, second)
    return alpha, 1.0 / inv_z
