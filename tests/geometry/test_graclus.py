"""Specification of Graclus coarsening, the balanced binary tree, pooling and upsampling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import trimesh

from handshape.geometry.graclus import (
    CoarseningTree,
    MeshHierarchy,
    cluster_graph,
    coarsen,
    describe,
    graclus_clusters,
    graclus_levels,
)
from handshape.geometry.graph_laplacian import mesh_adjacency

LEVELS = 4


def weighted_graph(n: int, edges: dict[tuple[int, int], float]) -> sp.csr_matrix:
    rows, cols = zip(*edges, strict=True)
    W = sp.coo_matrix((list(edges.values()), (rows, cols)), shape=(n, n))
    return sp.csr_matrix(W + W.T)


def path_graph(n: int) -> sp.csr_matrix:
    return weighted_graph(n, {(i, i + 1): 1.0 for i in range(n - 1)})


def cycle_graph(n: int) -> sp.csr_matrix:
    return weighted_graph(n, {(i, (i + 1) % n): 1.0 for i in range(n)})


@pytest.fixture(scope="module")
def sphere_adjacency() -> sp.csr_matrix:
    mesh = trimesh.creation.icosphere(subdivisions=3)
    return mesh_adjacency(mesh.faces, len(mesh.vertices))


@pytest.fixture(scope="module")
def hierarchy(sphere_adjacency: sp.csr_matrix) -> MeshHierarchy:
    return coarsen(sphere_adjacency, LEVELS)


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


def test_pooling_the_path_uses_only_real_children() -> None:
    h = coarsen(path_graph(3), levels=1)
    x = torch.tensor([[-1.0], [-3.0], [-5.0], [1000.0]])  # the last slot is fake
    assert h.pool(x, 0, reduce="mean").flatten().tolist() == [-2.0, -5.0]
    assert h.pool(x, 0, reduce="max").flatten().tolist() == [-1.0, -5.0]


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


def test_padded_graphs_are_permuted_graphs_with_isolated_fake_nodes(
    hierarchy: MeshHierarchy,
) -> None:
    for level in range(LEVELS + 1):
        padded, slots = hierarchy.adjacency[level], hierarchy.tree.slots[level]
        real = slots >= 0
        assert padded[~real].nnz == 0 and padded[:, ~real].nnz == 0
        graph = hierarchy.tree.graphs[level]
        expected = graph[slots[real]][:, slots[real]]
        assert abs(padded[real][:, real] - expected).nnz == 0
        edge_index, edge_weight = hierarchy.edge_index[level], hierarchy.edge_weight[level]
        assert edge_index.shape == (2, padded.nnz)
        rebuilt = sp.coo_matrix((edge_weight.numpy(), edge_index.numpy()), shape=padded.shape)
        assert abs(rebuilt - padded).max() == 0


def test_lambda_max_is_the_largest_laplacian_eigenvalue_per_level(
    hierarchy: MeshHierarchy,
) -> None:
    for level in range(LEVELS + 1):
        eigenvalues = np.linalg.eigvalsh(hierarchy.rescaled_laplacian(level).toarray())
        assert eigenvalues.min() >= -1 - 1e-9
        assert eigenvalues.max() == pytest.approx(1.0, abs=1e-9)


# ---- signals -------------------------------------------------------------------------------------


def test_pad_then_unpad_is_the_identity(hierarchy: MeshHierarchy) -> None:
    x = torch.randn(2, hierarchy.num_vertices, 3)
    padded = hierarchy.pad_signal(x)
    assert padded.shape == (2, hierarchy.num_slots[0], 3)
    assert torch.equal(hierarchy.unpad_signal(padded), x)
    fake = torch.from_numpy(~hierarchy.is_real[0])
    assert not padded[:, fake].any()
    slot = int(np.flatnonzero(hierarchy.perm == 5)[0])
    assert torch.equal(padded[:, slot], x[:, 5])
    # Unbatched signals work too.
    assert torch.equal(hierarchy.unpad_signal(hierarchy.pad_signal(x[0])), x[0])


def test_upsample_copies_each_node_to_its_descendants(hierarchy: MeshHierarchy) -> None:
    x = torch.randn(3, hierarchy.num_slots[LEVELS], 2)
    up = hierarchy.upsample(x, times=2)
    assert up.shape == (3, hierarchy.num_slots[LEVELS - 2], 2)
    slots = torch.arange(up.shape[1])
    assert torch.equal(up, x[:, slots // 4])
    with pytest.raises(ValueError):
        hierarchy.upsample(x, times=LEVELS + 1)


@pytest.mark.parametrize("reduce", ["mean", "max"])
@pytest.mark.parametrize("level", [LEVELS, 2])
def test_upsample_then_pool_returns_the_coarse_signal_exactly(
    hierarchy: MeshHierarchy, reduce: str, level: int
) -> None:
    generator = torch.Generator().manual_seed(level)
    # Strictly negative values catch a max that lets fake nodes (or zeros) win.
    x = -1.0 - torch.rand(2, hierarchy.num_slots[level], 4, generator=generator)
    back = hierarchy.pool(hierarchy.upsample(x, times=level), 0, times=level, reduce=reduce)
    real = torch.from_numpy(hierarchy.is_real[level])
    assert torch.equal(back[:, real], x[:, real])
    assert not back[:, ~real].any()  # slots without real children pool to 0


def test_pool_ignores_whatever_the_fake_slots_hold(hierarchy: MeshHierarchy) -> None:
    real = hierarchy.is_real[0]
    x = torch.randn(2, hierarchy.num_slots[0], 3)
    x[:, torch.from_numpy(~real)] = 1e6
    mean, best = hierarchy.pool(x, 0, reduce="mean"), hierarchy.pool(x, 0, reduce="max")
    for parent in range(hierarchy.num_slots[1]):
        children = [c for c in (2 * parent, 2 * parent + 1) if real[c]]
        if not children:
            assert not mean[:, parent].any() and not best[:, parent].any()
            continue
        torch.testing.assert_close(mean[:, parent], x[:, children].mean(dim=1))
        torch.testing.assert_close(best[:, parent], x[:, children].amax(dim=1))


@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_pool_is_differentiable_and_sends_no_gradient_to_fake_slots(
    hierarchy: MeshHierarchy, reduce: str
) -> None:
    x = torch.randn(2, hierarchy.num_slots[0], 3, requires_grad=True)
    hierarchy.pool(x, 0, times=2, reduce=reduce).sum().backward()
    fake = torch.from_numpy(~hierarchy.is_real[0])
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert not x.grad[:, fake].any()
    assert x.grad[:, ~fake].abs().sum() > 0


def test_pool_rejects_mismatched_shapes_and_options(hierarchy: MeshHierarchy) -> None:
    x = torch.zeros(1, hierarchy.num_slots[1], 3)
    with pytest.raises(ValueError):
        hierarchy.pool(x, level_from=0)
    with pytest.raises(ValueError):
        hierarchy.pool(x, level_from=1, times=LEVELS)
    with pytest.raises(ValueError):
        hierarchy.pool(x, level_from=1, reduce="sum")  # type: ignore[arg-type]


# ---- determinism, serialisation, description ---------------------------------------------------


def assert_identical(a: MeshHierarchy, b: MeshHierarchy) -> None:
    assert a.lambda_max == b.lambda_max
    for name in ("slots", "parents"):
        for x, y in zip(getattr(a.tree, name), getattr(b.tree, name), strict=True):
            np.testing.assert_array_equal(x, y)
    for x, y in zip(a.tree.graphs + a.adjacency, b.tree.graphs + b.adjacency, strict=True):
        assert abs(x - y).nnz == 0


def test_coarsening_is_deterministic_and_leaves_its_input_alone(
    sphere_adjacency: sp.csr_matrix, hierarchy: MeshHierarchy
) -> None:
    before = sphere_adjacency.copy()
    # Global random state must play no part.
    np.random.seed(1234)
    torch.manual_seed(1234)
    np.random.rand(10)
    again = coarsen(sphere_adjacency, LEVELS)
    assert_identical(hierarchy, again)
    assert abs(sphere_adjacency - before).nnz == 0


def test_arrays_round_trip(hierarchy: MeshHierarchy) -> None:
    assert_identical(hierarchy, MeshHierarchy.from_arrays(hierarchy.to_arrays()))


def test_tree_rejects_a_parent_with_three_children() -> None:
    graphs = [path_graph(3), sp.csr_matrix((1, 1))]
    with pytest.raises(ValueError, match="children"):
        CoarseningTree.from_clusters(graphs, [np.array([0, 0, 0])])


def test_describe_lists_slots_and_real_nodes_per_level() -> None:
    h = coarsen(path_graph(3), levels=2)
    expected = "level 0: 4 slots (3 real)\nlevel 1: 2 slots (2 real)\nlevel 2: 1 slots (1 real)"
    assert describe(h) == expected == h.describe()
