"""Graphs of triangle meshes and the Laplacians a Chebyshev graph convolution needs.

The graph decoder of Ge et al. (CVPR 2019) treats the vertices of the hand mesh as the nodes of
a graph whose edges are the mesh edges, and filters signals on it with Chebyshev polynomials of
the rescaled normalised Laplacian (Defferrard et al., NeurIPS 2016). This module builds those
matrices with numpy/scipy only; the Graclus coarsening tree lives in
`handshape.geometry.graclus`, and `mesh_hierarchy` ties both together behind a disk cache.

Shapes: N vertices, F faces, E directed edges (each undirected edge counted twice).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

if TYPE_CHECKING:
    from handshape.geometry.graclus import MeshHierarchy

__all__ = [
    "clear_memory_cache",
    "default_cache_dir",
    "hierarchy_cache_key",
    "mesh_adjacency",
    "mesh_hierarchy",
    "normalized_laplacian",
    "rescaled_laplacian",
    "to_edge_index",
    "validate_adjacency",
]

logger = logging.getLogger(__name__)

# Bumped whenever the coarsening or the file layout changes, so stale cache files are not reused.
CACHE_FORMAT_VERSION = 1

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
    faces = faces.astype(np.int64, copy=False)
    src = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    dst = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    # Degenerate triangles repeat a vertex; they must not create self loops.
    keep = src != dst
    src, dst = src[keep], dst[keep]
    rows = np.concatenate([src, dst])
    cols = np.concatenate([dst, src])
    W = sp.csr_matrix((np.ones(rows.shape[0]), (rows, cols)), shape=(num_vertices, num_vertices))
    # An edge shared by two triangles is summed twice; the graph is unweighted, so clamp to 1.
    W.data[:] = 1.0
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

_MEMORY_CACHE_SIZE = 16
_memory_cache: OrderedDict[str, MeshHierarchy] = OrderedDict()
_memory_lock = threading.Lock()


def clear_memory_cache() -> None:
    """Forget the hierarchies kept in this process (the disk cache is left untouched)."""
    with _memory_lock:
        _memory_cache.clear()


def default_cache_dir() -> Path:
    """Directory of cached hierarchies: $HANDSHAPE_CACHE/graphs, else ~/.cache/handshape/graphs."""
    root = os.environ.get("HANDSHAPE_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "handshape"
    return base / "graphs"


def hierarchy_cache_key(faces: np.ndarray, num_vertices: int, levels: int) -> str:
    """SHA-1 hex digest identifying the hierarchy of a mesh.

    Args:
        faces: (F, 3) integer faces; hashed as contiguous int64 so the dtype and memory layout of
            the caller's array do not matter.
        num_vertices: N.
        levels: number of coarsening levels.
    """
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    h = hashlib.sha1(usedforsecurity=False)
    h.update(f"handshape-mesh-hierarchy-v{CACHE_FORMAT_VERSION}".encode())
    h.update(f"|{faces.shape}|{int(num_vertices)}|{int(levels)}|".encode())
    h.update(faces.tobytes())
    return h.hexdigest()


def _load(path: Path, key: str) -> MeshHierarchy | None:
    """Read a cached hierarchy; None when the file is missing, stale or unreadable."""
    from handshape.geometry.graclus import MeshHierarchy

    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        if str(arrays.pop("cache_key", "")) != key:
            raise ValueError("cache key mismatch")
        return MeshHierarchy.from_arrays(arrays)
    # Whatever a truncated or foreign file raises, the cache is only an optimisation: recompute.
    except (OSError, EOFError, ValueError, KeyError, IndexError, zipfile.BadZipFile) as err:
        logger.warning("ignoring unreadable graph cache %s (%s); recomputing", path, err)
        return None


def _save(path: Path, key: str, hierarchy: MeshHierarchy) -> None:
    """Write a hierarchy atomically so concurrent readers never see a partial file."""
    tmp_name: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Same directory as the target, so os.replace is a rename within one file system.
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp", delete=False
        ) as handle:
            tmp_name = handle.name
            np.savez(handle, cache_key=np.array(key), **hierarchy.to_arrays())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as err:
        # A read-only or full cache directory must not stop training; we simply recompute later.
        logger.warning("could not write graph cache %s (%s)", path, err)
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)


def mesh_hierarchy(
    faces: np.ndarray,
    num_vertices: int,
    levels: int = 4,
    cache_dir: Path | None = None,
) -> MeshHierarchy:
    """Graclus coarsening hierarchy of a triangle mesh, cached in memory and on disk.

    Args:
        faces: (F, 3) integer faces of the finest mesh.
        num_vertices: N, the number of vertices of the finest mesh.
        levels: number of coarsening levels; level `levels` is the coarsest.
        cache_dir: directory of the .npz cache; defaults to `default_cache_dir()`.

    Returns:
        The `MeshHierarchy` of `mesh_adjacency(faces, num_vertices)` coarsened `levels` times.
        Repeated calls in one process return the same (immutable) object.
    """
    # Imported here because graclus builds on this module's Laplacian helpers.
    from handshape.geometry import graclus

    faces = np.ascontiguousarray(faces, dtype=np.int64)
    key = hierarchy_cache_key(faces, num_vertices, levels)
    with _memory_lock:
        if key in _memory_cache:
            _memory_cache.move_to_end(key)
            return _memory_cache[key]

    path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"{key}.npz"
    hierarchy = _load(path, key)
    if hierarchy is None or hierarchy.levels != levels or hierarchy.num_vertices != num_vertices:
        hierarchy = graclus.coarsen(mesh_adjacency(faces, num_vertices), levels)
        _save(path, key, hierarchy)

    with _memory_lock:
        _memory_cache[key] = hierarchy
        _memory_cache.move_to_end(key)
        while len(_memory_cache) > _MEMORY_CACHE_SIZE:
            _memory_cache.popitem(last=False)
    return hierarchy
