"""Specification of the coarsened mesh a graph decoder uses: padded graphs and their edges,
Laplacian scales, padding, pooling and upsampling of signals, determinism, serialisation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from handshape.geometry.hierarchy import MeshHierarchy, coarsen, describe

LEVELS = 4


def path_graph(n: int) -> sp.csr_matrix:
    W = sp.coo_matrix(([1.0] * (n - 1), (range(n - 1), range(1, n))), shape=(n, n))
    return sp.csr_matrix(W + W.T)


# ---- levels --------------------------------------------------------------------------------------


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


def test_pooling_the_path_uses_only_real_children() -> None:
    h = coarsen(path_graph(3), levels=1)
    x = torch.tensor([[-1.0], [-3.0], [-5.0], [1000.0]])  # the last slot is fake
    assert h.pool(x, 0, reduce="mean").flatten().tolist() == [-2.0, -5.0]
    assert h.pool(x, 0, reduce="max").flatten().tolist() == [-1.0, -5.0]


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


def test_describe_lists_slots_and_real_nodes_per_level() -> None:
    h = coarsen(path_graph(3), levels=2)
    expected = "level 0: 4 slots (3 real)\nlevel 1: 2 slots (2 real)\nlevel 2: 1 slots (1 real)"
    assert describe(h) == expected == h.describe()
