"""Tests for handshape.geometry.correspondence."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from handshape.geometry.correspondence import (
    TopologyMap,
    closest_point_map,
    similarity_align,
    topology_map,
)
from handshape.handmodel.model import HandModel
from meshes import midpoint_subdivision

# One right-angled triangle in the z = 0 plane; its regions are easy to name.
TRIANGLE = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
ONE_FACE = np.array([[0, 1, 2]])


@pytest.fixture(scope="module")
def hand() -> HandModel:
    return HandModel.default().double()


@pytest.fixture(scope="module")
def template(hand: HandModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """handshape's rest template: vertices (N, 3), faces (F, 3), rest joints (21, 3)."""
    return (
        np.asarray(hand.data.v_template, dtype=np.float64),
        np.asarray(hand.data.faces, dtype=np.int64),
        hand.rest_joints,
    )


@pytest.fixture(scope="module")
def subdivided(
    template: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Subdivided template: vertices (N + E, 3), faces (4F, 3), edges (E, 2) of the midpoints."""
    vertices, faces, _ = template
    return midpoint_subdivision(vertices, faces)


def _random_similarity(seed: int) -> tuple[float, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = float(rng.uniform(0.5, 2.0))
    rotation = Rotation.random(random_state=seed).as_matrix()
    translation = rng.normal(scale=0.3, size=3)
    return scale, rotation, translation


def _point_on_source(m: TopologyMap, source: np.ndarray) -> np.ndarray:
    return m.apply(torch.as_tensor(source)[None])[0].numpy()


# --- closest point on one triangle ----------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "closest"),
    [
        # Face region: straight above the interior, the foot of the perpendicular.
        ([0.2, 0.3, 0.7], [0.2, 0.3, 0.0]),
        ([0.25, 0.25, -2.0], [0.25, 0.25, 0.0]),
        # Edge regions: beyond each edge, the perpendicular foot on that edge.
        ([0.4, -0.5, 0.3], [0.4, 0.0, 0.0]),
        ([-0.7, 0.6, 0.1], [0.0, 0.6, 0.0]),
        ([1.0, 1.0, 0.5], [0.5, 0.5, 0.0]),
        # Vertex regions: past a corner, that corner.
        ([-0.3, -0.4, 0.2], [0.0, 0.0, 0.0]),
        ([1.5, -0.2, -0.3], [1.0, 0.0, 0.0]),
        ([-0.1, 1.8, 0.0], [0.0, 1.0, 0.0]),
    ],
)
def test_closest_point_on_a_triangle_in_each_region(query: list, closest: list) -> None:
    m = closest_point_map(TRIANGLE, ONE_FACE, np.array([query]))
    np.testing.assert_allclose(_point_on_source(m, TRIANGLE)[0], closest, atol=1e-12)
    np.testing.assert_array_equal(m.vertex_index, ONE_FACE)
    assert m.face_index.tolist() == [0]


def test_closest_point_agrees_with_dense_sampling_on_random_triangles() -> None:
    rng = np.random.default_rng(0)
    # Barycentric grid of the triangle, spacing 1/n along each edge.
    n = 200
    i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    keep = i + j <= n
    grid = np.stack([n - i[keep] - j[keep], i[keep], j[keep]], 1) / n
    for _ in range(20):
        tri = rng.normal(size=(3, 3))
        queries = rng.normal(scale=1.5, size=(50, 3))
        m = closest_point_map(tri, ONE_FACE, queries)
        ours = np.linalg.norm(_point_on_source(m, tri) - queries, axis=1)
        sampled, _ = cKDTree(grid @ tri).query(queries)
        # No sample can beat the exact closest point, and the samples come within one grid cell.
        cell = max(np.linalg.norm(tri[1] - tri[0]), np.linalg.norm(tri[2] - tri[0])) / n
        assert np.all(ours <= sampled + 1e-12)
        assert np.all(sampled - ours <= cell)


def test_closest_point_on_the_hand_agrees_with_dense_sampling_of_every_face(
    template: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    vertices, faces, _ = template
    n = 16
    i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    keep = i + j <= n
    grid = np.stack([n - i[keep] - j[keep], i[keep], j[keep]], 1) / n
    samples = np.einsum("sk,fkc->fsc", grid, vertices[faces]).reshape(-1, 3)
    rng = np.random.default_rng(9)
    # Up to a few centimetres off the surface, inside and outside, where many faces compete.
    queries = vertices[rng.choice(len(vertices), 300)] + rng.normal(scale=0.015, size=(300, 3))
    m = closest_point_map(vertices, faces, queries)
    ours = np.linalg.norm(_point_on_source(m, vertices) - queries, axis=1)
    sampled, _ = cKDTree(samples).query(queries)
    edge = np.linalg.norm(vertices[faces] - vertices[np.roll(faces, 1, axis=1)], axis=2).max()
    assert np.all(ours <= sampled + 1e-12)
    assert np.all(sampled - ours <= edge / n)


def test_weights_are_non_negative_and_sum_to_one(
    template: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    vertices, faces, _ = template
    rng = np.random.default_rng(1)
    queries = vertices[rng.choice(len(vertices), 500)] + rng.normal(scale=0.01, size=(500, 3))
    m = closest_point_map(vertices, faces, queries)
    assert m.weights.shape == (500, 3)
    assert np.all(m.weights >= 0)
    np.testing.assert_allclose(m.weights.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(m.vertex_index, faces[m.face_index])


@pytest.mark.filterwarnings("error")  # not even a division by zero on the way
def test_degenerate_triangles_give_finite_weights() -> None:
    vertices = np.array(
        [
            [0.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [2.0, 0.0, 0.0],  # 0, 1, 2: collinear
            [5.0, 5.0, 5.0],  # 3, 3, 3: a single point
            [0.0, 3.0, 0.0],
            [0.0, 3.0, 0.0],  # 4 and 5 coincide
        ]
    )
    faces = np.array([[0, 1, 2], [3, 3, 3], [4, 5, 0]])
    queries = np.array([[0.5, 0.2, 0.1], [5.0, 5.0, 6.0], [0.1, 2.0, 0.0], [3.0, 1.0, 0.0]])
    m = closest_point_map(vertices, faces, queries)
    assert np.all(np.isfinite(m.weights))
    assert np.all(m.weights >= 0)
    np.testing.assert_allclose(m.weights.sum(axis=1), 1.0, atol=1e-12)
    expected = [[0.5, 0.0, 0.0], [5.0, 5.0, 5.0], [0.0, 2.0, 0.0], [2.0, 0.0, 0.0]]
    np.testing.assert_allclose(_point_on_source(m, vertices), expected, atol=1e-12)


# --- maps between the hand and its subdivision ----------------------------------------------


def test_subdivided_to_original_gives_back_the_original_vertices(
    template: tuple[np.ndarray, np.ndarray, np.ndarray],
    subdivided: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    vertices, _, _ = template
    fine_vertices, fine_faces, _ = subdivided
    m = closest_point_map(fine_vertices, fine_faces, vertices)
    assert (m.num_source, m.num_target) == (len(fine_vertices), len(vertices))
    np.testing.assert_allclose(_point_on_source(m, fine_vertices), vertices, rtol=0, atol=1e-9)


def test_original_to_subdivided_reproduces_the_edge_midpoints(
    template: tuple[np.ndarray, np.ndarray, np.ndarray],
    subdivided: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    vertices, faces, _ = template
    fine_vertices, _, edges = subdivided
    m = closest_point_map(vertices, faces, fine_vertices)
    np.testing.assert_allclose(_point_on_source(m, vertices), fine_vertices, rtol=0, atol=1e-9)
    # A midpoint is half of each end of its edge, nothing of the third corner.
    rows = np.arange(len(vertices), len(fine_vertices))
    for row, (i, j) in zip(rows[::50], edges[::50], strict=True):
        weight_of = np.bincount(m.vertex_index[row], m.weights[row], minlength=len(vertices))
        assert weight_of[i] == pytest.approx(0.5, abs=1e-9)
        assert weight_of[j] == pytest.approx(0.5, abs=1e-9)
        assert weight_of.sum() == pytest.approx(1.0, abs=1e-12)


def test_a_map_built_at_rest_follows_the_posed_hand(
    hand: HandModel,
    template: tuple[np.ndarray, np.ndarray, np.ndarray],
    subdivided: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    vertices = template[0]
    fine_vertices, fine_faces, edges = subdivided
    m = closest_point_map(fine_vertices, fine_faces, vertices)
    # Pose and reshape the hand, then subdivide the posed mesh: a network of the finer topology
    # predicting this posed hand exactly must be mapped onto the posed original vertices.
    torch.manual_seed(0)
    out = hand(
        shape=torch.randn(2, hand.num_shapes, dtype=torch.float64),
        pose=hand.limits.sample(2).double(),
    )
    posed = out.vertices.numpy()
    posed_fine = np.concatenate([posed, posed[:, edges].mean(axis=2)], axis=1)
    mapped = m.apply(torch.as_tensor(posed_fine))
    np.testing.assert_allclose(mapped.numpy(), posed, rtol=0, atol=1e-9)
    assert not np.allclose(posed[0], vertices, atol=1e-3)  # the pose really moved the hand


def test_apply_commutes_with_a_rigid_motion(
    template: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    vertices, faces, _ = template
    rng = np.random.default_rng(2)
    targets = vertices + rng.normal(scale=0.004, size=vertices.shape)
    m = closest_point_map(vertices, faces, targets)
    rest_points = _point_on_source(m, vertices)
    _, rotation, translation = _random_similarity(3)
    moved = vertices @ rotation.T + translation
    np.testing.assert_allclose(
        _point_on_source(m, moved), rest_points @ rotation.T + translation, rtol=0, atol=1e-12
    )


# --- similarity alignment and topology_map --------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_similarity_align_recovers_a_known_transform(seed: int) -> None:
    scale, rotation, translation = _random_similarity(seed)
    points = np.random.default_rng(seed + 10).normal(size=(21, 3))
    got_scale, got_rotation, got_translation = similarity_align(
        points, scale * points @ rotation.T + translation
    )
    assert got_scale == pytest.approx(scale, rel=1e-12)
    np.testing.assert_allclose(got_rotation, rotation, atol=1e-12)
    np.testing.assert_allclose(got_translation, translation, atol=1e-12)


def test_similarity_align_never_returns_a_reflection() -> None:
    points = np.random.default_rng(4).normal(size=(21, 3))
    mirrored = points * np.array([-1.0, 1.0, 1.0])
    scale, rotation, _ = similarity_align(points, mirrored)
    assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert scale > 0


def test_similarity_align_without_scale_is_rigid() -> None:
    scale, rotation, translation = _random_similarity(5)
    points = np.random.default_rng(6).normal(size=(21, 3))
    got_scale, got_rotation, _ = similarity_align(
        points, scale * points @ rotation.T + translation, estimate_scale=False
    )
    assert got_scale == 1.0
    np.testing.assert_allclose(got_rotation, rotation, atol=1e-12)


def test_similarity_align_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="match"):
        similarity_align(np.zeros((5, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="coincident"):
        similarity_align(np.ones((5, 3)), np.zeros((5, 3)))


def test_topology_map_aligns_a_model_that_sits_in_another_frame(
    template: tuple[np.ndarray, np.ndarray, np.ndarray],
    subdivided: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    vertices, _, joints = template
    fine_vertices, fine_faces, _ = subdivided
    # The "other model" is the subdivided hand, scaled, turned and shifted in its own frame.
    scale, rotation, translation = _random_similarity(7)
    move = lambda x: scale * x @ rotation.T + translation  # noqa: E731
    m = topology_map(move(fine_vertices), fine_faces, move(joints), vertices, joints)
    # Applied to the other model's own (unaligned) mesh, the map gives the target vertices in
    # that model's frame.
    np.testing.assert_allclose(
        _point_on_source(m, move(fine_vertices)), move(vertices), rtol=0, atol=1e-9
    )


def test_closest_point_map_of_the_hand_template_is_fast(
    template: tuple[np.ndarray, np.ndarray, np.ndarray],
    subdivided: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    vertices, faces, _ = template
    fine_vertices, fine_faces, _ = subdivided
    rng = np.random.default_rng(8)
    targets = fine_vertices + rng.normal(scale=0.003, size=fine_vertices.shape)
    start = time.perf_counter()
    closest_point_map(vertices, faces, targets)  # 1,050 vertices, 2,096 faces, 4,194 targets
    closest_point_map(fine_vertices, fine_faces, vertices)  # 8,384 faces
    # Generous for a loaded CI machine; it takes a small fraction of this.
    assert time.perf_counter() - start < 5.0


# --- TopologyMap ----------------------------------------------------------------------------


def test_identity_map_returns_its_input() -> None:
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    assert torch.equal(TopologyMap.identity(7).apply(x), x)


def test_apply_keeps_dtype_batch_and_gradients() -> None:
    m = closest_point_map(TRIANGLE, ONE_FACE, np.array([[0.2, 0.3, 1.0], [2.0, 2.0, 0.0]]))
    x = torch.as_tensor(TRIANGLE, dtype=torch.float32).expand(5, 3, 3).clone().requires_grad_()
    y = m.apply(x)
    assert y.shape == (5, 2, 3) and y.dtype == torch.float32
    y.sum().backward()
    # Each target point is a convex combination, so each contributes 1 per coordinate overall.
    np.testing.assert_allclose(x.grad.sum(dim=1).numpy(), np.full((5, 3), 2.0), atol=1e-6)
    assert m.apply(torch.as_tensor(TRIANGLE)).shape == (2, 3)  # unbatched works too


def test_apply_rejects_a_wrong_vertex_count_naming_both_shapes() -> None:
    m = TopologyMap.identity(778)
    with pytest.raises(ValueError, match=r"\(B, 778, 3\).*\(2, 1050, 3\)"):
        m.apply(torch.zeros(2, 1050, 3))
    with pytest.raises(ValueError, match=r"\(B, 778, 3\).*\(2, 778, 2\)"):
        m.apply(torch.zeros(2, 778, 2))


def test_topology_map_rejects_inconsistent_arrays() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        TopologyMap(np.zeros((2, 3), np.int64), np.full((2, 3), 0.5), 1, np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="vertex_index"):
        TopologyMap(np.full((1, 3), 4), np.array([[1.0, 0, 0]]), 3, np.zeros(1, np.int64))
    with pytest.raises(ValueError, match="source_faces"):
        closest_point_map(TRIANGLE, np.array([[0, 1, 3]]), TRIANGLE)
