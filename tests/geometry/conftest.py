"""Fixtures of the coarsening tests: an icosphere's graph and its Graclus hierarchy."""

from __future__ import annotations

import pytest
import scipy.sparse as sp
import trimesh

from handshape.geometry.graph_laplacian import mesh_adjacency
from handshape.geometry.hierarchy import MeshHierarchy, coarsen

LEVELS = 4


@pytest.fixture(scope="module")
def sphere_adjacency() -> sp.csr_matrix:
    mesh = trimesh.creation.icosphere(subdivisions=3)
    return mesh_adjacency(mesh.faces, len(mesh.vertices))


@pytest.fixture(scope="module")
def hierarchy(sphere_adjacency: sp.csr_matrix) -> MeshHierarchy:
    return coarsen(sphere_adjacency, LEVELS)
