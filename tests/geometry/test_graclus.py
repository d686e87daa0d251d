"""Specification of Graclus coarsening and the balanced binary tree (on a hand-checkable graph
and on an icosphere)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from handshape.geometry.graclus import (
    CoarseningTree,
    cluster_graph,
    graclus_clusters,
    graclus_levels,
)
from handshape.geometry.hierarchy import MeshHierarchy, coarsen

LEVELS = 4


def weighted_graph(n: int, edges: dict[tuple[int, int], float]) -> sp.csr_matrix:
    rows, cols = zip(*edges, strict=True)
    W = sp.coo_matrix((list(edges.values()), (rows, cols)), shape=(n, n))
    return sp.csr_matrix(W + W.T)


def path_graph(n: int) -> sp.csr_matrix:
    return weighted_graph(n, {(i, i + 1): 1.0 for i in range(n - 1)})


def cycle_graph(n: int) -> sp.csr_matrix:
    return weighted_graph(n, {(i, (i + 1) % n): 1.0 for i in range(n)})


# ---- one level of matching ---------------------------------------------------------------------


def test_matching_maximises_the_normalised_cut_not_the_edge_weight() -> None:
    # Node 0 sees leaf 1 (w=2, d=2) and hub 2 (w=3, d=13): 2 * (1/5 + 1/2) > 3 * (1/5 + 1/13).
    W = weighted_graph(4, {(0, 1): 2.0, (0, 2): 3.0, (2, 3): 10.0})
    clusters = graclus_clusters(W, order=np.arange(4))
    assert clusters.tolist() == [0, 0, 1, 1]


def test_matching_prefers_the_heavier_edge_between_equal_neighbours() -> None:
    # 1 * (1/4 + 1/1) = 1.25 < 3 * (1/4 + 1/3) = 1.75.
    W = weighted_graph(3, {(0, 1): 1.0, (0, 2): 3.0})
    assert graclus_clusters(W, order=np.arange(3)).tolist() == [0, 1, 0]


def test_nodes_are_visited_by_ascending_degree_and_ties_go_to_the_smaller_index() -> None:
    # Path 0-1-2: the leaves (degree 1) go first; leaf 2 finds 1 taken and stays alone.
    assert graclus_clusters(path_graph(3)).tolist() == [0, 0, 1]
    # Path 0-1-2-3-4: both leaves choose before the middle, so 2 is the one left alone (visiting
    # by index would leave 4 alone). Cluster ids count up in the order clusters are created.
    assert graclus_clusters(path_graph(5)).tolist() == [0, 0, 2, 1, 1]
    # In a cycle every score ties, so each node takes its smaller free neighbour.
    assert graclus_clusters(cycle_graph(8)).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_cluster_graph_sums_weights_between_clusters_and_drops_self_loops() -> None:
    W = weighted_graph(4, {(0, 1): 1.0, (1, 2): 2.0, (2, 3): 3.0, (3, 0): 4.0})
    coarse = cluster_graph(W, np.array([0, 0, 1, 1]))
    np.testing.assert_array_equal(coarse.toarray(), [[0.0, 6.0], [6.0, 0.0]])
    assert coarse.nnz == 2


def test_multilevel_coarsening_of_a_cycle() -> None:
    graphs, parents = graclus_levels(cycle_graph(8), levels=2)
    assert [p.tolist() for p in parents] == [[0, 0, 1, 1, 2, 2, 3, 3], [0, 0, 1, 1]]
    np.testing.assert_array_equal(graphs[1].toarray(), cycle_graph(4).toarray())
    np.testing.assert_array_equal(graphs[2].toarray(), [[0.0, 2.0], [2.0, 0.0]])


# ---- the balanced tree on a hand-checkable graph -------------------------------------------------


def test_path_of_three_builds_the_hand_computed_tree() -> None:
    h = coarsen(path_graph(3), levels=2)
    assert [s.tolist() for s in h.tree.slots] == [[0, 1, 2, -1], [0, 1], [0]]
    assert h.perm.tolist() == [0, 1, 2, -1]
    assert [m.tolist() for m in h.is_real] == [[True, True, True, False], [True, True], [True]]
    np.testing.assert_array_equal(
        h.adjacency[0].toarray(),
        [[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]],
    )
    assert h.num_real == (3, 2, 1)
    assert h.num_slots == (4, 2, 1)


# ---- the icosphere hierarchy ---------------------------------------------------------------------


def test_level_sizes_roughly_halve(hierarchy: MeshHierarchy) -> None:
    sizes = hierarchy.num_real
    assert sizes[0] == 642
    for fine, coarse in itertools.pairwise(sizes):
        assert fine / 2 <= coarse <= 0.6 * fine


def test_slot_counts_form_a_balanced_binary_tree(hierarchy: MeshHierarchy) -> None:
    coarsest = hierarchy.num_real[-1]
    assert hierarchy.num_slots[-1] == coarsest
    assert hierarchy.num_slots[0] == coarsest * 2**LEVELS
    for level, slots in enumerate(hierarchy.num_slots):
        assert slots == coarsest * 2 ** (LEVELS - level)
        assert hierarchy.is_real[level].sum() == hierarchy.num_real[level]


def test_every_vertex_reaches_exactly_one_coarsest_node(hierarchy: MeshHierarchy) -> None:
    tree = hierarchy.tree
    node = np.arange(hierarchy.num_vertices)
    for parent in tree.parents:
        node = parent[node]
    assert node.min() >= 0 and node.max() < hierarchy.num_real[-1]
    # Every coarsest node owns at least one and at most 2^levels vertices...
    counts = np.bincount(node, minlength=hierarchy.num_real[-1])
    assert counts.min() >= 1 and counts.max() <= 2**LEVELS
    # ...and the slot tree agrees: the ancestor of finest slot s is coarsest slot s >> levels.
    real_slots = np.flatnonzero(hierarchy.is_real[0])
    np.testing.assert_array_equal(node[hierarchy.perm[real_slots]], real_slots >> LEVELS)


def test_each_slot_sits_below_its_parents_slot(hierarchy: MeshHierarchy) -> None:
    tree = hierarchy.tree
    for level in range(LEVELS):
        slots, coarse_slots = tree.slots[level], tree.slots[level + 1]
        for s in np.flatnonzero(slots >= 0):
            assert coarse_slots[s // 2] == tree.parents[level][slots[s]]
        # A fake slot never has real children.
        fake_parents = np.flatnonzero(coarse_slots < 0)
        assert (slots[2 * fake_parents] < 0).all() and (slots[2 * fake_parents + 1] < 0).all()


def test_tree_rejects_a_parent_with_three_children() -> None:
    graphs = [path_graph(3), sp.csr_matrix((1, 1))]
    with pytest.raises(ValueError, match="children"):
        CoarseningTree.from_clusters(graphs, [np.array([0, 0, 0])])
