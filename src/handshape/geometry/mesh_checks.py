"""Validity checks for triangle meshes: topology, orientation, degeneracy, self-intersection.

All functions take plain numpy arrays (``vertices`` of shape (V, 3) float, ``faces`` of shape
(F, 3) int) and are vectorised, so a ~2,000-face hand mesh is checked in a few milliseconds.

Conventions:

* An *edge* is an unordered vertex pair, stored as ``(min, max)``; a *half-edge* is the directed
  pair ``(faces[f, i], faces[f, (i + 1) % 3])``, so each face contributes three half-edges.
* Faces are counter-clockwise when seen from outside, so a closed, correctly oriented mesh has
  positive signed volume.

Coplanar contact (two triangles lying in one plane and overlapping) is out of scope for
:func:`self_intersections`; see its docstring.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from handshape.geometry.mesh_ops import half_edges, unique_edges

__all__ = [
    "boundary_edges",
    "check_closed_surface",
    "degenerate_faces",
    "duplicate_faces",
    "edge_face_counts",
    "euler_characteristic",
    "face_areas",
    "is_edge_manifold",
    "is_oriented",
    "is_vertex_manifold",
    "is_watertight",
    "non_manifold_edges",
    "non_manifold_vertices",
    "self_intersections",
    "signed_volume",
    "triangles_intersect",
]

# How many problem examples a message in check_closed_surface lists before eliding the rest.
_MAX_EXAMPLES = 5
# Pairs processed per chunk in the narrow phase; bounds the (chunk, 3, 3) temporaries.
_PAIR_CHUNK = 65536


def _as_faces(faces: np.ndarray) -> np.ndarray:
    """Return ``faces`` as a contiguous (F, 3) int64 array, raising on any other shape."""
    faces = np.asarray(faces)
    if faces.size == 0:
        return np.zeros((0, 3), dtype=np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {faces.shape}")
    if not np.issubdtype(faces.dtype, np.integer):
        raise TypeError(f"faces must be integer, got {faces.dtype}")
    return np.ascontiguousarray(faces, dtype=np.int64)


def _as_vertices(vertices: np.ndarray) -> np.ndarray:
    """Return ``vertices`` as a (V, 3) float64 array, raising on any other shape."""
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {vertices.shape}")
    return vertices


def edge_face_counts(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every undirected edge and how many faces use it.

    Args:
        faces: (F, 3) int vertex indices.

    Returns:
        edges: (E, 2) int64, each row ``(min, max)``, rows in lexicographic order.
        counts: (E,) int64, number of faces using each edge. A face with a repeated vertex
            index (e.g. ``(a, a, b)``) uses edge ``(a, b)`` twice and the self-loop ``(a, a)``
            once; such faces are reported by :func:`degenerate_faces`.
    """
    edges, _, counts = unique_edges(_as_faces(faces))
    return edges, counts


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    """Edges used by exactly one face, shape (B, 2), rows ``(min, max)``."""
    edges, counts = edge_face_counts(faces)
    return edges[counts == 1]


def non_manifold_edges(faces: np.ndarray) -> np.ndarray:
    """Edges used by more than two faces, shape (N, 2), rows ``(min, max)``."""
    edges, counts = edge_face_counts(faces)
    return edges[counts > 2]


def is_watertight(faces: np.ndarray) -> bool:
    """True iff the mesh has at least one face and every edge is shared by exactly two faces.

    Args:
        faces: (F, 3) int vertex indices.
    """
    _, counts = edge_face_counts(faces)
    return bool(counts.size > 0 and np.all(counts == 2))


def is_edge_manifold(faces: np.ndarray) -> bool:
    """True iff no edge is shared by more than two faces (boundary edges are allowed).

    Args:
        faces: (F, 3) int vertex indices.
    """
    _, counts = edge_face_counts(faces)
    return bool(np.all(counts <= 2))


def non_manifold_vertices(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """Vertices whose incident faces do not form a single fan.

    The faces around a vertex ``v`` are grouped by connectivity through edges that contain
    ``v``; a manifold vertex has exactly one group (a closed fan for interior vertices, an
    open fan for boundary vertices). The classic failure is a bow-tie: two cones touching at
    one vertex, which gives two groups.

    This only looks at fan connectivity; edges shared by more than two faces are reported by
    :func:`is_edge_manifold` instead.

    Args:
        faces: (F, 3) int vertex indices in ``[0, num_vertices)``.
        num_vertices: V, number of vertices.

    Returns:
        (K,) int64 sorted indices of non-manifold vertices. Unreferenced vertices are not
        included.
    """
    faces = _as_faces(faces)
    if faces.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    num_corners = faces.size
    half = half_edges(faces)
    _, inverse, _ = unique_edges(faces)

    # Graph nodes are face corners (3f + i); two corners are joined when they hold the same
    # vertex and their faces share an edge through that vertex. Components of this graph,
    # restricted to one vertex, are exactly that vertex's fans.
    start_corner = np.arange(num_corners)
    end_corner = 3 * (start_corner // 3) + (start_corner + 1) % 3
    start_is_lo = half[:, 0] <= half[:, 1]
    lo_corner = np.where(start_is_lo, start_corner, end_corner)
    hi_corner = np.where(start_is_lo, end_corner, start_corner)

    # Chain the half-edges of each edge in sorted order, which connects all faces on the edge
    # without materialising every pair (matters only for non-manifold edges).
    order = np.argsort(inverse, kind="stable")
    same_edge = inverse[order[1:]] == inverse[order[:-1]]
    a = order[:-1][same_edge]
    b = order[1:][same_edge]
    rows = np.concatenate([lo_corner[a], hi_corner[a]])
    cols = np.concatenate([lo_corner[b], hi_corner[b]])
    graph = coo_matrix(
        (np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(num_corners, num_corners)
    )
    _, labels = connected_components(graph, directed=False)

    corner_vertex = faces.reshape(-1)
    # Each distinct (vertex, component) pair is one fan around that vertex.
    fans = np.unique(np.stack([corner_vertex, labels], axis=1), axis=0)
    fans_per_vertex = np.bincount(fans[:, 0], minlength=num_vertices)
    return np.flatnonzero(fans_per_vertex > 1).astype(np.int64)


def is_vertex_manifold(faces: np.ndarray, num_vertices: int) -> bool:
    """True iff every referenced vertex has its incident faces forming a single fan.

    See :func:`non_manifold_vertices` for the exact criterion.

    Args:
        faces: (F, 3) int vertex indices in ``[0, num_vertices)``.
        num_vertices: V, number of vertices.
    """
    return non_manifold_vertices(faces, num_vertices).size == 0


def is_oriented(faces: np.ndarray) -> bool:
    """True iff the winding is consistent: no directed edge is used twice.

    On an edge shared by two faces this means the faces traverse it in opposite directions,
    so for a watertight mesh every edge appears exactly once in each direction. Boundary
    edges (one face) are allowed; an edge with more than two faces can never satisfy this.

    Args:
        faces: (F, 3) int vertex indices.
    """
    half = half_edges(_as_faces(faces))
    if half.shape[0] == 0:
        return True
    return np.unique(half, axis=0).shape[0] == half.shape[0]


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area of every face, shape (F,) float64.

    Args:
        vertices: (V, 3) float positions.
        faces: (F, 3) int vertex indices.
    """
    vertices = _as_vertices(vertices)
    tri = vertices[_as_faces(faces)]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return 0.5 * np.linalg.norm(cross, axis=1)


def degenerate_faces(
    vertices: np.ndarray, faces: np.ndarray, min_area: float = 1e-12
) -> np.ndarray:
    """Faces with a repeated vertex index or an area at or below ``min_area``.

    Args:
        vertices: (V, 3) float positions.
        faces: (F, 3) int vertex indices.
        min_area: absolute area threshold, in squared mesh units.

    Returns:
        (K,) int64 sorted face indices.
    """
    faces = _as_faces(faces)
    repeated = (
        (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 2] == faces[:, 0])
    )
    # `not >` rather than `<=` so that NaN areas (non-finite vertices) are flagged too.
    tiny = ~(face_areas(vertices, faces) > min_area)
    return np.flatnonzero(repeated | tiny).astype(np.int64)


def duplicate_faces(faces: np.ndarray) -> np.ndarray:
    """Faces using the same vertex set as an earlier face, regardless of winding.

    Args:
        faces: (F, 3) int vertex indices.

    Returns:
        (K,) int64 sorted indices of every face after the first of its vertex set.
    """
    faces = _as_faces(faces)
    if faces.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    _, first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
    is_dup = np.ones(faces.shape[0], dtype=bool)
    is_dup[first] = False
    return np.flatnonzero(is_dup).astype(np.int64)


def _segments_hit_triangles(
    p0: np.ndarray, p1: np.ndarray, v0: np.ndarray, v1: np.ndarray, v2: np.ndarray
) -> np.ndarray:
    """Row-wise segment/triangle crossing test (Möller–Trumbore with ``t`` in [0, 1]).

    Args:
        p0, p1: (N, 3) segment end points.
        v0, v1, v2: (N, 3) triangle corners.

    Returns:
        (N,) bool, True where segment ``p0 -> p1`` meets the closed triangle. Segments
        parallel to the triangle's plane (including coplanar ones) never count.
    """
    d = p1 - p0
    e1 = v1 - v0
    e2 = v2 - v0
    p = np.cross(d, e2)
    det = np.einsum("ij,ij->i", e1, p)
    # Relative threshold so the parallel test does not depend on the mesh's units.
    scale = np.linalg.norm(d, axis=1) * np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1)
    ok = np.abs(det) > 1e-12 * scale
    inv = np.zeros_like(det)
    inv[ok] = 1.0 / det[ok]
    s = p0 - v0
    u = np.einsum("ij,ij->i", s, p) * inv
    q = np.cross(s, e1)
    v = np.einsum("ij,ij->i", d, q) * inv
    t = np.einsum("ij,ij->i", e2, q) * inv
    return ok & (u >= 0.0) & (v >= 0.0) & (u + v <= 1.0) & (t >= 0.0) & (t <= 1.0)


def _edges_hit(tri_a: np.ndarray, tri_b: np.ndarray) -> np.ndarray:
    """(K,) bool: does any of the three edges of ``tri_a[k]`` cross triangle ``tri_b[k]``."""
    k = tri_a.shape[0]
    p0 = tri_a.reshape(-1, 3)
    p1 = np.roll(tri_a, -1, axis=1).reshape(-1, 3)
    corners = [np.repeat(tri_b[:, i], 3, axis=0) for i in range(3)]
    return _segments_hit_triangles(p0, p1, *corners).reshape(k, 3).any(axis=1)


def triangles_intersect(tri_a: np.ndarray, tri_b: np.ndarray) -> np.ndarray:
    """Row-wise exact test of whether two triangles intersect.

    Two non-coplanar triangles intersect iff an edge of one crosses the other (the ends of
    their intersection segment lie on triangle edges), so both directions are tested.
    Contact exactly on a boundary counts as intersecting, up to floating-point rounding.
    Coplanar overlap is not detected.

    Args:
        tri_a: (K, 3, 3) corners of the first triangle of each pair.
        tri_b: (K, 3, 3) corners of the second triangle of each pair.

    Returns:
        (K,) bool.
    """
    tri_a = np.asarray(tri_a, dtype=np.float64)
    tri_b = np.asarray(tri_b, dtype=np.float64)
    if tri_a.shape != tri_b.shape or tri_a.shape[1:] != (3, 3):
        raise ValueError(f"expected two (K, 3, 3) arrays, got {tri_a.shape} and {tri_b.shape}")
    return _edges_hit(tri_a, tri_b) | _edges_hit(tri_b, tri_a)


def _candidate_pairs(tri: np.ndarray) -> np.ndarray:
    """Face pairs ``(i, j)``, ``i < j``, whose axis-aligned bounding boxes overlap, (K, 2)."""
    centroids = tri.mean(axis=1)
    # Each triangle lies in the ball around its centroid reaching its farthest corner, so two
    # intersecting triangles have centroids at most twice the largest such radius apart. This
    # radius (not the circumradius) is used because slivers can reach up to 4/3 of their
    # circumradius from the centroid, and degenerate ones have an infinite circumradius.
    radius = np.linalg.norm(tri - centroids[:, None, :], axis=2).max()
    search = 2.0 * radius * (1.0 + 1e-9) + 1e-12
    pairs = cKDTree(centroids).query_pairs(search, output_type="ndarray")
    if pairs.shape[0] == 0:
        return np.zeros((0, 2), dtype=np.int64)
    lo = tri.min(axis=1)
    hi = tri.max(axis=1)
    i, j = pairs[:, 0], pairs[:, 1]
    overlap = np.all((lo[i] <= hi[j]) & (lo[j] <= hi[i]), axis=1)
    return pairs[overlap].astype(np.int64)


def self_intersections(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Pairs of faces that intersect each other and share no vertex.

    Broad phase: centroid k-d tree radius search, then an exact bounding-box overlap filter.
    Pairs sharing a vertex are dropped, because adjacent faces always touch and telling a
    fold-over at a shared vertex from legitimate contact needs a different test. Narrow phase:
    :func:`triangles_intersect`.

    Limitations: coplanar triangles that overlap within their common plane are not reported,
    and contact exactly at a boundary (a vertex on another face, touching edges) is subject
    to floating-point rounding. Both are out of scope; penetrating meshes always have
    transversal crossings, which are found.

    Args:
        vertices: (V, 3) float positions.
        faces: (F, 3) int vertex indices.

    Returns:
        (K, 2) int64 face index pairs ``(i, j)`` with ``i < j``, sorted lexicographically.
    """
    vertices = _as_vertices(vertices)
    faces = _as_faces(faces)
    if faces.shape[0] < 2:
        return np.zeros((0, 2), dtype=np.int64)
    tri = vertices[faces]
    if not np.isfinite(tri).all():
        raise ValueError("faces reference vertices with non-finite coordinates")
    pairs = _candidate_pairs(tri)
    if pairs.shape[0] == 0:
        return pairs
    fi, fj = faces[pairs[:, 0]], faces[pairs[:, 1]]
    shares_vertex = (fi[:, :, None] == fj[:, None, :]).any(axis=(1, 2))
    pairs = pairs[~shares_vertex]

    hits = np.zeros(pairs.shape[0], dtype=bool)
    for start in range(0, pairs.shape[0], _PAIR_CHUNK):
        chunk = pairs[start : start + _PAIR_CHUNK]
        hits[start : start + _PAIR_CHUNK] = triangles_intersect(tri[chunk[:, 0]], tri[chunk[:, 1]])
    result = pairs[hits]
    return result[np.lexsort((result[:, 1], result[:, 0]))]


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Signed enclosed volume (divergence theorem), positive for outward counter-clockwise faces.

    Only meaningful for a closed mesh; for an open one the value depends on the origin.

    Args:
        vertices: (V, 3) float positions.
        faces: (F, 3) int vertex indices.
    """
    vertices = _as_vertices(vertices)
    tri = vertices[_as_faces(faces)]
    # Centring reduces cancellation for meshes far from the origin; volume is translation
    # invariant for closed meshes.
    if tri.shape[0]:
        tri = tri - vertices.mean(axis=0)
    triple = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2]))
    return float(triple.sum() / 6.0)


def euler_characteristic(num_vertices: int, faces: np.ndarray) -> int:
    """V - E + F, with V = ``num_vertices`` and E the number of distinct undirected edges.

    Unreferenced vertices count towards V, each adding one (a closed genus-g surface gives
    2 - 2g when every vertex is used).

    Args:
        num_vertices: V.
        faces: (F, 3) int vertex indices.
    """
    faces = _as_faces(faces)
    edges, _ = edge_face_counts(faces)
    return int(num_vertices - edges.shape[0] + faces.shape[0])


def _examples(values: np.ndarray) -> str:
    """Format the first few rows of ``values`` for a problem message."""
    shown = [
        str(tuple(int(x) for x in row)) if np.ndim(row) else str(int(row))
        for row in values[:_MAX_EXAMPLES]
    ]
    more = ", ..." if len(values) > _MAX_EXAMPLES else ""
    return ", ".join(shown) + more


def check_closed_surface(vertices: np.ndarray, faces: np.ndarray) -> list[str]:
    """Everything that stops the mesh from being a valid closed solid's surface.

    Checks, in order: shapes and indices, finite coordinates, degenerate and duplicate
    faces, boundary and non-manifold edges, non-manifold vertices, consistent winding,
    self-intersections and positive signed volume.

    Args:
        vertices: (V, 3) float positions.
        faces: (F, 3) int vertex indices.

    Returns:
        Human-readable problem descriptions; empty when the mesh is a closed, oriented,
        manifold, non-degenerate, non-self-intersecting surface with positive volume.
    """
    try:
        vertices = _as_vertices(vertices)
        faces = _as_faces(faces)
    except (ValueError, TypeError) as err:
        return [str(err)]
    num_vertices = vertices.shape[0]
    if faces.shape[0] == 0:
        return ["mesh has no faces"]
    bad_index = np.flatnonzero(((faces < 0) | (faces >= num_vertices)).any(axis=1))
    if bad_index.size:
        # Every later check indexes vertices by faces, so nothing else can run.
        return [
            f"{bad_index.size} face(s) index vertices outside [0, {num_vertices}): "
            f"faces {_examples(bad_index)}"
        ]

    problems: list[str] = []
    non_finite = np.flatnonzero(~np.isfinite(vertices).all(axis=1))
    if non_finite.size:
        problems.append(
            f"{non_finite.size} vertex/vertices with non-finite coordinates: "
            f"{_examples(non_finite)}"
        )
    degenerate = degenerate_faces(vertices, faces)
    if degenerate.size:
        problems.append(
            f"{degenerate.size} degenerate face(s) (zero area or repeated vertex): "
            f"faces {_examples(degenerate)}"
        )
    duplicates = duplicate_faces(faces)
    if duplicates.size:
        problems.append(
            f"{duplicates.size} duplicate face(s) (same vertices as an earlier face): "
            f"faces {_examples(duplicates)}"
        )
    edges, counts = edge_face_counts(faces)
    open_edges = edges[counts == 1]
    if open_edges.size:
        problems.append(
            f"not watertight: {open_edges.shape[0]} boundary edge(s) used by one face: "
            f"{_examples(open_edges)}"
        )
    crowded = edges[counts > 2]
    if crowded.size:
        problems.append(
            f"not edge-manifold: {crowded.shape[0]} edge(s) used by more than two faces: "
            f"{_examples(crowded)}"
        )
    pinched = non_manifold_vertices(faces, num_vertices)
    if pinched.size:
        problems.append(
            f"not vertex-manifold: {pinched.size} vertex/vertices whose faces form several "
            f"fans: {_examples(pinched)}"
        )
    if not is_oriented(faces):
        problems.append("inconsistent winding: some directed edge is used by two faces")
    if non_finite.size == 0:
        crossings = self_intersections(vertices, faces)
        if crossings.size:
            problems.append(
                f"{crossings.shape[0]} self-intersecting face pair(s): {_examples(crossings)}"
            )
        volume = signed_volume(vertices, faces)
        if not volume > 0.0:
            problems.append(
                f"signed volume is {volume:.6g}, not positive (faces inward or mesh flat)"
            )
    return problems
