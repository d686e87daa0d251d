"""The coarsening hierarchy of a mesh's graph, cached in memory and on disk.

`mesh_hierarchy` ties the graph of `handshape.geometry.graph_laplacian` and the Graclus
coarsening of `handshape.geometry.hierarchy` together behind a disk cache keyed by the topology.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from handshape.geometry.graph_laplacian import mesh_adjacency
from handshape.geometry.hierarchy import MeshHierarchy, coarsen
from handshape.safeio.atomic import atomic_write

__all__ = ["clear_memory_cache", "default_cache_dir", "hierarchy_cache_key", "mesh_hierarchy"]

logger = logging.getLogger(__name__)

# Bumped whenever the coarsening or the file layout changes, so stale cache files are not reused.
CACHE_FORMAT_VERSION = 1

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
    try:
        # The .npz suffix stops numpy from appending one to the temporary name.
        atomic_write(
            path,
            lambda tmp: np.savez(tmp, cache_key=np.array(key), **hierarchy.to_arrays()),
            suffix=".tmp.npz",
        )
    except OSError as err:
        # A read-only or full cache directory must not stop training; we simply recompute later.
        logger.warning("could not write graph cache %s (%s)", path, err)


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
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    key = hierarchy_cache_key(faces, num_vertices, levels)
    with _memory_lock:
        if key in _memory_cache:
            _memory_cache.move_to_end(key)
            return _memory_cache[key]

    path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"{key}.npz"
    hierarchy = _load(path, key)
    if hierarchy is None or hierarchy.levels != levels or hierarchy.num_vertices != num_vertices:
        hierarchy = coarsen(mesh_adjacency(faces, num_vertices), levels)
        _save(path, key, hierarchy)

    with _memory_lock:
        _memory_cache[key] = hierarchy
        _memory_cache.move_to_end(key)
        while len(_memory_cache) > _MEMORY_CACHE_SIZE:
            _memory_cache.popitem(last=False)
    return hierarchy
