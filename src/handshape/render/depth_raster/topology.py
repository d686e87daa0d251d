"""The edge structure of a triangle mesh the depth renderer needs: each edge's faces and on
which side of it each face runs (to find contour edges), and whether the mesh is closed and
consistently wound (where back faces may be culled)."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["MeshTopology", "check_faces", "is_closed", "mesh_topology"]


class MeshTopology(NamedTuple):
    """Edge structure of a triangle mesh, needed to find contour edges.

    edges (E, 2) long vertex pairs (lower index first); edge_faces (E, 2) long: the edge's first
    and second face (-1 where it has one face only, i.e. on a boundary); edge_turn (E, 2) long:
    +1 where that face runs along the edge from edges[:, 0] to edges[:, 1], -1 the other way,
    0 for no face. A face's screen-space winding times its turn says on which side of the edge
    the face lies, without assuming the mesh is consistently wound.
    """

    faces: torch.Tensor  # (F, 3) long
    edges: torch.Tensor  # (E, 2) long
    edge_faces: torch.Tensor  # (E, 2) long
    edge_turn: torch.Tensor  # (E, 2) long


def mesh_topology(faces: torch.Tensor) -> MeshTopology:
    """Edges and their faces from (F, 3) faces; edges with more than two faces are refused.

    Depends only on the faces: build it once per topology (`DepthRenderer` does).
    """
    faces = check_faces(faces)
    pairs = faces[:, [[0, 1], [1, 2], [2, 0]]].reshape(-1, 2)  # (3F, 2) as each face runs
    owner = torch.arange(faces.shape[0], device=faces.device).repeat_interleave(3)
    lo, hi = pairs.min(dim=1).values, pairs.max(dim=1).values
    turn = torch.where(pairs[:, 0] == lo, 1, -1)
    key = lo * (int(faces.max()) + 1) + hi if faces.numel() else lo
    order = torch.argsort(key, stable=True)
    key, lo, hi, owner, turn = key[order], lo[order], hi[order], owner[order], turn[order]
    unique, counts = torch.unique_consecutive(key, return_counts=True)
    if unique.numel() and int(counts.max()) > 2:
        bad = int(torch.nonzero(counts > 2)[0])
        first = int(torch.cumsum(counts, 0)[bad] - counts[bad])
        raise ValueError(
            f"faces: edge ({int(lo[first])}, {int(hi[first])}) belongs to {int(counts[bad])} "
            "faces; the depth renderer needs a mesh whose edges have at most two faces"
        )
    first = torch.cumsum(counts, 0) - counts
    second = (first + 1).clamp_max(max(key.numel() - 1, 0))
    two = counts == 2
    return MeshTopology(
        faces,
        torch.stack([lo[first], hi[first]], dim=1),
        torch.stack([owner[first], torch.where(two, owner[second], -1)], dim=1),
        torch.stack([turn[first], torch.where(two, turn[second], 0)], dim=1),
    )


def is_closed(topology: MeshTopology) -> bool:
    """Every edge has two faces, running along it in opposite directions: a closed mesh wound
    consistently, so that back faces are hidden from any viewpoint outside it."""
    turn = topology.edge_turn
    return bool(((topology.edge_faces[:, 1] >= 0) & (turn[:, 0] == -turn[:, 1])).all())


def check_faces(faces: torch.Tensor) -> torch.Tensor:
    if not isinstance(faces, torch.Tensor):
        raise TypeError(f"faces must be a torch.Tensor, got {type(faces).__name__}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {tuple(faces.shape)}")
    if faces.dtype.is_floating_point or faces.dtype.is_complex or faces.dtype == torch.bool:
        raise TypeError(f"faces must be an integer tensor, got {faces.dtype}")
    if faces.numel() and int(faces.min()) < 0:
        raise ValueError(f"faces holds a negative vertex index ({int(faces.min())})")
    return faces.long()
