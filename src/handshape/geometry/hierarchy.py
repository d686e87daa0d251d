"""A coarsened mesh as a Chebyshev graph decoder uses it: `MeshHierarchy` holds the Graclus
coarsening tree of `handshape.geometry.graclus` with each level's Laplacian scale and edges,
and pads, unpads, pools and upsamples node signals along the tree; `coarsen` builds one from a
graph.

Level 0 is the finest graph (the mesh), level `levels` the coarsest. Pooling is a reshape of the
node axis into pairs of slots that skips fake nodes; upsampling is `repeat_interleave(2)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from handshape.geometry.graclus import CoarseningTree, coarsening_tree
from handshape.geometry.graph_laplacian import (
    normalized_laplacian,
    rescaled_laplacian,
    to_edge_index,
)

__all__ = ["MeshHierarchy", "Reduce", "coarsen", "describe"]

# Version of the layout written by `MeshHierarchy.to_arrays`.
_ARRAY_FORMAT = 1


def _lambda_max(W: sp.csr_matrix) -> float:
    if W.nnz == 0:
        # Without edges the Laplacian is zero and every scale gives the same L~ = -I; 2 is the
        # bound of normalised Laplacian spectra, so it is a harmless stand-in.
        return 2.0
    return rescaled_laplacian(normalized_laplacian(W))[1]


Reduce = Literal["mean", "max"]


@dataclass(frozen=True, eq=False)
class MeshHierarchy:
    """Everything a Chebyshev graph decoder needs about a coarsened mesh (level 0 finest).

    Node signals are tensors of shape (..., S_l, C) in slot order; `pad_signal` and
    `unpad_signal` convert the finest level to and from the mesh's vertex order.

    Attributes:
        tree: the coarsening tree (graphs, parent maps, slots, padded adjacencies).
        lambda_max: per level, the largest eigenvalue of the normalised Laplacian of the level's
            graph (fake nodes do not change it), for `ChebConv(..., lambda_max=...)`.
        edge_index: per level, (2, E_l) int64 edges of the padded graph, both directions.
        edge_weight: per level, (E_l,) float32 weights matching `edge_index`.

    Instances are shared (e.g. by `mesh_hierarchy`'s cache): do not modify the tensors in place.
    """

    tree: CoarseningTree
    lambda_max: tuple[float, ...]
    edge_index: tuple[torch.Tensor, ...]
    edge_weight: tuple[torch.Tensor, ...]
    # Index tensors per (name, level, device), built on first use so GPU training does not copy
    # them from the host at every call.
    _tensors: dict[tuple[str, int, torch.device], torch.Tensor] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        n = self.tree.levels + 1
        if not len(self.lambda_max) == len(self.edge_index) == len(self.edge_weight) == n:
            raise ValueError("lambda_max, edge_index and edge_weight need one entry per level")
        if not all(np.isfinite(v) and v > 0 for v in self.lambda_max):
            raise ValueError("lambda_max must be positive and finite")

    # ---- construction and serialisation -----------------------------------------------------

    @classmethod
    def from_tree(
        cls, tree: CoarseningTree, lambda_max: Sequence[float] | None = None
    ) -> MeshHierarchy:
        """Add Laplacian scales (computed when None) and torch_geometric edges to a tree."""
        if lambda_max is None:
            lambda_max = [_lambda_max(g) for g in tree.graphs]
        edges = [to_edge_index(w) for w in tree.padded]
        return cls(
            tree=tree,
            lambda_max=tuple(float(v) for v in lambda_max),
            edge_index=tuple(e for e, _ in edges),
            edge_weight=tuple(w for _, w in edges),
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain numeric arrays (no objects, so `np.load(..., allow_pickle=False)` reads them)."""
        arrays: dict[str, np.ndarray] = {
            "format": np.array(_ARRAY_FORMAT),
            "levels": np.array(self.levels),
            "lambda_max": np.array(self.lambda_max, dtype=np.float64),
        }
        for level, graph in enumerate(self.tree.graphs):
            arrays[f"graph{level}_shape"] = np.array(graph.shape, dtype=np.int64)
            arrays[f"graph{level}_data"] = graph.data
            arrays[f"graph{level}_indices"] = graph.indices
            arrays[f"graph{level}_indptr"] = graph.indptr
        for level, parent in enumerate(self.tree.parents):
            arrays[f"parents{level}"] = np.asarray(parent)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> MeshHierarchy:
        """Inverse of `to_arrays`; raises ValueError or KeyError on inconsistent input."""
        if int(arrays["format"]) != _ARRAY_FORMAT:
            raise ValueError(f"unsupported hierarchy format {int(arrays['format'])}")
        levels = int(arrays["levels"])
        graphs = [
            sp.csr_matrix(
                (
                    arrays[f"graph{level}_data"],
                    arrays[f"graph{level}_indices"],
                    arrays[f"graph{level}_indptr"],
                ),
                shape=tuple(int(v) for v in arrays[f"graph{level}_shape"]),
            )
            for level in range(levels + 1)
        ]
        parents = [arrays[f"parents{level}"] for level in range(levels)]
        tree = CoarseningTree.from_clusters(graphs, parents)
        lambda_max = np.asarray(arrays["lambda_max"], dtype=np.float64)
        if lambda_max.shape != (levels + 1,):
            raise ValueError("lambda_max needs one entry per level")
        return cls.from_tree(tree, lambda_max.tolist())

    # ---- sizes ------------------------------------------------------------------------------

    @property
    def levels(self) -> int:
        """Number of coarsening steps; level `levels` is the coarsest."""
        return self.tree.levels

    @property
    def num_vertices(self) -> int:
        """N, the number of vertices of the original mesh."""
        return self.tree.num_real[0]

    @property
    def num_real(self) -> tuple[int, ...]:
        """Per level, the number of real nodes N_l."""
        return self.tree.num_real

    @property
    def num_slots(self) -> tuple[int, ...]:
        """Per level, the number of slots S_l = M * 2^(levels - l)."""
        return self.tree.num_slots

    @property
    def perm(self) -> np.ndarray:
        """(S_0,) original vertex id held by each finest slot, -1 for fake slots (read-only)."""
        return self.tree.slots[0]

    @property
    def is_real(self) -> tuple[np.ndarray, ...]:
        """Per level, an (S_l,) bool mask of the slots holding real nodes."""
        return tuple(s >= 0 for s in self.tree.slots)

    @property
    def adjacency(self) -> tuple[sp.csr_matrix, ...]:
        """Per level, the (S_l, S_l) padded weights (fake nodes isolated)."""
        return self.tree.padded

    def rescaled_laplacian(self, level: int) -> sp.csr_matrix:
        """(S_l, S_l) rescaled Laplacian 2 L / lambda_max - I of the padded graph of a level."""
        self._check_level(level)
        L = normalized_laplacian(self.tree.padded[level])
        return rescaled_laplacian(L, self.lambda_max[level])[0]

    def describe(self) -> str:
        """One line per level, e.g. "level 0: 1280 slots (1057 real)"."""
        return describe(self)

    # ---- signals ----------------------------------------------------------------------------

    def pad_signal(self, x: torch.Tensor) -> torch.Tensor:
        """Reorder a vertex signal into finest-level slots, with zeros at fake slots.

        Args:
            x: (..., N, C) features in the mesh's vertex order, e.g. (B, N, C).

        Returns:
            (..., S_0, C) features in slot order.
        """
        self._check_nodes(x, self.num_vertices, "pad_signal")
        # Fake slots read an appended zero row, which keeps this a single differentiable gather.
        zeros = x.new_zeros((*x.shape[:-2], 1, x.shape[-1]))
        index = self._tensor("pad", 0, x.device)
        return torch.cat([x, zeros], dim=-2).index_select(-2, index)

    def unpad_signal(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of `pad_signal`: drop fake slots and restore the vertex order.

        Args:
            x: (..., S_0, C) features in finest-level slot order.

        Returns:
            (..., N, C) features in the mesh's vertex order.
        """
        self._check_nodes(x, self.num_slots[0], "unpad_signal")
        return x.index_select(-2, self._tensor("unpad", 0, x.device))

    def upsample(self, x: torch.Tensor, times: int = 1) -> torch.Tensor:
        """Copy every node's features to its children, `times` levels down.

        Args:
            x: (..., S_l, C) features of some level l >= times.
            times: number of levels to go towards the finest.

        Returns:
            (..., S_l * 2^times, C) features of level l - times. Fake children receive copies
            too; they are isolated in the padded graphs and ignored by `pool`/`unpad_signal`.
        """
        if times < 0:
            raise ValueError(f"times must be non-negative, got {times}")
        level = self._level_of(x)
        if level - times < 0:
            raise ValueError(f"cannot upsample level {level} by {times} levels")
        r = 2**times
        # Children of slot s are slots s * r ... s * r + r - 1: an expanded view copied once by
        # reshape, much cheaper than an index_select (and, backwards, its scatter_add).
        wide = x.unsqueeze(-2).expand(*x.shape[:-1], r, x.shape[-1])
        return wide.reshape(*x.shape[:-2], x.shape[-2] * r, x.shape[-1])

    def pool(
        self, x: torch.Tensor, level_from: int, times: int = 1, reduce: Reduce = "mean"
    ) -> torch.Tensor:
        """Pool every pair of sibling slots into their parent, ignoring fake nodes.

        Each step averages (or takes the maximum of) the real children of a slot only; a slot
        without real children gets 0. With times > 1 the steps are applied one level at a
        time, as a network pooling after each layer would.

        Args:
            x: (..., S_l, C) features of level l = level_from.
            level_from: the level of x.
            times: number of levels to go towards the coarsest.
            reduce: "mean" or "max".

        Returns:
            (..., S_l / 2^times, C) features of level level_from + times.
        """
        if reduce not in ("mean", "max"):
            raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
        if times < 0 or level_from < 0 or level_from + times > self.levels:
            raise ValueError(
                f"cannot pool from level {level_from} by {times} with {self.levels} levels"
            )
        self._check_nodes(x, self.num_slots[level_from], f"pool from level {level_from}")
        for level in range(level_from, level_from + times):
            x = self._pool_once(x, self._tensor("mask", level, x.device), reduce)
        return x

    @staticmethod
    def _pool_once(x: torch.Tensor, mask: torch.Tensor, reduce: Reduce) -> torch.Tensor:
        pairs = x.reshape(*x.shape[:-2], x.shape[-2] // 2, 2, x.shape[-1])
        real = mask.view(-1, 2, 1)
        count = real.sum(dim=-2)
        if reduce == "mean":
            total = torch.where(real, pairs, 0.0).sum(dim=-2)
            return total / count.clamp(min=1).to(x.dtype)
        # -inf never wins against a real child; slots with no real child are zeroed below.
        best = torch.where(real, pairs, float("-inf")).amax(dim=-2)
        return torch.where(count > 0, best, 0.0)

    # ---- helpers ----------------------------------------------------------------------------

    def _tensor(self, name: str, level: int, device: torch.device) -> torch.Tensor:
        key = (name, level, device)
        cached = self._tensors.get(key)
        if cached is None:
            with torch.inference_mode(False):  # a cached inference tensor would break training
                cached = self._build_tensor(name, level, device)
            self._tensors[key] = cached
        return cached

    def _build_tensor(self, name: str, level: int, device: torch.device) -> torch.Tensor:
        slots = self.tree.slots[level]
        if name == "pad":
            # Fake slots point one past the last vertex, at the zero row pad_signal appends.
            array = np.where(slots >= 0, slots, self.num_vertices)
            return torch.as_tensor(array, dtype=torch.long).to(device)
        if name == "unpad":
            real_slots = np.flatnonzero(slots >= 0)
            slot_of = np.empty(self.num_vertices, dtype=np.int64)
            slot_of[slots[real_slots]] = real_slots
            return torch.from_numpy(slot_of).to(device)
        return torch.from_numpy(slots >= 0).to(device)

    def _check_level(self, level: int) -> None:
        if not 0 <= level <= self.levels:
            raise ValueError(f"level must lie in [0, {self.levels}], got {level}")

    def _level_of(self, x: torch.Tensor) -> int:
        if x.dim() < 2:
            raise ValueError(f"expected features of shape (..., nodes, C), got {tuple(x.shape)}")
        try:
            return self.num_slots.index(x.shape[-2])
        except ValueError:
            raise ValueError(
                f"{x.shape[-2]} nodes match no level; slots per level are {self.num_slots}"
            ) from None

    @staticmethod
    def _check_nodes(x: torch.Tensor, expected: int, what: str) -> None:
        if x.dim() < 2 or x.shape[-2] != expected:
            raise ValueError(
                f"{what} expects features of shape (..., {expected}, C), got {tuple(x.shape)}"
            )


def coarsen(W: sp.spmatrix, levels: int) -> MeshHierarchy:
    """Graclus-coarsen a graph `levels` times into a padded, balanced `MeshHierarchy`.

    Args:
        W: (N, N) symmetric, non-negative weights of the finest graph (e.g. `mesh_adjacency`).
        levels: number of coarsening steps.

    Returns:
        The hierarchy; level 0 has M * 2^levels slots for the M nodes of the coarsest level.
    """
    if W.shape[0] == 0:
        raise ValueError("cannot coarsen an empty graph")
    return MeshHierarchy.from_tree(coarsening_tree(W, levels))


def describe(hierarchy: MeshHierarchy) -> str:
    """Human-readable level sizes, one line per level, finest first.

    Example: "level 0: 1280 slots (1057 real)" ... "level 4: 80 slots (80 real)".
    """
    return "\n".join(
        f"level {level}: {slots} slots ({real} real)"
        for level, (slots, real) in enumerate(
            zip(hierarchy.num_slots, hierarchy.num_real, strict=True)
        )
    )
