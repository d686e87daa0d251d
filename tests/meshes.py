"""Meshes of another topology for the tests: the hand, midpoint-subdivided.

A subdivided hand has the same surface as handshape's own but other vertices (N + E of them),
so it stands in for a model such as the official MANO (778 vertices) wherever topologies differ.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from handshape.handmodel.data import HandModelData


def midpoint_subdivision(
    vertices: np.ndarray, faces: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A new vertex on every edge, every face split in four.

    Returns (N + E, 3) vertices, (4F, 3) faces and the (E, 2) edges whose midpoints follow the
    original vertices, which keep their indices 0..N-1.
    """
    n = vertices.shape[0]
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1)
    unique, inverse = np.unique(edges, axis=0, return_inverse=True)
    mid = n + inverse.reshape(3, -1).T  # (F, 3): midpoint of edges 01, 12, 20
    a, b, c = faces.T
    ab, bc, ca = mid.T
    new_faces = np.concatenate(
        [
            np.stack([a, ab, ca], 1),
            np.stack([ab, b, bc], 1),
            np.stack([ca, bc, c], 1),
            np.stack([ab, bc, ca], 1),
        ]
    )
    midpoints = vertices[unique].mean(axis=1)
    return np.concatenate([vertices, midpoints]), new_faces, unique


def subdivided_hand(data: HandModelData) -> HandModelData:
    """The whole hand model subdivided: every per-vertex array of a midpoint is the mean of its
    edge's ends (skinning weights still sum to 1); joints are regressed from the old vertices."""
    vertices, faces, edges = midpoint_subdivision(data.v_template, data.faces)

    def extend(per_vertex: np.ndarray) -> np.ndarray:
        return np.concatenate([per_vertex, per_vertex[edges].mean(axis=1)])

    regressor = np.zeros((data.j_regressor.shape[0], len(vertices)))
    regressor[:, : data.j_regressor.shape[1]] = data.j_regressor
    return dataclasses.replace(
        data,
        v_template=vertices,
        faces=faces,
        shapedirs=extend(data.shapedirs),
        posedirs=extend(data.posedirs),
        j_regressor=regressor,
        weights=extend(data.weights),
    )
