"""The depth renderer's forward pass: vertices projected to pixel planes, every face's screen
box enumerated, the z-buffer's nearest face per pixel, the winners' perspective-correct depth,
and the anti-aliased band of each contour edge (see the package docstring); each step keeps
what the hand-written backward pass needs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from handshape.render.depth_raster.topology import MeshTopology

_NO_HIT = torch.iinfo(torch.int64).max
# Candidates of the z-buffer outside their face get this depth; keys from it and above are
# misses. Finite in float32, so that it survives the cast to float32 bits.
_FAR = 3e38
FAR_KEY = int(torch.tensor(_FAR, dtype=torch.float32).view(torch.int32)) << 32
LOW32 = 0xFFFFFFFF

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


class FaceFrame(NamedTuple):
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
    def of(xy: torch.Tensor, z: torch.Tensor, faces: torch.Tensor, near: float) -> FaceFrame:
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
            return FaceFrame(x, y, zc, area, None)
        nearest = torch.minimum(torch.minimum(zc[0], zc[1]), zc[2])
        ok = (nearest > near) & (area != 0) & area.isfinite()
        return FaceFrame(x, y, zc, area, ok)


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


def zbuffer(
    frame: FaceFrame, drawn: torch.Tensor, batch: int, height: int, width: int
) -> torch.Tensor:
    """(B * H * W,) int64 keys: (float32 bits of the nearest depth << 32) | b * F + f; a key
    of FAR_KEY or more is a miss."""
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


class FaceHits(NamedTuple):
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


def face_hits(
    xy: torch.Tensor,
    z: torch.Tensor,
    faces: torch.Tensor,
    keys: torch.Tensor,
    covered: torch.Tensor,
    width: int,
) -> FaceHits:
    """Depth of the winning face at every covered pixel (`covered`: keys below FAR_KEY)."""
    batch, n = z.shape
    n_pixels = keys.numel() // batch
    hit = torch.nonzero(covered.view(batch, n_pixels))  # (M, 2): image, position
    b, position = hit[:, 0], hit[:, 1]
    pixel = b * n_pixels + position
    face = (keys.index_select(0, pixel) & LOW32) - b * faces.shape[0]
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
    return FaceHits(pixel, corner, dx, dy, w, inv_z, area, depth)


def _contour_edges(
    frame: FaceFrame, topology: MeshTopology, closed: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Contour edges of every mesh: (image b (C,), edge e (C,), inner side (C,) +-1).

    An edge is a contour in the image when its two faces lie on the same side of it (the
    surface folds over there), or when it has one face only. `side` is the sign of the faces'
    side (of cross(edge, point - edge start)); the band is drawn on the other one. closed:
    the topology is closed and consistently wound (`is_closed`).
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


class BandHits(NamedTuple):
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


def band_hits(
    xy: torch.Tensor,
    z: torch.Tensor,
    frame: FaceFrame,
    topology: MeshTopology,
    closed: bool,
    depth_flat: torch.Tensor,
    covered_flat: torch.Tensor,
    height: int,
    width: int,
) -> BandHits | None:
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
    win = best.index_select(0, band_pixel) & LOW32
    owner = owner.index_select(0, win)
    za, zc = za.index_select(0, win), zc.index_select(0, win)
    return BandHits(
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


def project(
    vertices: torch.Tensor, K: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, N, 3) vertices, (B, 3, 3) K -> xy (2, B, N) pixel planes, z (B, N), 1 / (K v)_z."""
    p = torch.bmm(K, vertices.transpose(1, 2))  # (B, 3, N): rows contiguous
    inv_w = 1 / p[:, 2]
    xy = p.new_empty(2, *inv_w.shape)  # written in place: no transposed copy
    torch.mul(p[:, 0], inv_w, out=xy[0])
    torch.mul(p[:, 1], inv_w, out=xy[1])
    return xy, vertices[..., 2].contiguous(), inv_w
