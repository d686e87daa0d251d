"""Mesh operators shared by the losses, the mesh graph and the mesh checks: the one edge
extractor, the uniform Laplacian and face normals.

Conventions: faces (F, 3) integer vertex indices, counter-clockwise seen from outside; a
half-edge is the directed pair (faces[f, i], faces[f, (i + 1) % 3]), row 3 f + i of
`half_edges`; an edge is an unordered pair stored as (min, max).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["face_normals", "half_edges", "mesh_edges", "uniform_laplacian", "unique_edges"]


def half_edges(faces: np.ndarray) -> np.ndarray:
    """Directed edges of every face, (F, 3) -> (3F, 2); row 3 f + i starts at corner i."""
    faces = np.asarray(faces)
    return np.stack([faces, np.roll(faces, -1, axis=1)], axis=2).reshape(-1, 2)


def unique_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected edges of a triangle mesh with the half-edge -> edge map.

    Returns:
        edges: (E, 2) int64, each row sorted ascending, rows sorted lexicographically
            (degenerate pairs (i, i) of degenerate faces included: callers that build graphs
            drop them, the mesh checks count them).
        inverse: (3F,) int64, the edge of each half-edge of `half_edges`.
        counts: (E,) int64, half-edges per edge.
    """
    undirected = np.sort(half_edges(np.asarray(faces, dtype=np.int64)), axis=1)
    if undirected.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros((0, 2), dtype=np.int64), empty, empty
    edges, inverse, counts = np.unique(undirected, axis=0, return_inverse=True, return_counts=True)
    return edges, inverse.reshape(-1), counts


def mesh_edges(faces: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Unique undirected edges of a triangle mesh, (F, 3) -> (E, 2) long.

    Each edge appears once as (i, j) with i < j, rows sorted lexicographically; the pairs
    (i, i) of degenerate faces are dropped.
    """
    if isinstance(faces, torch.Tensor):
        faces = faces.detach().cpu().numpy()
    edges = unique_edges(np.asarray(faces).reshape(-1, 3))[0]
    return torch.as_tensor(edges[edges[:, 0] != edges[:, 1]], dtype=torch.long)


def uniform_laplacian(
    faces: torch.Tensor | np.ndarray, num_vertices: int, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """The uniform (umbrella) Laplacian L = I - D^-1 A of a triangle mesh, as a sparse matrix.

    (L d)_i = d_i - sum_{k in N(i)} d_k / B_i with N(i) the one-ring of vertex i and B_i = |N(i)|.
    A vertex without neighbours gets the row e_i (its neighbour mean is taken as zero).

    Args:
        faces: (F, 3) vertex indices.
        num_vertices: N.
        dtype: floating dtype of the values (computed in float64).

    Returns:
        (N, N) coalesced sparse COO tensor.
    """
    e = mesh_edges(faces)  # (E, 2), i < j
    if e.numel() and int(e.max()) >= num_vertices:
        raise ValueError(f"face index {int(e.max())} out of range for {num_vertices} vertices")
    rows = torch.cat([e[:, 0], e[:, 1]])
    cols = torch.cat([e[:, 1], e[:, 0]])
    degree = torch.bincount(rows, minlength=num_vertices).to(torch.float64)
    off = -1.0 / degree[rows]
    diag = torch.arange(num_vertices)
    idx = torch.stack([torch.cat([diag, rows]), torch.cat([diag, cols])])
    val = torch.cat([torch.ones(num_vertices, dtype=torch.float64), off]).to(dtype)
    shape = (num_vertices, num_vertices)
    return torch.sparse_coo_tensor(idx, val, shape, check_invariants=True).coalesce()


def face_normals(vertices: torch.Tensor, faces: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit normals of triangles, (B, N, 3), (F, 3) -> (B, F, 3).

    n = (v1 - v0) x (v2 - v0) / |...|, i.e. counter-clockwise faces face the viewer of a
    right-handed frame; a degenerate face gets the zero vector.
    """
    faces = torch.as_tensor(faces, device=vertices.device).long()
    v0, v1, v2 = (vertices[:, faces[:, k]] for k in range(3))
    n = torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)
    return n / torch.linalg.vector_norm(n, dim=-1, keepdim=True).clamp_min(eps)
