"""A batched differentiable depth rasteriser in pure torch (the renderer of the depth loss L_D).

Meshes (B, N, 3) in the OpenCV camera frame (x right, y down, z forward, z > 0 in front) are
drawn with the intrinsics K of a crop (pixel centres at integer coordinates, as
`handshape.geometry.camera`) into a (B, H, W) depth map and a (B, H, W) coverage map.

How it draws (vectorised over the batch; no per-mesh or per-pixel Python loop):
1. Project the vertices. Every face enumerates the pixel centres inside its screen bounding box
   (at the paper's 32 x 32 a hand's faces are about a pixel wide, so a face has 0-2 candidates).
2. Screen-space barycentrics l_i decide which centres a face covers (edges inclusive, so a
   centre on a shared edge is claimed by both faces and the z-buffer picks one; either
   winding); the depth there is perspective-correct, z = 1 / sum_i(l_i / z_i).
3. A z-buffer keeps the nearest face per pixel: one `scatter_reduce(amin)` over int64 keys
   (the float32 bit pattern of the depth, which orders like the depth for positive numbers,
   shifted up, with the face index in the low bits), so the winner's identity comes for free.
4. The whole of it is one autograd node with a hand-written backward pass (`_Rasterise`): the
   forward pass keeps what the winners' derivatives need, so the backward pass costs a few
   vector operations per covered pixel and band pixel, not per candidate, and no autograd
   graph of small ops is built.
Back faces are culled by default where that cannot change the image: a closed, consistently
wound mesh wholly beyond the near plane (a hand); each mesh's outside is found from the sign
of the volume it encloses, so a mirrored copy is handled too.

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
spans several millimetres of a hand filling the crop). `handshape.lit.losses.rendered_depth_loss`
is the L_D that uses both outputs.

Outputs (`DepthRender`):
- depth (B, H, W): the camera z (unit of the vertices) of the surface at each pixel centre;
  in an outer band pixel the depth of its contour edge there; 0 where coverage is 0 (nothing
  within a pixel of the centre). Use `depth * covered` for a plain depth map.
- coverage (B, H, W) in [0, 1]: 1 on covered pixels, alpha in an outer band, 0 elsewhere.
- covered (B, H, W) bool: the hard mask, a face contains the pixel centre (no gradient).

Faces with a vertex at z <= `near` are not drawn (no clipping): meshes must lie in front of
the camera. Works on CPU and CUDA, float32 and float64 (the dtype of the vertices). First
derivatives only: the hand-written backward pass is not itself differentiable.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["DepthRender", "DepthRenderer", "MeshTopology", "mesh_topology", "render_depth"]

_NO_HIT = torch.iinfo(torch.int64).max
# Candidates of the z-buffer outside their face get this depth; keys from it and above are
# misses. Finite in float32, so that it survives the cast to float32 bits.
_FAR = 3e38
_FAR_KEY = int(torch.tensor(_FAR, dtype=torch.float32).view(torch.int32)) << 32
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
    return _render(vertices, topology, _closed(topology), K, height, width, near, cull_back_faces)


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
    """`render_depth` with `_closed(topology)` given (`DepthRenderer` finds it once)."""
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
        self.closed = _closed(topology)

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


def _closed(topology: MeshTopology) -> bool:
    """Every edge has two faces, running along it in opposite directions: a closed mesh wound
    consistently, so that back faces are hidden from any viewpoint outside it."""
    turn = topology.edge_turn
    return bool(((topology.edge_faces[:, 1] >= 0) & (turn[:, 0] == -turn[:, 1])).all())


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


# ----------------------------------------------------------------------------- rasterising
# Shared arguments below: xy (2, B, N) the vertices' pixel x and y planes, z (B, N) their depth;
# flat indices run over the batch first: pixel b * H * W + row * W + column, face b * F + f,
# vertex b * N + v. Per-element work uses flat 1-D tensors and index_select: on a CPU, gathers
# and reductions over a trailing dimension of 2 or 3 cost several times more than the same
# work on columns.
# Why the code looks as it does: at the paper's 32 x 32 each op works on a few ten thousand
# elements, so time goes by the number of passes over the face-sized arrays and by the few ops
# that cost far more than arithmetic there: torch.nonzero (tens of elementwise ops' worth over
# the same length), int64 division (it does not vectorise) and gathers. So masks replace
# compaction where the arrays shrink little, a 2-D nonzero splits batch and index without a
# division, rows of a box come from a float division, and nothing is evaluated twice: the
# forward pass keeps what the hand-written backward pass needs.


class _FaceFrame(NamedTuple):
    """Per face of every mesh (flat index b * F + f): corner x, y, z (three (B*F,) tensors
    each), twice the signed screen area (B*F,) and whether the face can be drawn (in front of
    the near plane, finite, not degenerate) as a bool (B*F,) tensor, or None where every
    vertex is finite and beyond the near plane (the usual case), when a face can be drawn
    exactly when its area is not 0: then masks are built from sign(area) in float arithmetic,
    many times cheaper on a CPU than comparisons and torch.where."""

    x: list[torch.Tensor]
    y: list[torch.Tensor]
    z: list[torch.Tensor]
    area: torch.Tensor
    ok: torch.Tensor | None

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
        # A sum overflows to inf, or turns NaN, where any term does (a huge finite sum only
        # sends the call down the general path, which is exact too).
        nearest, farthest = torch.aminmax(z)
        if bool(nearest > near) and bool((xy.sum() + farthest).isfinite()):
            return _FaceFrame(x, y, zc, area, None)
        nearest = torch.minimum(torch.minimum(zc[0], zc[1]), zc[2])
        ok = (nearest > near) & (area != 0) & area.isfinite()
        return _FaceFrame(x, y, zc, area, ok)


class _Boxes(NamedTuple):
    """Pixel centres inside screen boxes, one row per (box, centre) pair (T,)."""

    owner: torch.Tensor  # long: index of the box
    px: torch.Tensor  # pixel x and y, in the dtype of the boxes
    py: torch.Tensor
    pixel: torch.Tensor  # long: flat pixel index (image base + py * W + px)


def _enumerate_boxes(
    min_x: torch.Tensor,
    max_x: torch.Tensor,
    min_y: torch.Tensor,
    max_y: torch.Tensor,
    base: torch.Tensor,
    height: int,
    width: int,
    drawn: torch.Tensor | None = None,
) -> _Boxes:
    """Every pixel centre of the image inside each of M screen boxes [min, max] ((M,) finite
    floats of a `_box_dtype`). `base` (M,): the flat index of the first pixel of each box's
    image (b * H * W), in the same dtype. drawn: (M,) 0 / 1 in that dtype, 0 to skip a box."""
    lo_x, hi_x = min_x.ceil().clamp_min_(0), max_x.floor().clamp_max_(width - 1)
    lo_y, hi_y = min_y.ceil().clamp_min_(0), max_y.floor().clamp_max_(height - 1)
    nx = (hi_x - lo_x + 1).clamp_min_(0)
    count = (hi_y - lo_y + 1).clamp_min_(0).mul_(nx)
    if drawn is not None:
        count = count.mul_(drawn)
    count = count.long()
    # The box of each output without nonzero or repeat_interleave (several times slower here):
    # box i's outputs end at ends[i], so the box of output t is the number of ends <= t.
    ends = torch.cumsum(count, 0)
    total = int(ends[-1]) if ends.numel() else 0
    owner = torch.cumsum(torch.bincount(ends, minlength=total + 1)[:total], 0)
    # Offsets inside a box are exact in floats (see `_box_dtype`), and a float division
    # vectorises where an integer one does not.
    start = (ends - count).index_select(0, owner)
    offset = (torch.arange(total, device=owner.device) - start).to(min_x.dtype)
    row_len = nx.index_select(0, owner)
    row = ((offset + 0.5) / row_len).floor_()
    col = offset - row * row_len
    first = (lo_y * width + lo_x).add_(base)
    return _Boxes(
        owner,
        lo_x.index_select(0, owner) + col,
        lo_y.index_select(0, owner) + row,
        (first.index_select(0, owner) + col + row * width).long(),
    )


def _box_dtype(dtype: torch.dtype, n_pixels: int) -> torch.dtype:
    """float32 holds flat pixel indices and counts of box centres exactly and splits a box's
    centres into rows without rounding across an integer (row = floor((offset + 0.5) / row
    length)) up to 2 ** 22 pixels in all; above, float64."""
    return dtype if n_pixels <= 1 << 22 else torch.float64


def _lerp_weights(
    x: list[torch.Tensor], y: list[torch.Tensor], px: torch.Tensor, py: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Unnormalised screen-space barycentrics of points (px, py) in triangles (x_k, y_k).

    w_k is twice the signed area of (point, corner k+1, corner k+2); w_0 + w_1 + w_2 is twice
    the triangle's signed area. Returns (w, dx, dy), three (M,) tensors each, d = corner - point.
    """
    dx = [xk - px for xk in x]
    dy = [yk - py for yk in y]
    w = [dx[(k + 1) % 3] * dy[(k + 2) % 3] - dx[(k + 2) % 3] * dy[(k + 1) % 3] for k in range(3)]
    return w, dx, dy


def _zbuffer(
    frame: _FaceFrame, drawn: torch.Tensor, batch: int, height: int, width: int
) -> torch.Tensor:
    """(B * H * W,) int64 keys: (float32 bits of the nearest depth << 32) | b * F + f; a key
    of _FAR_KEY or more is a miss."""
    n_pixels = batch * height * width
    keys = torch.full((n_pixels,), _NO_HIT, dtype=torch.int64, device=drawn.device)
    dtype = _box_dtype(frame.area.dtype, n_pixels)
    base = torch.arange(0, n_pixels, height * width, dtype=dtype, device=drawn.device)
    base = base.unsqueeze(1).expand(batch, drawn.numel() // batch).reshape(-1)
    x, y, mask = frame.x, frame.y, None
    # Where culling leaves few faces (about 40 % of a closed mesh's), the drawn ones first:
    # the box arithmetic below makes many passes over its arrays. Otherwise all, masked.
    face = None
    if not drawn.is_floating_point():
        face = torch.nonzero(drawn).squeeze(1)  # the general path: boxes may be NaN
    elif float(drawn.sum()) < 0.75 * drawn.numel():
        face = _compact(drawn)
    else:
        mask = drawn.to(dtype)
    if face is not None:
        x, y = [c.index_select(0, face) for c in x], [c.index_select(0, face) for c in y]
        base = base.index_select(0, face)
    boxes = _enumerate_boxes(
        torch.minimum(torch.minimum(x[0], x[1]), x[2]).to(dtype),
        torch.maximum(torch.maximum(x[0], x[1]), x[2]).to(dtype),
        torch.minimum(torch.minimum(y[0], y[1]), y[2]).to(dtype),
        torch.maximum(torch.maximum(y[0], y[1]), y[2]).to(dtype),
        base,
        height,
        width,
        mask,
    )
    if boxes.owner.numel() == 0:
        return keys
    owner = boxes.owner if face is None else face.index_select(0, boxes.owner)
    px, py = boxes.px.to(x[0].dtype), boxes.py.to(x[0].dtype)
    w, _, _ = _lerp_weights(
        [c.index_select(0, boxes.owner) for c in x],
        [c.index_select(0, boxes.owner) for c in y],
        px,
        py,
    )
    # Inside (edges included) when every weight has the sign of the area (their sum): either
    # winding; i.e. unless min(w) < 0 < max(w). Signs, not the product min(w) max(w), which
    # could underflow to 0. Outside candidates are not dropped (nonzero costs more than the
    # arithmetic it would save) but sent to depth _FAR.
    low = torch.minimum(torch.minimum(w[0], w[1]), w[2]).sign_()
    high = torch.maximum(torch.maximum(w[0], w[1]), w[2]).sign_()
    outside = low.mul_(high).clamp_max_(0).mul_(-_FAR)  # _FAR outside, 0 inside
    inv_z = sum(w[k] / frame.z[k].index_select(0, owner) for k in range(3))
    # Perspective-correct: 1 / z = sum_k (w_k / area) / z_k. Positive inside (drawn faces are
    # finite and beyond the near plane); outside, anything from -inf to inf, but never NaN.
    depth = torch.maximum((w[0] + w[1] + w[2]) / inv_z, outside)
    bits = depth.float().view(torch.int32).long()  # positive floats order like their bits
    return keys.scatter_reduce_(0, boxes.pixel, (bits << 32) | owner, "amin")


def _compact(mask: torch.Tensor) -> torch.Tensor:
    """Indices (D,) of the ones of a float 0 / 1 mask (M,), ascending: nonzero's result, by the
    counting of `_enumerate_boxes` (about twice as fast on a CPU for dense masks)."""
    ends = torch.cumsum(mask.long(), 0)
    total = int(ends[-1]) if ends.numel() else 0
    return torch.cumsum(torch.bincount(ends, minlength=total + 1)[:total], 0)


class _FaceHits(NamedTuple):
    """The z-buffer's winners (M,) and what the backward pass needs of them."""

    pixel: torch.Tensor  # flat pixel
    corner: list[torch.Tensor]  # flat vertex index of each corner
    dx: list[torch.Tensor]  # corner - pixel centre, x and y
    dy: list[torch.Tensor]
    w: list[torch.Tensor]  # unnormalised barycentrics
    inv_z: list[torch.Tensor]  # 1 / corner depth
    area: torch.Tensor  # w_0 + w_1 + w_2
    depth: torch.Tensor  # perspective-correct depth


def _pixel_centre(
    position: torch.Tensor, width: int, n_pixels: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel x and y (M,) in `dtype` of positions (M,) in a row-major image of `n_pixels`
    (see `_box_dtype` on why a float division is exact here)."""
    at = position.to(_box_dtype(dtype, n_pixels))
    row = ((at + 0.5) / width).floor_()
    return (at - row * width).to(dtype), row.to(dtype)


def _face_hits(
    xy: torch.Tensor,
    z: torch.Tensor,
    faces: torch.Tensor,
    keys: torch.Tensor,
    covered: torch.Tensor,
    width: int,
) -> _FaceHits:
    """Depth of the winning face at every covered pixel (`covered`: keys below _FAR_KEY)."""
    batch, n = z.shape
    n_pixels = keys.numel() // batch
    hit = torch.nonzero(covered.view(batch, n_pixels))  # (M, 2): image, position
    b, position = hit[:, 0], hit[:, 1]
    pixel = b * n_pixels + position
    face = (keys.index_select(0, pixel) & _LOW32) - b * faces.shape[0]
    corner = [b * n + column.index_select(0, face) for column in faces.t().contiguous()]
    flat_x, flat_y, flat_z = xy[0].reshape(-1), xy[1].reshape(-1), z.reshape(-1)
    w, dx, dy = _lerp_weights(
        [flat_x.index_select(0, c) for c in corner],
        [flat_y.index_select(0, c) for c in corner],
        *_pixel_centre(position, width, n_pixels, xy.dtype),
    )
    inv_z = [1 / flat_z.index_select(0, c) for c in corner]
    area = w[0] + w[1] + w[2]
    depth = area / (w[0] * inv_z[0] + w[1] * inv_z[1] + w[2] * inv_z[2])
    return _FaceHits(pixel, corner, dx, dy, w, inv_z, area, depth)


def _contour_edges(
    frame: _FaceFrame, topology: MeshTopology, closed: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Contour edges of every mesh: (image b (C,), edge e (C,), inner side (C,) +-1).

    An edge is a contour in the image when its two faces lie on the same side of it (the
    surface folds over there), or when it has one face only. `side` is the sign of the faces'
    side (of cross(edge, point - edge start)); the band is drawn on the other one. closed:
    the topology is closed and consistently wound (`_closed`).
    """
    batch = frame.area.numel() // topology.faces.shape[0]
    winding = torch.sign(frame.area)
    if frame.ok is not None:
        winding = torch.where(frame.ok, winding, 0)
    winding = winding.view(batch, -1)
    faces, turn = topology.edge_faces, topology.edge_turn.to(winding.dtype)
    if closed:
        # The two faces run along the edge in opposite directions, so they lie on the same
        # side of it exactly when their windings on the image differ.
        w0 = winding.index_select(1, faces[:, 0])
        found = torch.nonzero(w0 * winding.index_select(1, faces[:, 1]) < 0)
        b, e = found[:, 0], found[:, 1]
        side = w0.reshape(-1).index_select(0, b * topology.edges.shape[0] + e)
        return b, e, side * turn[:, 0].index_select(0, e)
    s0 = winding.index_select(1, faces[:, 0]) * turn[:, 0]
    s1 = winding.index_select(1, faces[:, 1].clamp_min(0)) * turn[:, 1]  # 0 without a face
    contour = torch.where(faces[:, 1] < 0, s0 != 0, s0 * s1 > 0)
    found = torch.nonzero(contour)  # (C, 2): image, edge; no division of a flat index
    b, e = found[:, 0], found[:, 1]
    return b, e, s0.reshape(-1).index_select(0, b * topology.edges.shape[0] + e)


class _BandHits(NamedTuple):
    """Per band pixel (K,) its winning contour edge and what the backward pass needs."""

    pixel: torch.Tensor  # flat pixel
    first: torch.Tensor  # flat vertex index of the edge's ends A and C
    second: torch.Tensor
    dx: torch.Tensor  # pixel centre - A
    dy: torch.Tensor
    ex: torch.Tensor  # C - A
    ey: torch.Tensor
    inv_length: torch.Tensor  # 1 / |C - A|
    side: torch.Tensor  # inner side, +-1
    t: torch.Tensor  # the pixel centre's projection parameter on the edge, in [0, 1]
    cross: torch.Tensor  # ex * dy - ey * dx
    inv_za: torch.Tensor  # 1 / depth of A and C
    inv_zc: torch.Tensor
    alpha: torch.Tensor  # in (0, 1]
    depth: torch.Tensor  # the edge's perspective-correct depth at t


def _band_hits(
    xy: torch.Tensor,
    z: torch.Tensor,
    frame: _FaceFrame,
    topology: MeshTopology,
    closed: bool,
    depth_flat: torch.Tensor,
    covered_flat: torch.Tensor,
    height: int,
    width: int,
) -> _BandHits | None:
    """Per pixel the visible outer band with the largest alpha (see `_edge_alpha_depth`)."""
    b, e, side = _contour_edges(frame, topology, closed)
    if b.numel() == 0:
        return None
    n = xy.shape[2]
    first = b * n + topology.edges[:, 0].index_select(0, e)
    second = b * n + topology.edges[:, 1].index_select(0, e)
    flat_x, flat_y, flat_z = xy[0].reshape(-1), xy[1].reshape(-1), z.reshape(-1)
    ax, ay = flat_x.index_select(0, first), flat_y.index_select(0, first)
    ex, ey = flat_x.index_select(0, second) - ax, flat_y.index_select(0, second) - ay
    inv_length = torch.rsqrt(ex * ex + ey * ey)
    # The band is the parallelogram swept by the edge one pixel along its outer normal; its
    # box holds about half the pixels of the edge's box grown by a pixel on every side.
    nx, ny = side * ey * inv_length, -side * ex * inv_length
    cx, cy = ax + ex, ay + ey
    dtype = _box_dtype(xy.dtype, covered_flat.numel())
    boxes = _enumerate_boxes(
        (torch.minimum(ax, cx) + nx.clamp_max(0)).to(dtype),
        (torch.maximum(ax, cx) + nx.clamp_min(0)).to(dtype),
        (torch.minimum(ay, cy) + ny.clamp_max(0)).to(dtype),
        (torch.maximum(ay, cy) + ny.clamp_min(0)).to(dtype),
        (b * (height * width)).to(dtype),
        height,
        width,
    )
    if boxes.owner.numel() == 0:
        return None
    owner, pixel = boxes.owner, boxes.pixel
    edge = _EdgeAt.of(
        boxes.px.to(xy.dtype),
        boxes.py.to(xy.dtype),
        *(t.index_select(0, owner) for t in (ax, ay, ex, ey, inv_length, side)),
    )
    za = flat_z.index_select(0, first.index_select(0, owner))
    zc = flat_z.index_select(0, second.index_select(0, owner))
    z_edge = 1.0 / ((1 - edge.t) / za + edge.t / zc)
    visible = ~covered_flat.index_select(0, pixel) | (z_edge < depth_flat.index_select(0, pixel))
    keep = edge.in_band.logical_and_(visible).to(edge.alpha.dtype)
    alpha = edge.alpha * keep + (keep - 1)  # -1 where not kept: a negative key
    candidate = torch.arange(pixel.numel(), device=pixel.device)
    key = (alpha.float().view(torch.int32).long() << 32) | candidate
    best = torch.full_like(covered_flat, -1, dtype=torch.int64)
    best = best.scatter_reduce_(0, pixel, key, "amax")
    band_pixel = torch.nonzero(best >= 0).squeeze(1)
    if band_pixel.numel() == 0:
        return None
    win = best.index_select(0, band_pixel) & _LOW32
    owner = owner.index_select(0, win)
    za, zc = za.index_select(0, win), zc.index_select(0, win)
    return _BandHits(
        band_pixel,
        first.index_select(0, owner),
        second.index_select(0, owner),
        *(t.index_select(0, win) for t in (edge.dx, edge.dy, edge.ex, edge.ey, edge.inv_length)),
        side.index_select(0, owner),
        edge.t.index_select(0, win),
        edge.cross.index_select(0, win),
        1 / za,
        1 / zc,
        edge.alpha.index_select(0, win),
        z_edge.index_select(0, win),
    )


class _EdgeAt(NamedTuple):
    """An edge A -> C against a pixel centre P, all (M,): d = P - A, e = C - A."""

    dx: torch.Tensor
    dy: torch.Tensor
    ex: torch.Tensor
    ey: torch.Tensor
    inv_length: torch.Tensor
    t: torch.Tensor
    cross: torch.Tensor
    alpha: torch.Tensor
    in_band: torch.Tensor  # bool

    @staticmethod
    def of(
        px: torch.Tensor,
        py: torch.Tensor,
        ax: torch.Tensor,
        ay: torch.Tensor,
        ex: torch.Tensor,
        ey: torch.Tensor,
        inv_length: torch.Tensor,
        side: torch.Tensor,
    ) -> _EdgeAt:
        """alpha = 1 - (distance of the pixel centre from the edge's line on its outer side,
        pixels); in_band: the distance is in (0, 1) and the centre projects onto the segment
        (parameter t in [0, 1]). Only where in_band is alpha the band's weight."""
        dx, dy = px - ax, py - ay
        t = (dx * ex + dy * ey) * (inv_length * inv_length)
        cross = ex * dy - ey * dx
        outward = -side * cross * inv_length
        in_band = (outward > 0) & (outward < 1) & (t >= 0) & (t <= 1)
        return _EdgeAt(dx, dy, ex, ey, inv_length, t, cross, 1 - outward, in_band)


def _project(
    vertices: torch.Tensor, K: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, N, 3) vertices, (B, 3, 3) K -> xy (2, B, N) pixel planes, z (B, N), 1 / (K v)_z."""
    p = torch.bmm(K, vertices.transpose(1, 2))  # (B, 3, N): rows contiguous
    inv_w = 1 / p[:, 2]
    xy = p.new_empty(2, *inv_w.shape)  # written in place: no transposed copy
    torch.mul(p[:, 0], inv_w, out=xy[0])
    torch.mul(p[:, 1], inv_w, out=xy[1])
    return xy, vertices[..., 2].contiguous(), inv_w


class _Rasterise(torch.autograd.Function):
    """(vertices (B, N, 3), K (B, 3, 3)) -> flat (B*H*W,) depth, coverage and covered, with a
    hand-written backward pass.

    Autograd over the same arithmetic builds a graph of dozens of small ops per call, and the
    forward pass had to evaluate the winners a second time to build it; here the forward pass
    keeps the winners' intermediate values and the backward pass is a few vector ops and one
    index_add per coordinate. Its formulas are written out in `_face_grads`, `_band_grads` and
    `_project_grads`, and tested in float64 against finite differences and against autograd
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
        if batch * topology.faces.shape[0] > _LOW32:
            raise ValueError("render_depth: batch x faces must stay below 2 ** 32")
        xy, z, inv_w = _project(vertices, K)
        frame = _FaceFrame.of(xy, z, topology.faces, near)
        drawn = _drawn(frame, z, near, batch, cull_back_faces)
        keys = _zbuffer(frame, drawn, batch, height, width)
        covered = keys < _FAR_KEY
        hits = _face_hits(xy, z, topology.faces, keys, covered, width)
        depth = xy.new_zeros(covered.numel()).index_copy_(0, hits.pixel, hits.depth)
        coverage = covered.to(xy.dtype)
        band = _band_hits(xy, z, frame, topology, closed, depth, covered, height, width)
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
        parts = _Grads([], [], [], [])
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
            _band_grads(band, g_alpha, g_edge, parts)
        if hits.pixel.numel():
            _face_grads(hits, grad_face.index_select(0, hits.pixel), parts)
        if parts.vertex:
            vertex = torch.cat(parts.vertex)
            for grad, part in ((grad_x, parts.x), (grad_y, parts.y), (grad_z, parts.z)):
                grad.index_add_(0, vertex, torch.cat(part))
        grad_v, grad_K = _project_grads(
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


def _drawn(
    frame: _FaceFrame, z: torch.Tensor, near: float, batch: int, cull: bool | None
) -> torch.Tensor:
    """(B*F,) the faces that enter the z-buffer: float 0 / 1, or bool where the frame has an
    `ok` mask. cull: False none culled, True those wound clockwise seen from outside, None per
    mesh by its enclosed volume (a closed, consistently wound mesh; see `render_depth`)."""
    # Counter-clockwise seen from outside is clockwise on the image (y points down): a
    # negative signed area. outside: per mesh, the sign of the area of a face seen from
    # outside (its back), 0 to cull none.
    if cull is None:
        # (x, y, z) -> (pixel x, pixel y, z) keeps orientations (its Jacobian determinant is
        # fx fy / z^2 > 0), so by the divergence theorem the volume a closed mesh encloses
        # there, sum_f (area_f / 2) (mean corner z), is positive when its faces are wound
        # counter-clockwise seen from outside and negative when clockwise. Meshes reaching the
        # near plane, or whose sum is not finite, are not culled.
        volume = frame.area * (frame.z[0] + frame.z[1] + frame.z[2])
        volume = volume.view(batch, -1).sum(1)
        outside = volume.sign()
        if frame.ok is not None:
            whole = volume.isfinite() & (z > near).all(1)
            outside = torch.where(whole, outside, 0)
        outside = outside.unsqueeze(1)
    else:
        outside = frame.area.new_full((1, 1), 1.0 if cull else 0.0)
    area = frame.area.view(batch, -1)
    if frame.ok is not None:
        culled = (area * outside > 0) & (outside != 0)
        return frame.ok & ~culled.view(-1)
    # Float arithmetic on sign(area) (0 for a degenerate face): front faces -> 1, back faces
    # -> 0 where culled, 1 where not.
    side = area.sign()
    drawn = (side * outside).neg_().clamp_min_(0)  # front faces of culled meshes
    if bool((outside == 0).any()):
        drawn = drawn + side.abs() * (1 - outside.abs())  # every face of the others
    return drawn.view(-1)


def _project_grads(
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


class _Grads(NamedTuple):
    """Contributions to the flat vertex gradients: vertex index and d(loss)/d(x, y, z), lists
    of (M,) tensors, summed into the gradients by one index_add per coordinate."""

    vertex: list[torch.Tensor]
    x: list[torch.Tensor]
    y: list[torch.Tensor]
    z: list[torch.Tensor]


def _face_grads(hits: _FaceHits, grad: torch.Tensor, out: _Grads) -> None:
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


def _band_grads(band: _BandHits, g_alpha: torch.Tensor, g_edge: torch.Tensor, out: _Grads) -> None:
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
