"""The Laplacians a Chebyshev graph convolution needs, for the graph of a triangle mesh.

The graph decoder of Ge et al. (CVPR 2019) treats the vertices of the hand mesh as the nodes of
a graph whose edges are the mesh edges, and filters signals on it with Chebyshev polynomials of
the rescaled normalised Laplacian (Defferrard et al., NeurIPS 2016). numpy/scipy only.

Shapes: N vertices, F faces, E directed edges (each undirected edge counted twice).
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from handshape.geometry.mesh_ops import mesh_edges

__all__ = [
    "mesh_adjacency",
    "normalized_laplacian",
    "rescaled_laplacian",
    "to_edge_index",
    "validate_adjacency",
]

logger = logging.getLogger(__name__)

# Below this size a dense eigendecomposition is both cheaper and more robust than ARPACK, which
# also refuses k >= N.
_DENSE_EIGEN_MAX_N = 64


def mesh_adjacency(faces: np.ndarray, num_vertices: int) -> sp.csr_matrix:
    """Binary, symmetric vertex adjacency of a triangle mesh.

    Args:
        faces: (F, 3) integer vertex indices of the triangles.
        num_vertices: N, the number of vertices (vertices used by no face become isolated nodes).

    Returns:
        (N, N) float64 CSR matrix with W[i, j] = 1 when i and j share a mesh edge, 0 otherwise;
        the diagonal is empty and the indices are sorted.
    """
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {faces.shape}")
    if not np.issubdtype(faces.dtype, np.integer):
        raise TypeError(f"faces must be integers, got {faces.dtype}")
    if num_vertices < 0:
        raise ValueError(f"num_vertices must be non-negative, got {num_vertices}")
    if faces.size and (faces.min() < 0 or faces.max() >= num_vertices):
        raise ValueError(
            f"face indices must lie in [0, {num_vertices}), got [{faces.min()}, {faces.max()}]"
        )
    edges = mesh_edges(faces).numpy()  # each edge once, degenerate pairs (no self loops) dropped
    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    cols = np.concatenate([edges[:, 1], edges[:, 0]])
    W = sp.csr_matrix((np.ones(rows.shape[0]), (rows, cols)), shape=(num_vertices, num_vertices))
    W.sort_indices()
    return W


def validate_adjacency(W: sp.spmatrix) -> sp.csr_matrix:
    """Check that W is a square, symmetric, non-negative weight matrix.

    Args:
        W: (N, N) sparse weight matrix.

    Returns:
        An (N, N) float64 CSR copy of W without explicit zeros (the caller may modify it).
    """
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"adjacency must be square, got shape {W.shape}")
    W = sp.csr_matrix(W, dtype=np.float64, copy=True)
    W.eliminate_zeros()
    if W.nnz:
        if W.data.min() < 0:
            raise ValueError("adjacency weights must be non-negative")
        asym = abs(W - W.T)
        if asym.nnz and asym.max() > 1e-9 * W.data.max():
            raise ValueError("adjacency must be symmetric")
    return W


def normalized_laplacian(W: sp.spmatrix) -> sp.csr_matrix:
    """Symmetric normalised Laplacian L = I - D^-1/2 W D^-1/2.

    Args:
        W: (N, N) symmetric, non-negative weight matrix.

    Returns:
        (N, N) float64 CSR matrix. Isolated nodes (degree 0, such as the fake nodes that pad the
        coarsening tree) get an all-zero row and column: they carry no signal, and treating
        them as having an identity diagonal would only add a spurious eigenvalue of 1.
    """
    W = validate_adjacency(W)
    degree = np.asarray(W.sum(axis=1)).ravel()
    connected = degree > 0
    inv_sqrt = np.zeros_like(degree)
    inv_sqrt[connected] = 1.0 / np.sqrt(degree[connected])
    D = sp.diags(inv_sqrt)
    L = sp.diags(connected.astype(np.float64)) - D @ W @ D
    L = sp.csr_matrix(L)
    L.eliminate_zeros()
    L.sort_indices()
    return L


def _largest_eigenvalue(L: sp.csr_matrix) -> float:
    """Largest algebraic eigenvalue of a symmetric sparse matrix (0.0 for an empty matrix)."""
    n = L.shape[0]
    if n == 0 or L.nnz == 0:
        return 0.0
    if n <= _DENSE_EIGEN_MAX_N:
        return float(np.linalg.eigvalsh(L.toarray())[-1])
    # ARPACK otherwise draws its start vector from a generator that advances between calls;
    # a fixed start vector keeps lambda_max (and thus cached files) bit-for-bit reproducible.
    v0 = np.random.default_rng(0).standard_normal(n)
    try:
        value = spla.eigsh(L, k=1, which="LA", v0=v0, return_eigenvectors=False)
    except spla.ArpackNoConvergence:
        logger.warning("eigsh did not converge on a %d-node Laplacian; using a dense solver", n)
        return float(np.linalg.eigvalsh(L.toarray())[-1])
    return float(value[0])


def rescaled_laplacian(
    L: sp.spmatrix, lambda_max: float | None = None
) -> tuple[sp.csr_matrix, float]:
    """Rescale a Laplacian to the domain of Chebyshev polynomials: L~ = 2 L / lambda_max - I.

    Args:
        L: (N, N) symmetric Laplacian, e.g. from `normalized_laplacian`.
        lambda_max: its largest eigenvalue; computed with `scipy.sparse.linalg.eigsh` (largest
            algebraic) when None.

    Returns:
        (L~, lambda_max): the (N, N) float64 CSR matrix, whose spectrum lies in [-1, 1] when
        lambda_max is the true largest eigenvalue, and the lambda_max that was used.
    """
    if L.ndim != 2 or L.shape[0] != L.shape[1]:
        raise ValueError(f"Laplacian must be square, got shape {L.shape}")
    L = sp.csr_matrix(L, dtype=np.float64)
    if lambda_max is None:
        lambda_max = _largest_eigenvalue(L)
    lambda_max = float(lambda_max)
    if not np.isfinite(lambda_max) or lambda_max <= 0:
        raise ValueError(f"lambda_max must be positive and finite, got {lambda_max}")
    L_tilde = sp.csr_matrix((2.0 / lambda_max) * L - sp.identity(L.shape[0], format="csr"))
    L_tilde.sort_indices()
    return L_tilde, lambda_max


def to_edge_index(W: sp.spmatrix) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert a sparse weight matrix to torch_geometric's COO format.

    Args:
        W: (N, N) sparse weight matrix; a symmetric W yields both directions of every edge.

    Returns:
        edge_index: (2, E) int64 tensor of (source, target) pairs, sorted by source then target.
        edge_weight: (E,) float32 tensor of the matching weights. Explicit zeros are dropped.
    """
    W = sp.csr_matrix(W, copy=True)
    W.eliminate_zeros()
    W.sort_indices()
    coo = W.tocoo()
    edge_index = torch.from_numpy(np.stack([coo.row, coo.col]).astype(np.int64))
    edge_weight = torch.from_numpy(coo.data.astype(np.float32))
    return edge_index, edge_weight


# --------------------------------------------------------------------------------------------
# Cached hierarchy
# --------------------------------------------------------------------------------------------

