"""Graclus multilevel coarsening and the balanced binary tree used for graph pooling.

Following the multilevel scheme of Defferrard et al. (NeurIPS 2016), each level greedily pairs
every node with at most one neighbour, choosing the neighbour that maximises the local
normalised-cut score w_ij * (1/d_i + 1/d_j), and merges each pair into one node of the coarser
graph. Unlike the reference implementation, every ordering here is a stable sort with no random
start, so the level sizes do not depend on the numpy version or a seed.

The clusters are then arranged in a balanced binary tree: the coarsest level's M nodes occupy
slots 0..M-1, and every slot i of level l+1 owns slots 2i and 2i+1 of level l, filled with its
real children and "fake" nodes for the rest. Level l therefore has M * 2^(levels - l) slots, so
pooling is a reshape of the node axis into pairs and upsampling is `repeat_interleave(2)`.
Fake nodes are isolated in the padded graphs and are skipped by `MeshHierarchy.pool`.

Level 0 is the finest graph (the mesh), level `levels` the coarsest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from handshape.geometry.graph_laplacian import (
    normalized_laplacian,
    rescaled_laplacian,
    to_edge_index,
    validate_adjacency,
)

__all__ = [
    "CoarseningTree",
    "MeshHierarchy",
    "cluster_graph",
    "coarsen",
    "coarsening_tree",
    "describe",
    "graclus_clusters",
    "graclus_levels",
]

# Version of the layout written by `MeshHierarchy.to_arrays`.
_ARRAY_FORMAT = 1


def _drop_self_loops(W: sp.csr_matrix) -> sp.csr_matrix:
    W = sp.csr_matrix(W - sp.diags(W.diagonal()))
    W.eliminate_zeros()
    W.sort_indices()
    return W


def _degree(W: sp.csr_matrix) -> np.ndarray:
    return np.asarray(W.sum(axis=1)).ravel()


def graclus_clusters(W: sp.spmatrix, order: np.ndarray | None = None) -> np.ndarray:
    """One level of Graclus matching: pair every node with at most one neighbour.

    Nodes are visited in `order`; an unmatched node is paired with the unmatched neighbour j
    maximising w_ij * (1/d_i + 1/d_j), where d is the total edge weight of a node (ties go to the
    smallest j), and otherwise stays alone.

    Args:
        W: (N, N) symmetric, non-negative weights; self loops are ignored.
        order: (N,) permutation giving the visiting order; by default nodes are visited by
            ascending total edge weight, ties by index (a stable sort).

    Returns:
        (N,) int64 cluster id of every node. Ids are numbered 0..K-1 in the order clusters are
        created, and every cluster holds one or two nodes.
    """
    W = _drop_self_loops(validate_adjacency(W))
    n = W.shape[0]
    degree = _degree(W)
    if order is None:
        # Low-weight nodes have the fewest options, so they choose first; a stable sort keeps
        # the result independent of the sorting algorithm numpy happens to use for ties.
        order = np.argsort(degree, kind="stable")
    else:
        order = np.asarray(order, dtype=np.int64)
        if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
            raise ValueError("order must be a permutation of range(N)")
    inv_degree = np.zeros(n)
    np.divide(1.0, degree, out=inv_degree, where=degree > 0)

    cluster = np.full(n, -1, dtype=np.int64)
    indptr, indices, weights = W.indptr, W.indices, W.data
    next_id = 0
    for i in order:
        if cluster[i] >= 0:
            continue
        cluster[i] = next_id
        start, stop = indptr[i], indptr[i + 1]
        neighbours = indices[start:stop]
        free = cluster[neighbours] < 0
        if free.any():
            candidates = neighbours[free]
            score = weights[start:stop][free] * (inv_degree[i] + inv_degree[candidates])
            # CSR column indices are sorted and argmax returns the first maximum, so ties go to
            # the smallest neighbour index.
            cluster[candidates[np.argmax(score)]] = next_id
        next_id += 1
    return cluster


def cluster_graph(W: sp.spmatrix, clusters: np.ndarray) -> sp.csr_matrix:
    """Collapse clusters into nodes, summing the weights of the edges between them.

    Args:
        W: (N, N) symmetric, non-negative weights.
        clusters: (N,) cluster id of every node, covering 0..K-1.

    Returns:
        (K, K) float64 CSR weights; edges inside a cluster are dropped (no self loops).
    """
    W = validate_adjacency(W)
    clusters = np.asarray(clusters, dtype=np.int64)
    n = W.shape[0]
    if clusters.shape != (n,):
        raise ValueError(f"clusters must have shape ({n},), got {clusters.shape}")
    k = int(clusters.max()) + 1 if n else 0
    if n and (clusters.min() < 0 or np.bincount(clusters, minlength=k).min() == 0):
        raise ValueError("cluster ids must cover 0..K-1 without gaps")
    P = sp.csr_matrix((np.ones(n), (np.arange(n), clusters)), shape=(n, k))
    return _drop_self_loops(sp.csr_matrix(P.T @ W @ P))


def graclus_levels(
    W: sp.spmatrix, levels: int
) -> tuple[tuple[sp.csr_matrix, ...], tuple[np.ndarray, ...]]:
    """Coarsen a graph `levels` times with Graclus.

    Args:
        W: (N, N) symmetric, non-negative weights of the finest graph (self loops are dropped).
        levels: number of coarsening steps.

    Returns:
        graphs: levels + 1 CSR weight matrices, graphs[0] the input, graphs[l] of shape
            (N_l, N_l).
        parents: levels arrays, parents[l] of shape (N_l,) mapping each node of level l to its
            cluster at level l + 1.
    """
    if levels < 0:
        raise ValueError(f"levels must be non-negative, got {levels}")
    graphs = [_drop_self_loops(validate_adjacency(W))]
    parents: list[np.ndarray] = []
    for _ in range(levels):
        clusters = graclus_clusters(graphs[-1])
        parents.append(clusters)
        graphs.append(cluster_graph(graphs[-1], clusters))
    return tuple(graphs), tuple(parents)


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=np.int64)
    array.flags.writeable = False
    return array


def _balanced_slots(
    graphs: Sequence[sp.csr_matrix], parents: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Slot -> node id (or -1) per level of the balanced binary tree, finest level first."""
    num_coarsest = graphs[-1].shape[0]
    slots = [np.arange(num_coarsest, dtype=np.int64)]
    for level in reversed(range(len(parents))):
        parent = np.asarray(parents[level], dtype=np.int64)
        num_coarse = graphs[level + 1].shape[0]
        counts = np.bincount(parent, minlength=num_coarse)
        if counts.size != num_coarse or counts.min(initial=1) < 1 or counts.max(initial=1) > 2:
            raise ValueError(f"every node of level {level + 1} needs one or two children")
        # Grouping children by parent with a stable sort keeps siblings in ascending id order.
        by_parent = np.argsort(parent, kind="stable")
        first = np.cumsum(counts) - counts
        first_child = by_parent[first]
        second_child = np.where(counts == 2, by_parent[np.minimum(first + 1, parent.size - 1)], -1)

        coarse = slots[-1]
        real = coarse >= 0
        fine = np.full(2 * coarse.size, -1, dtype=np.int64)
        fine[0::2][real] = first_child[coarse[real]]
        fine[1::2][real] = second_child[coarse[real]]
        slots.append(fine)
    slots.reverse()
    return slots


def _pad_graph(W: sp.csr_matrix, slots: np.ndarray) -> sp.csr_matrix:
    """Relabel W's nodes by slot; fake slots become isolated nodes."""
    real_slots = np.flatnonzero(slots >= 0)
    slot_of = np.empty(W.shape[0], dtype=np.int64)
    slot_of[slots[real_slots]] = real_slots
    coo = W.tocoo()
    padded = sp.csr_matrix(
        (coo.data, (slot_of[coo.row], slot_of[coo.col])), shape=(slots.size, slots.size)
    )
    padded.sort_indices()
    return padded


@dataclass(frozen=True, eq=False)
class CoarseningTree:
    """Graclus clusters arranged as a balanced binary tree (level 0 finest).

    Attributes:
        graphs: per level, the (N_l, N_l) CSR weights of the coarsened graph (no fake nodes).
        parents: per level l < levels, (N_l,) cluster id at level l + 1 of each node of level l.
        slots: per level, (S_l,) node id of level l held by each slot, -1 for a fake node, with
            S_l = M * 2^(levels - l) and M = N_levels. Slot s of level l hangs below slot s // 2
            of level l + 1. At level 0 the node ids are the original vertex ids.
        padded: per level, the (S_l, S_l) CSR weights in slot order; fake nodes are isolated.

    The numpy arrays are read-only. Build instances with `coarsening_tree` or `from_clusters`.
    """

    graphs: tuple[sp.csr_matrix, ...]
    parents: tuple[np.ndarray, ...]
    slots: tuple[np.ndarray, ...]
    padded: tuple[sp.csr_matrix, ...]

    def __post_init__(self) -> None:
        levels = len(self.parents)
        if not len(self.graphs) == len(self.slots) == len(self.padded) == levels + 1:
            raise ValueError("graphs, slots and padded need one entry per level (levels + 1)")
        sizes = [g.shape[0] for g in self.graphs]
        num_coarsest = sizes[-1]
        if not np.array_equal(self.slots[-1], np.arange(num_coarsest)):
            raise ValueError("the coarsest level must hold its nodes in order, without fakes")
        for level in range(levels + 1):
            slots = self.slots[level]
            num_slots = num_coarsest * 2 ** (levels - level)
            if slots.shape != (num_slots,) or self.padded[level].shape != (num_slots,) * 2:
                raise ValueError(f"level {level} must have {num_slots} slots")
            real = slots[slots >= 0]
            if not np.array_equal(np.sort(real), np.arange(sizes[level])):
                raise ValueError(f"level {level} slots must hold every node exactly once")
            if level == levels:
                continue
            parent = self.parents[level]
            if parent.shape != (sizes[level],):
                raise ValueError(f"parents[{level}] must have shape ({sizes[level]},)")
            if parent.size and (parent.min() < 0 or parent.max() >= sizes[level + 1]):
                raise ValueError(f"parents[{level}] must index the nodes of level {level + 1}")
            real_slots = np.flatnonzero(slots >= 0)
            if not np.array_equal(
                self.slots[level + 1][real_slots // 2], parent[slots[real_slots]]
            ):
                raise ValueError(f"slots of level {level} disagree with parents[{level}]")

    @classmethod
    def from_clusters(
        cls, graphs: Sequence[sp.spmatrix], parents: Sequence[np.ndarray]
    ) -> CoarseningTree:
        """Arrange per-level graphs and parent maps (as from `graclus_levels`) into the tree."""
        graphs = tuple(sp.csr_matrix(g, dtype=np.float64) for g in graphs)
        parents = tuple(_readonly(p) for p in parents)
        if len(graphs) != len(parents) + 1:
            raise ValueError("need exactly one more graph than parent maps")
        slots = tuple(_readonly(s) for s in _balanced_slots(graphs, parents))
        padded = tuple(_pad_graph(g, s) for g, s in zip(graphs, slots, strict=True))
        return cls(graphs=graphs, parents=parents, slots=slots, padded=padded)

    @property
    def levels(self) -> int:
        """Number of coarsening steps (the coarsest level's index)."""
        return len(self.parents)

    @property
    def num_real(self) -> tuple[int, ...]:
        """Per level, N_l: the number of real nodes."""
        return tuple(g.shape[0] for g in self.graphs)

    @property
    def num_slots(self) -> tuple[int, ...]:
        """Per level, S_l = M * 2^(levels - l): real plus fake nodes."""
        return tuple(s.size for s in self.slots)


def coarsening_tree(W: sp.spmatrix, levels: int) -> CoarseningTree:
    """Coarsen W `levels` times with Graclus and arrange the clusters as a balanced tree."""
    return CoarseningTree.from_clusters(*graclus_levels(W, levels))


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
