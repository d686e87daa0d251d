"""Specification of the mesh graph, its Laplacians and the cached mesh hierarchy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import trimesh

from handshape.geometry import mesh_graph
from handshape.geometry.graph_laplacian import (
    mesh_adjacency,
    normalized_laplacian,
    rescaled_laplacian,
    to_edge_index,
)
from handshape.geometry.hierarchy import MeshHierarchy, coarsen
from handshape.geometry.mesh_graph import (
    clear_memory_cache,
    default_cache_dir,
    hierarchy_cache_key,
    mesh_hierarchy,
)

SQRT_HALF = 1.0 / np.sqrt(2.0)


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=3)
    assert len(mesh.vertices) == 642
    return mesh


@pytest.fixture(scope="module")
def sphere_adjacency(sphere: trimesh.Trimesh) -> sp.csr_matrix:
    return mesh_adjacency(sphere.faces, len(sphere.vertices))


@pytest.fixture(scope="module")
def small_sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=2)


def path_graph(n: int) -> sp.csr_matrix:
    i = np.arange(n - 1)
    W = sp.coo_matrix((np.ones(n - 1), (i, i + 1)), shape=(n, n))
    return sp.csr_matrix(W + W.T)


# ---- adjacency ---------------------------------------------------------------------------------


def test_adjacency_is_symmetric_binary_and_loop_free(sphere_adjacency: sp.csr_matrix) -> None:
    W = sphere_adjacency
    assert W.shape == (642, 642)
    assert abs(W - W.T).nnz == 0
    assert set(np.unique(W.data)) == {1.0}
    assert not W.diagonal().any()


def test_adjacency_has_exactly_the_mesh_edges_of_trimesh(
    sphere: trimesh.Trimesh, sphere_adjacency: sp.csr_matrix
) -> None:
    upper = sp.triu(sphere_adjacency, k=1).tocoo()
    ours = set(zip(upper.row.tolist(), upper.col.tolist(), strict=True))
    theirs = {tuple(edge) for edge in np.sort(sphere.edges_unique, axis=1).tolist()}
    assert ours == theirs
    # Every vertex of an icosphere has 5 (the 12 original ones) or 6 neighbours.
    degree = np.asarray(sphere_adjacency.sum(axis=1)).ravel()
    assert np.array_equal(np.bincount(degree.astype(int))[5:], [12, 630])


def test_edge_shared_by_two_faces_has_weight_one_and_degenerate_faces_add_no_loops() -> None:
    faces = np.array([[0, 1, 2], [2, 1, 3], [3, 3, 0]])
    W = mesh_adjacency(faces, num_vertices=5).toarray()
    expected = np.array(
        [
            [0, 1, 1, 1, 0],
            [1, 0, 1, 1, 0],
            [1, 1, 0, 1, 0],
            [1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0],
        ],
        dtype=float,
    )
    np.testing.assert_array_equal(W, expected)


@pytest.mark.parametrize(
    ("faces", "num_vertices"),
    [(np.array([[0, 1, 3]]), 3), (np.array([[0, -1, 2]]), 3), (np.array([0, 1, 2]), 3)],
)
def test_adjacency_rejects_malformed_faces(faces: np.ndarray, num_vertices: int) -> None:
    with pytest.raises(ValueError):
        mesh_adjacency(faces, num_vertices)


# ---- Laplacians --------------------------------------------------------------------------------


def test_normalized_laplacian_of_a_path_matches_the_hand_computed_matrix() -> None:
    # Degrees 1, 2, 1: off-diagonal entries are -1 / sqrt(1 * 2).
    expected = np.array(
        [
            [1.0, -SQRT_HALF, 0.0],
            [-SQRT_HALF, 1.0, -SQRT_HALF],
            [0.0, -SQRT_HALF, 1.0],
        ]
    )
    np.testing.assert_allclose(normalized_laplacian(path_graph(3)).toarray(), expected, atol=1e-15)


def test_isolated_nodes_get_zero_rows_instead_of_nans() -> None:
    W = sp.block_diag([path_graph(3), sp.csr_matrix((2, 2))], format="csr")
    L = normalized_laplacian(W).toarray()
    assert np.isfinite(L).all()
    assert not L[3:].any() and not L[:, 3:].any()
    np.testing.assert_allclose(L[:3, :3], normalized_laplacian(path_graph(3)).toarray())


def test_normalized_laplacian_rejects_asymmetric_weights() -> None:
    W = sp.csr_matrix(np.array([[0.0, 1.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="symmetric"):
        normalized_laplacian(W)


def test_laplacian_spectrum_lies_in_zero_two(sphere_adjacency: sp.csr_matrix) -> None:
    eigenvalues = np.linalg.eigvalsh(normalized_laplacian(sphere_adjacency).toarray())
    assert eigenvalues.min() == pytest.approx(0.0, abs=1e-10)  # one connected component
    assert eigenvalues.max() <= 2.0 + 1e-10


def test_rescaled_laplacian_spectrum_lies_in_minus_one_one(
    sphere_adjacency: sp.csr_matrix,
) -> None:
    L = normalized_laplacian(sphere_adjacency)
    L_tilde, lambda_max = rescaled_laplacian(L)
    assert lambda_max == pytest.approx(np.linalg.eigvalsh(L.toarray()).max(), rel=1e-9)
    eigenvalues = np.linalg.eigvalsh(L_tilde.toarray())
    assert eigenvalues.min() >= -1.0 - 1e-9
    assert eigenvalues.max() == pytest.approx(1.0, abs=1e-9)


def test_rescaled_laplacian_uses_the_given_lambda_max() -> None:
    L = normalized_laplacian(path_graph(3))  # eigenvalues 0, 1, 2
    L_tilde, lambda_max = rescaled_laplacian(L, lambda_max=2.0)
    assert lambda_max == 2.0
    np.testing.assert_allclose(L_tilde.toarray(), L.toarray() - np.eye(3), atol=1e-15)
    assert rescaled_laplacian(L)[1] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        rescaled_laplacian(L, lambda_max=0.0)


# ---- torch_geometric -----------------------------------------------------------------------------


def test_edge_index_holds_both_directions_with_matching_weights() -> None:
    W = sp.csr_matrix(np.array([[0.0, 2.0, 0.0], [2.0, 0.0, 0.5], [0.0, 0.5, 0.0]]))
    edge_index, edge_weight = to_edge_index(W)
    assert edge_index.dtype == torch.long and edge_weight.dtype == torch.float32
    assert edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    assert edge_weight.tolist() == [2.0, 2.0, 0.5, 0.5]


def test_chebconv_runs_on_the_padded_graph_and_padding_does_not_change_real_vertices(
    sphere: trimesh.Trimesh, sphere_adjacency: sp.csr_matrix
) -> None:
    from torch_geometric.nn import ChebConv

    hierarchy = coarsen(sphere_adjacency, levels=4)
    torch.manual_seed(0)
    conv = ChebConv(3, 8, K=3)
    x = torch.as_tensor(sphere.vertices, dtype=torch.float32)
    lambda_max = torch.tensor(hierarchy.lambda_max[0])

    out_padded = conv(
        hierarchy.pad_signal(x),
        hierarchy.edge_index[0],
        hierarchy.edge_weight[0],
        lambda_max=lambda_max,
    )
    assert out_padded.shape == (hierarchy.num_slots[0], 8)
    assert torch.isfinite(out_padded).all()

    edge_index, edge_weight = to_edge_index(sphere_adjacency)
    out_plain = conv(x, edge_index, edge_weight, lambda_max=lambda_max)
    torch.testing.assert_close(hierarchy.unpad_signal(out_padded), out_plain)


def test_chebconv_first_order_term_is_our_rescaled_laplacian(
    sphere: trimesh.Trimesh, sphere_adjacency: sp.csr_matrix
) -> None:
    from torch_geometric.nn import ChebConv

    hierarchy = coarsen(sphere_adjacency, levels=2)
    conv = ChebConv(3, 3, K=2, bias=False)
    with torch.no_grad():  # keep only the T_1(L~) x term, with an identity weight
        conv.lins[0].weight.zero_()
        conv.lins[1].weight.copy_(torch.eye(3))
    x = hierarchy.pad_signal(torch.as_tensor(sphere.vertices, dtype=torch.float64))
    out = conv.double()(
        x,
        hierarchy.edge_index[0],
        hierarchy.edge_weight[0].double(),
        lambda_max=torch.tensor(hierarchy.lambda_max[0], dtype=torch.float64),
    )
    expected = hierarchy.rescaled_laplacian(0) @ x.numpy()
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-12)


# ---- cache ---------------------------------------------------------------------------------------


@pytest.fixture
def fresh_memory_cache():
    clear_memory_cache()
    yield
    clear_memory_cache()


def counting_coarsen(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = mesh_graph.coarsen

    def wrapped(W: sp.spmatrix, levels: int) -> MeshHierarchy:
        calls.append(levels)
        return original(W, levels)

    monkeypatch.setattr(mesh_graph, "coarsen", wrapped)
    return calls


def assert_same_hierarchy(a: MeshHierarchy, b: MeshHierarchy) -> None:
    assert a.lambda_max == b.lambda_max
    for x, y in zip(a.tree.slots, b.tree.slots, strict=True):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(a.adjacency, b.adjacency, strict=True):
        assert abs(x - y).nnz == 0
    for x, y in zip(a.edge_index, b.edge_index, strict=True):
        assert torch.equal(x, y)


def test_second_call_reads_the_disk_cache_instead_of_coarsening(
    small_sphere: trimesh.Trimesh, tmp_path, monkeypatch, fresh_memory_cache
) -> None:
    faces, n = small_sphere.faces, len(small_sphere.vertices)
    first = mesh_hierarchy(faces, n, levels=3, cache_dir=tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [f"{hierarchy_cache_key(faces, n, 3)}.npz"]  # no temporary files left

    clear_memory_cache()

    def fail(W: sp.spmatrix, levels: int) -> MeshHierarchy:
        raise AssertionError("coarsen must not run when the cache file exists")

    monkeypatch.setattr(mesh_graph, "coarsen", fail)
    second = mesh_hierarchy(faces, n, levels=3, cache_dir=tmp_path)
    assert second is not first
    assert_same_hierarchy(first, second)


def test_repeated_calls_in_one_process_return_the_same_object(
    small_sphere: trimesh.Trimesh, tmp_path, monkeypatch, fresh_memory_cache
) -> None:
    calls = counting_coarsen(monkeypatch)
    faces, n = small_sphere.faces, len(small_sphere.vertices)
    first = mesh_hierarchy(faces, n, levels=2, cache_dir=tmp_path)
    # The key ignores the dtype and memory layout of the faces.
    again = mesh_hierarchy(np.asfortranarray(faces.astype(np.int32)), n, 2, cache_dir=tmp_path)
    assert again is first
    assert calls == [2]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "pickled"])
def test_corrupt_cache_file_is_recomputed_and_replaced(
    small_sphere: trimesh.Trimesh, tmp_path, monkeypatch, fresh_memory_cache, damage: str
) -> None:
    faces, n = small_sphere.faces, len(small_sphere.vertices)
    reference = mesh_hierarchy(faces, n, levels=2, cache_dir=tmp_path)
    path = tmp_path / f"{hierarchy_cache_key(faces, n, 2)}.npz"
    if damage == "garbage":
        path.write_bytes(b"not a zip file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    else:  # a complete file, but one object array would need pickle, which the loader refuses
        arrays = dict(reference.to_arrays(), cache_key=np.array(path.stem))
        arrays["lambda_max"] = np.array(list(reference.lambda_max), dtype=object)
        with path.open("wb") as handle:
            np.savez(handle, **arrays)
    clear_memory_cache()
    calls = counting_coarsen(monkeypatch)

    recomputed = mesh_hierarchy(faces, n, levels=2, cache_dir=tmp_path)
    assert calls == [2]
    assert_same_hierarchy(reference, recomputed)

    clear_memory_cache()
    mesh_hierarchy(faces, n, levels=2, cache_dir=tmp_path)
    assert calls == [2], "the rewritten cache file should be valid"


def test_unwritable_cache_dir_still_returns_a_hierarchy(
    small_sphere: trimesh.Trimesh, tmp_path, fresh_memory_cache
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    hierarchy = mesh_hierarchy(small_sphere.faces, len(small_sphere.vertices), 2, not_a_dir)
    assert hierarchy.num_vertices == len(small_sphere.vertices)


def test_cache_location_follows_handshape_cache_then_home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HANDSHAPE_CACHE", str(tmp_path / "root"))
    assert default_cache_dir() == tmp_path / "root" / "graphs"
    monkeypatch.delenv("HANDSHAPE_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "handshape" / "graphs"


def test_cache_key_depends_on_faces_vertices_and_levels() -> None:
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    key = hierarchy_cache_key(faces, 4, 2)
    assert key == hierarchy_cache_key(faces.astype(np.int32), 4, 2)
    variants = [
        hierarchy_cache_key(faces[::-1], 4, 2),
        hierarchy_cache_key(faces, 5, 2),
        hierarchy_cache_key(faces, 4, 3),
    ]
    assert len({key, *variants}) == 4
