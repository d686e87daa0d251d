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
Fake nodes are isolated in the padded graphs and are skipped by `MeshHierarchy.pool`
(`handshape.geometry.hierarchy`, the coarsened mesh as the graph decoder uses it).

Level 0 is the finest graph (the mesh), level `levels` the coarsest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from handshape.geometry.graph_laplacian import validate_adjacency

__all__ = [
    "CoarseningTree",
    "cluster_graph",
    "coarsening_tree",
    "graclus_clusters",
    "graclus_levels",
]


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
