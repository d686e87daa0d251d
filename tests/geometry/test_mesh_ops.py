"""Mesh operators: the one edge extractor, the uniform Laplacian, face normals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handshape.geometry.mesh_ops import face_normals, mesh_edges, uniform_laplacian, unique_edges

F64 = torch.float64
# One triangle in the z = 0 plane, counter-clockwise seen from +z: its normal is +z.
TRI_GT = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=F64)
TRI_FACES = torch.tensor([[0, 1, 2]])
# Two triangles sharing the edge (1, 2).
QUAD_FACES = torch.tensor([[0, 1, 2], [2, 1, 3]])


def test_face_normals_unit_and_degenerate() -> None:
    v = torch.cat([TRI_GT, torch.zeros(1, 3, 3, dtype=F64)])  # second: degenerate
    n = face_normals(v * 3.0, TRI_FACES)
    assert torch.allclose(n[0, 0], torch.tensor([0.0, 0.0, 1.0], dtype=F64))
    assert torch.equal(n[1, 0], torch.zeros(3, dtype=F64))


def test_mesh_edges_unique_and_sorted() -> None:
    e = mesh_edges(QUAD_FACES)
    assert e.dtype == torch.long
    assert e.tolist() == [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]]
    # Degenerate faces add no self edges; numpy input works.
    assert mesh_edges(np.array([[0, 0, 1]])).tolist() == [[0, 1]]


def test_uniform_laplacian_rows() -> None:
    lap = uniform_laplacian(QUAD_FACES, 5).to_dense()
    third, half = 1.0 / 3.0, 0.5
    expected = torch.tensor(
        [
            [1.0, -half, -half, 0.0, 0.0],
            [-third, 1.0, -third, -third, 0.0],
            [-third, -third, 1.0, -third, 0.0],
            [0.0, -half, -half, 1.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 1.0],  # isolated vertex: neighbour mean taken as zero
        ]
    )
    assert torch.allclose(lap, expected.to(lap.dtype))
    assert lap.dtype == torch.float64
    assert torch.allclose(lap[:4, :4].sum(1), torch.zeros(4, dtype=torch.float64), atol=1e-15)
    with pytest.raises(ValueError):
        uniform_laplacian(QUAD_FACES, 3)


def test_unique_edges_maps_every_half_edge_and_counts_shared_ones() -> None:
    edges, inverse, counts = unique_edges(QUAD_FACES.numpy())
    assert edges.tolist() == [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]]
    assert counts.tolist() == [1, 1, 2, 1, 1]
    assert len(inverse) == 6 and edges[inverse[0]].tolist() == [0, 1]
    # The torch extractor gives the same edges, degenerate pairs dropped.
    assert mesh_edges(QUAD_FACES).tolist() == edges.tolist()
