"""Vertex correspondences between hand meshes of different topologies.

Mesh errors need one vertex list to compare against another. When a network outputs a mesh of
another topology (the official MANO mesh, 778 vertices) than the one the ground truth is given
in (handshape's own hand), the two must be aligned first, as Ge et al. (CVPR 2019, Table 2)
aligned MANO's mesh to their own. handshape reads every target vertex off the closest point of
the source surface, once, on the rest templates:

* `similarity_align` brings the two rest templates into one frame (Umeyama on the rest joints,
  which both models define in the same order);
* `closest_point_map` expresses every target vertex as a barycentric combination of the source
  triangle its closest surface point lies on;
* `TopologyMap.apply` carries any source-topology mesh (posed, batched, differentiable) over to
  the target topology with those fixed weights.

Because the weights sum to one, the map commutes with rigid motions and translations, so it can
be computed once at rest and applied to predicted meshes in any pose or camera frame.

Shapes: N source vertices, F source faces, M target vertices, K alignment points.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

__all__ = [
    "TopologyMap",
    "closest_point_map",
    "similarity_align",
    "topology_map",
]

# Upper bound on (target, face) pairs evaluated at once; keeps the per-pair temporaries (a few
# dozen float64 values each) to a few hundred MB in the worst case of far-away targets.
_PAIR_BUDGET = 1 << 17
# Below this squared-area factor a triangle has no usable plane; its closest point is then found
# on its edges alone, which are always well defined.
_DEGENERATE_AREA = 1e-24
# How far the weights of a map may be from summing to one before it is rejected.
_WEIGHT_SUM_TOL = 1e-6


@dataclass(frozen=True, eq=False)
class TopologyMap:
    """Fixed linear map from a source mesh topology to target vertices.

    Target vertex m is ``sum_k weights[m, k] * source[vertex_index[m, k]]``.

    Attributes:
        vertex_index: (M, 3) int64 source-vertex indices per target vertex (the corners of the
            source triangle the target vertex lies on).
        weights: (M, 3) float64 barycentric weights, non-negative, each row summing to 1.
        num_source: N, the number of vertices of the source topology.
        face_index: (M,) int64 source face each target vertex lies on, -1 where the map was not
            built from faces (`identity`); kept for diagnostics.
    """

    vertex_index: np.ndarray
    weights: np.ndarray
    num_source: int
    face_index: np.ndarray

    def __post_init__(self) -> None:
        index = np.asarray(self.vertex_index)
        weights = np.asarray(self.weights, dtype=np.float64)
        face_index = np.asarray(self.face_index)
        if index.ndim != 2 or index.shape[1] != 3 or not np.issubdtype(index.dtype, np.integer):
            raise ValueError(
                f"vertex_index must be integer (M, 3), got {index.dtype} {index.shape}"
            )
        m = index.shape[0]
        if weights.shape != (m, 3):
            raise ValueError(f"weights must have shape {(m, 3)}, got {weights.shape}")
        if face_index.shape != (m,) or not np.issubdtype(face_index.dtype, np.integer):
            raise ValueError(f"face_index must be integer ({m},), got {face_index.shape}")
        if self.num_source < 1:
            raise ValueError(f"num_source must be positive, got {self.num_source}")
        if index.size and (index.min() < 0 or index.max() >= self.num_source):
            raise ValueError(
                f"vertex_index must lie in [0, {self.num_source}), "
                f"got [{index.min()}, {index.max()}]"
            )
        if not np.all(np.isfinite(weights)) or np.any(
            np.abs(weights.sum(axis=1) - 1) > _WEIGHT_SUM_TOL
        ):
            raise ValueError("weights must be finite and each row must sum to 1")
        # Frozen, so the normalised copies are stored the only way a frozen dataclass allows.
        object.__setattr__(self, "vertex_index", index.astype(np.int64, copy=False))
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "face_index", face_index.astype(np.int64, copy=False))
        object.__setattr__(self, "num_source", int(self.num_source))

    @classmethod
    def identity(cls, num_vertices: int) -> TopologyMap:
        """The map of a topology onto itself: every vertex keeps its own position."""
        index = np.repeat(np.arange(num_vertices, dtype=np.int64)[:, None], 3, axis=1)
        weights = np.zeros((num_vertices, 3))
        weights[:, 0] = 1.0
        return cls(index, weights, num_vertices, np.full(num_vertices, -1, dtype=np.int64))

    @property
    def num_target(self) -> int:
        """M, the number of target vertices the map produces."""
        return int(self.vertex_index.shape[0])

    def apply(self, vertices: torch.Tensor) -> torch.Tensor:
        """Source-topology vertices (B, N, 3) -> target-topology vertices (B, M, 3).

        Any leading batch dimensions work, including none. Differentiable with respect to
        ``vertices``; the result has their dtype and device.
        """
        if vertices.ndim < 2 or vertices.shape[-2:] != (self.num_source, 3):
            raise ValueError(
                f"TopologyMap.apply expects vertices of shape (B, {self.num_source}, 3), "
                f"got {tuple(vertices.shape)}"
            )
        if not vertices.is_floating_point():
            # Weights cast to an integer dtype would silently become zeros.
            raise TypeError(f"vertices must be floating point, got {vertices.dtype}")
        index = torch.as_tensor(self.vertex_index, device=vertices.device)
        weights = torch.as_tensor(self.weights, dtype=vertices.dtype, device=vertices.device)
        corners = vertices[..., index.reshape(-1), :]
        corners = corners.reshape(*vertices.shape[:-2], self.num_target, 3, 3)
        return (corners * weights[..., None]).sum(dim=-2)


def similarity_align(
    source_points: np.ndarray, target_points: np.ndarray, estimate_scale: bool = True
) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity transform taking source points onto target points (Umeyama 1991).

    Args:
        source_points: (K, 3) points p_k, K >= 3, not all coincident.
        target_points: (K, 3) corresponding points q_k.
        estimate_scale: when False the scale is fixed to 1 (a rigid fit).

    Returns:
        ``(scale, R, t)``: a float, a (3, 3) proper rotation (det +1, reflections are never
        returned) and a (3,) translation, all float64, minimising
        ``sum_k |scale * R @ p_k + t - q_k|^2``.
    """
    p = _as_points(source_points, "source_points")
    q = _as_points(target_points, "target_points")
    if p.shape != q.shape:
        raise ValueError(f"source_points {p.shape} and target_points {q.shape} must match")
    if p.shape[0] < 3:
        raise ValueError(f"similarity_align needs at least 3 points, got {p.shape[0]}")
    mu_p, mu_q = p.mean(axis=0), q.mean(axis=0)
    pc, qc = p - mu_p, q - mu_q
    var_p = float((pc**2).sum() / p.shape[0])
    if var_p <= 0.0:
        raise ValueError("source_points are all coincident; no rotation or scale is defined")
    u, d, vt = np.linalg.svd(qc.T @ pc / p.shape[0])
    # Flipping the weakest singular direction gives the best proper rotation when the best
    # orthogonal matrix would be a reflection.
    sign = np.ones(3)
    sign[2] = 1.0 if np.linalg.det(u) * np.linalg.det(vt) >= 0 else -1.0
    rotation = (u * sign) @ vt
    scale = float((d * sign).sum() / var_p) if estimate_scale else 1.0
    translation = mu_q - scale * rotation @ mu_p
    return scale, rotation, translation


def closest_point_map(
    source_vertices: np.ndarray, source_faces: np.ndarray, target_vertices: np.ndarray
) -> TopologyMap:
    """For every target vertex, the closest point of the source surface, as barycentric weights.

    Both meshes must already be in one frame (see `topology_map`). The closest point is exact
    (vertex, edge and face regions of each triangle); degenerate triangles are handled through
    their edges and never yield NaN. Ties between equally close triangles go to the lower face
    index.

    Args:
        source_vertices: (N, 3) float source mesh vertices.
        source_faces: (F, 3) int source triangles, F >= 1.
        target_vertices: (M, 3) float points to express on the source surface.

    Returns:
        A `TopologyMap` with ``num_source = N`` and M rows.
    """
    src = _as_points(source_vertices, "source_vertices")
    tgt = _as_points(target_vertices, "target_vertices")
    faces = np.asarray(source_faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"source_faces must be integer (F, 3), got {faces.dtype} {faces.shape}")
    if faces.shape[0] == 0:
        raise ValueError("source_faces is empty; there is no surface to project onto")
    if faces.min() < 0 or faces.max() >= src.shape[0]:
        raise ValueError(
            f"source_faces must index [0, {src.shape[0]}), got [{faces.min()}, {faces.max()}]"
        )
    faces = faces.astype(np.int64, copy=False)
    m = tgt.shape[0]
    if m == 0:
        empty = np.zeros((0, 3))
        return TopologyMap(empty.astype(np.int64), empty, src.shape[0], np.zeros(0, np.int64))

    # Pruning, exact: the nearest surface vertex bounds the surface distance from above, and the
    # triangle holding the closest point lies within that bound plus its circumscribing radius
    # (about its centroid). Only those triangles are tested, instead of all F per target.
    corners = src[faces]  # (F, 3, 3)
    centroids = corners.mean(axis=1)
    radii = np.linalg.norm(corners - centroids[:, None], axis=2).max(axis=1)
    used = np.unique(faces)
    upper, _ = cKDTree(src[used]).query(tgt)
    slack = 1e-9 * (1.0 + float(np.abs(src).max()) + float(np.abs(tgt).max()))
    search = upper + radii.max() + slack
    centroid_tree = cKDTree(centroids)

    best_d2 = np.full(m, np.inf)
    best_face = np.zeros(m, dtype=np.int64)
    best_weights = np.zeros((m, 3))
    counts = centroid_tree.query_ball_point(tgt, search, return_length=True)
    for rows in _chunks_by_budget(np.asarray(counts), max(_PAIR_BUDGET, faces.shape[0])):
        lists = centroid_tree.query_ball_point(tgt[rows], search[rows])
        sizes = np.fromiter((len(c) for c in lists), dtype=np.int64, count=len(lists))
        pair_face = np.fromiter(
            itertools.chain.from_iterable(lists), dtype=np.int64, count=int(sizes.sum())
        )
        pair_target = np.repeat(rows, sizes)
        # The per-face radius is tighter than the global one used by the ball query.
        near = (
            np.linalg.norm(tgt[pair_target] - centroids[pair_face], axis=1) - radii[pair_face]
            <= upper[pair_target] + slack
        )
        pair_face, pair_target = pair_face[near], pair_target[near]
        d2, weights = _closest_on_triangles(tgt[pair_target], corners[pair_face])
        # Per target, the closest pair; lexsort's stability hands ties to the lower face.
        order = np.lexsort((pair_face, d2, pair_target))
        first = np.ones(order.size, dtype=bool)
        first[1:] = pair_target[order][1:] != pair_target[order][:-1]
        pick = order[first]
        t = pair_target[pick]
        best_d2[t] = d2[pick]
        best_face[t] = pair_face[pick]
        best_weights[t] = weights[pick]

    if not np.all(np.isfinite(best_d2)):
        # The pruning bound guarantees a candidate; reaching this is a bug, not bad input.
        raise RuntimeError("closest_point_map found no triangle for some target vertices")
    return TopologyMap(faces[best_face], best_weights, src.shape[0], best_face)


def topology_map(
    source_vertices: np.ndarray,
    source_faces: np.ndarray,
    source_joints: np.ndarray,
    target_vertices: np.ndarray,
    target_joints: np.ndarray,
) -> TopologyMap:
    """The map from one hand model's topology to another's, from their rest templates.

    The source template is first put on the target template by a similarity transform fitted on
    the rest joints (the two models may sit in different frames and differ in size), then every
    target vertex is read off the closest point of the aligned source surface.

    Args:
        source_vertices: (N, 3) rest template of the source model (e.g. MANO's ``v_template``).
        source_faces: (F, 3) int triangles of the source model.
        source_joints: (21, 3) rest joints of the source model, in the project joint order.
        target_vertices: (M, 3) rest template of the target model (e.g. handshape's own).
        target_joints: (21, 3) rest joints of the target model, same order.

    Returns:
        A `TopologyMap` from N source vertices to M target vertices; apply it to source-topology
        meshes in any frame (the alignment is only used to build it).
    """
    scale, rotation, translation = similarity_align(source_joints, target_joints)
    aligned = scale * _as_points(source_vertices, "source_vertices") @ rotation.T + translation
    return closest_point_map(aligned, source_faces, target_vertices)


def _as_points(points: np.ndarray, name: str) -> np.ndarray:
    """``points`` as finite float64 (K, 3), raising a ValueError naming ``name`` otherwise."""
    out = np.asarray(points, dtype=np.float64)
    if out.ndim != 2 or out.shape[1] != 3:
        raise ValueError(f"{name} must have shape (K, 3), got {out.shape}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} contains non-finite values")
    return out


def _chunks_by_budget(counts: np.ndarray, budget: int) -> list[np.ndarray]:
    """Split row indices into consecutive runs whose counts add up to at most ``budget``.

    A single row over budget gets a run of its own (the caller makes budget >= any count).
    """
    chunks: list[np.ndarray] = []
    start, total = 0, 0
    for i, c in enumerate(counts.tolist()):
        if total + c > budget and i > start:
            chunks.append(np.arange(start, i))
            start, total = i, 0
        total += c
    chunks.append(np.arange(start, len(counts)))
    return chunks


def _closest_on_triangles(points: np.ndarray, tri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest point of each triangle to each point, pairwise.

    Args:
        points: (P, 3) query points.
        tri: (P, 3, 3) triangle corners a, b, c.

    Returns:
        ``(d2, weights)``: (P,) squared distances and (P, 3) barycentric weights of the closest
        points, non-negative and summing to 1.

    The closest point is either the orthogonal projection, when it falls inside the triangle, or
    the closest point of one of the three edges. Taking the best of those four candidates avoids
    the division by the area that Voronoi-region formulations need, so a degenerate triangle
    (a sliver, a segment, a point) falls back to its edges without NaN.
    """
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    ab, ac, ap = b - a, c - a, points - a
    d00 = np.einsum("ij,ij->i", ab, ab)
    d01 = np.einsum("ij,ij->i", ab, ac)
    d11 = np.einsum("ij,ij->i", ac, ac)
    d20 = np.einsum("ij,ij->i", ap, ab)
    d21 = np.einsum("ij,ij->i", ap, ac)
    denom = d00 * d11 - d01 * d01  # |ab x ac|^2, the squared double area
    scale2 = np.maximum(np.maximum(d00, d11), np.finfo(np.float64).tiny)
    flat = denom <= _DEGENERATE_AREA * scale2 * scale2
    safe = np.where(flat, 1.0, denom)
    v = np.where(flat, 0.0, (d11 * d20 - d01 * d21) / safe)
    w = np.where(flat, 0.0, (d00 * d21 - d01 * d20) / safe)
    u = 1.0 - v - w
    inside = ~flat & (u >= 0) & (v >= 0) & (w >= 0)
    face_point = u[:, None] * a + v[:, None] * b + w[:, None] * c
    face_d2 = np.where(inside, ((points - face_point) ** 2).sum(axis=1), np.inf)

    best_d2 = face_d2
    best_w = np.stack([u, v, w], axis=1)
    # Edge k runs from corner k to corner k+1, so its weights sit in those two columns.
    for k in range(3):
        p0, p1 = tri[:, k], tri[:, (k + 1) % 3]
        edge = p1 - p0
        length2 = np.einsum("ij,ij->i", edge, edge)
        along = np.einsum("ij,ij->i", points - p0, edge)
        t = np.clip(along / np.maximum(length2, np.finfo(np.float64).tiny), 0.0, 1.0)
        d2 = ((points - (p0 + t[:, None] * edge)) ** 2).sum(axis=1)
        better = d2 < best_d2
        edge_w = np.zeros_like(best_w)
        edge_w[:, k] = 1.0 - t
        edge_w[:, (k + 1) % 3] = t
        best_d2 = np.where(better, d2, best_d2)
        best_w = np.where(better[:, None], edge_w, best_w)
    return best_d2, best_w
