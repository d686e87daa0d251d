"""Tests for handshape.geometry.mesh_checks."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from handshape.geometry.mesh_checks import (
    boundary_edges,
    check_closed_surface,
    degenerate_faces,
    duplicate_faces,
    edge_face_counts,
    euler_characteristic,
    face_areas,
    is_edge_manifold,
    is_oriented,
    is_vertex_manifold,
    is_watertight,
    non_manifold_edges,
    non_manifold_vertices,
    self_intersections,
    signed_volume,
    triangles_intersect,
)

# Outward counter-clockwise faces of the tetrahedron (0,0,0), (1,0,0), (0,1,0), (0,0,1).
TET_VERTICES = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
TET_FACES = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


def _sphere() -> tuple[np.ndarray, np.ndarray]:
    mesh = trimesh.creation.icosphere(subdivisions=2)
    return np.array(mesh.vertices, dtype=float), np.array(mesh.faces, dtype=np.int64)


def _concatenate(
    parts: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    vertices, faces, offset = [], [], 0
    for v, f in parts:
        vertices.append(v)
        faces.append(f + offset)
        offset += v.shape[0]
    return np.concatenate(vertices), np.concatenate(faces)


def _box(translation: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    mesh = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    return np.array(mesh.vertices, dtype=float) + np.asarray(translation), np.array(mesh.faces)


# --- a valid closed surface ---------------------------------------------------------------


def test_icosphere_passes_every_check() -> None:
    vertices, faces = _sphere()
    assert is_watertight(faces)
    assert is_edge_manifold(faces)
    assert is_vertex_manifold(faces, len(vertices))
    assert is_oriented(faces)
    assert degenerate_faces(vertices, faces).size == 0
    assert duplicate_faces(faces).size == 0
    assert self_intersections(vertices, faces).shape == (0, 2)
    assert signed_volume(vertices, faces) > 0
    assert euler_characteristic(len(vertices), faces) == 2
    assert check_closed_surface(vertices, faces) == []


def test_icosphere_volume_approaches_ball() -> None:
    vertices, faces = _sphere()
    volume = signed_volume(vertices, faces)
    assert 0.9 * (4 / 3) * np.pi < volume < (4 / 3) * np.pi


def test_tetrahedron_passes_and_has_expected_edges() -> None:
    edges, counts = edge_face_counts(TET_FACES)
    assert edges.shape == (6, 2)
    assert np.all(edges[:, 0] < edges[:, 1])
    np.testing.assert_array_equal(counts, np.full(6, 2))
    assert signed_volume(TET_VERTICES, TET_FACES) == pytest.approx(1 / 6)
    assert check_closed_surface(TET_VERTICES, TET_FACES) == []


def test_edge_face_counts_single_triangle() -> None:
    edges, counts = edge_face_counts(np.array([[2, 0, 1]]))
    np.testing.assert_array_equal(edges, [[0, 1], [0, 2], [1, 2]])
    np.testing.assert_array_equal(counts, [1, 1, 1])


# --- topology failures --------------------------------------------------------------------


def test_sphere_with_a_hole_is_not_watertight() -> None:
    vertices, faces = _sphere()
    holed = faces[1:]
    assert not is_watertight(holed)
    assert boundary_edges(holed).shape == (3, 2)
    # A hole alone breaks neither manifoldness nor winding.
    assert is_edge_manifold(holed)
    assert is_vertex_manifold(holed, len(vertices))
    assert is_oriented(holed)
    assert euler_characteristic(len(vertices), holed) == 1
    problems = check_closed_surface(vertices, holed)
    assert any("watertight" in p for p in problems)


def test_flipping_one_face_breaks_orientation() -> None:
    vertices, faces = _sphere()
    flipped = faces.copy()
    flipped[7] = flipped[7, ::-1]
    assert is_watertight(flipped)
    assert not is_oriented(flipped)
    assert any("winding" in p for p in check_closed_surface(vertices, flipped))


def test_bow_tie_is_not_vertex_manifold() -> None:
    # Two tetrahedra touching only at vertex 3 (the apex of the first).
    second = TET_VERTICES.copy()
    second[:, 2] = 2.0 - second[:, 2]  # mirror through z = 1, so old vertex 3 maps onto itself
    second_faces = TET_FACES[:, ::-1]  # mirroring reverses winding; undo it
    vertices, faces = _concatenate([(TET_VERTICES, TET_FACES), (second, second_faces)])
    # Merge the second tetrahedron's copy of (0, 0, 1) into vertex 3.
    faces = np.where(faces == 4 + 3, 3, faces)
    faces = np.where(faces > 4 + 3, faces - 1, faces)
    vertices = np.delete(vertices, 4 + 3, axis=0)

    assert is_watertight(faces)
    assert is_edge_manifold(faces)
    assert is_oriented(faces)
    assert not is_vertex_manifold(faces, len(vertices))
    np.testing.assert_array_equal(non_manifold_vertices(faces, len(vertices)), [3])
    assert signed_volume(vertices, faces) == pytest.approx(2 / 6)
    problems = check_closed_surface(vertices, faces)
    assert len(problems) == 1
    assert "vertex-manifold" in problems[0]


def test_edge_shared_by_three_faces_is_not_edge_manifold() -> None:
    faces = np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]])
    assert not is_edge_manifold(faces)
    np.testing.assert_array_equal(non_manifold_edges(faces), [[0, 1]])
    assert not is_oriented(faces)


def test_open_fan_is_vertex_manifold() -> None:
    # A boundary vertex whose faces form one open fan is fine.
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4]])
    assert is_vertex_manifold(faces, 5)
    assert is_oriented(faces)
    assert not is_watertight(faces)


# --- degenerate and duplicate faces ------------------------------------------------------


def test_duplicated_face_is_found() -> None:
    vertices, faces = _sphere()
    doubled = np.concatenate([faces, faces[[5]]])
    np.testing.assert_array_equal(duplicate_faces(doubled), [len(faces)])
    # Reversed winding is still the same face.
    reversed_copy = np.concatenate([faces, faces[[5], ::-1]])
    np.testing.assert_array_equal(duplicate_faces(reversed_copy), [len(faces)])
    problems = check_closed_surface(vertices, doubled)
    assert any("duplicate" in p for p in problems)
    assert any("edge-manifold" in p for p in problems)


def test_zero_area_faces_are_found() -> None:
    vertices, faces = _sphere()
    n = len(vertices)
    collinear = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2]], dtype=float)
    vertices = np.concatenate([vertices, collinear])
    extra = np.array([[n, n + 1, n + 2], [0, 0, 1]])  # collinear; repeated index
    faces = np.concatenate([faces, extra])
    np.testing.assert_array_equal(
        degenerate_faces(vertices, faces), [len(faces) - 2, len(faces) - 1]
    )
    assert any("degenerate" in p for p in check_closed_surface(vertices, faces))


def test_min_area_threshold() -> None:
    vertices = np.array([[0, 0, 0], [1e-3, 0, 0], [0, 1e-3, 0]], dtype=float)
    faces = np.array([[0, 1, 2]])
    assert face_areas(vertices, faces)[0] == pytest.approx(5e-7)
    assert degenerate_faces(vertices, faces).size == 0
    np.testing.assert_array_equal(degenerate_faces(vertices, faces, min_area=1e-6), [0])


# --- self-intersection --------------------------------------------------------------------


def test_interpenetrating_boxes_self_intersect() -> None:
    vertices, faces = _concatenate([_box((0, 0, 0)), _box((0.5, 0.5, 0.5))])
    pairs = self_intersections(vertices, faces)
    assert pairs.shape[0] > 0
    assert pairs.shape[1] == 2
    assert np.all(pairs[:, 0] < pairs[:, 1])
    # Each box is fine on its own, so every crossing is between the two boxes.
    assert np.all(pairs[:, 0] < 12)
    assert np.all(pairs[:, 1] >= 12)
    assert any("self-intersecting" in p for p in check_closed_surface(vertices, faces))


def test_separated_boxes_do_not_self_intersect() -> None:
    vertices, faces = _concatenate([_box((0, 0, 0)), _box((1.5, 0.2, -0.3))])
    assert self_intersections(vertices, faces).shape == (0, 2)
    assert check_closed_surface(vertices, faces) == []


def test_vertex_pushed_through_sphere_self_intersects() -> None:
    vertices, faces = _sphere()
    vertices[0] = -1.5 * vertices[0]
    pairs = self_intersections(vertices, faces)
    assert pairs.shape[0] > 0
    # The spike is made of the faces around vertex 0; each crossing involves one of them.
    spike = np.flatnonzero((faces == 0).any(axis=1))
    assert np.all(np.isin(pairs, spike).any(axis=1))
    assert any("self-intersecting" in p for p in check_closed_surface(vertices, faces))


def test_triangles_intersect_basic_cases() -> None:
    base = np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0]], dtype=float)
    piercing = np.array([[0.5, 0.5, -1], [0.5, 0.5, 1], [3, 3, 1]], dtype=float)
    above = base + np.array([0, 0, 1.0])
    beside = np.array([[5, 5, -1], [5, 5, 1], [6, 6, 0]], dtype=float)
    # Small enough to pass through `base` without any edge of `base` touching it.
    needle = np.array([[0.5, 0.5, -1], [0.6, 0.5, 1], [0.5, 0.6, 1]], dtype=float)
    tri_a = np.stack([base, base, base, piercing, base, needle])
    tri_b = np.stack([piercing, above, beside, base, needle, base])
    np.testing.assert_array_equal(
        triangles_intersect(tri_a, tri_b), [True, False, False, True, True, True]
    )


def _reference_intersect(a: np.ndarray, b: np.ndarray) -> bool:
    """Independent oracle for non-coplanar triangles (3, 3): both triangles cut the line where
    their planes meet in an interval, and they intersect iff the two intervals overlap."""

    def interval(tri: np.ndarray, other: np.ndarray, direction: np.ndarray) -> tuple[float, float]:
        normal = np.cross(other[1] - other[0], other[2] - other[0])
        dist = (tri - other[0]) @ normal
        points = []
        for i, j in ((0, 1), (1, 2), (2, 0)):
            if dist[i] * dist[j] < 0:
                points.append(tri[i] + (tri[j] - tri[i]) * dist[i] / (dist[i] - dist[j]))
        if len(points) < 2:
            return (np.inf, -np.inf)  # triangle does not reach the other's plane
        proj = [float(p @ direction) for p in points]
        return (min(proj), max(proj))

    direction = np.cross(np.cross(a[1] - a[0], a[2] - a[0]), np.cross(b[1] - b[0], b[2] - b[0]))
    lo_a, hi_a = interval(a, b, direction)
    lo_b, hi_b = interval(b, a, direction)
    return max(lo_a, lo_b) <= min(hi_a, hi_b)


def test_triangles_intersect_matches_interval_oracle() -> None:
    rng = np.random.default_rng(1)
    tri_a = rng.normal(size=(500, 3, 3))
    tri_b = rng.normal(size=(500, 3, 3))
    expected = np.array([_reference_intersect(a, b) for a, b in zip(tri_a, tri_b, strict=True)])
    # Random pairs near the origin give a healthy mix of both outcomes.
    assert 50 < expected.sum() < 450
    np.testing.assert_array_equal(triangles_intersect(tri_a, tri_b), expected)
    np.testing.assert_array_equal(triangles_intersect(tri_b, tri_a), expected)


def test_triangles_intersect_when_no_vertex_is_inside_the_other() -> None:
    # Two triangles crossing like chain links: every crossing edge belongs to one triangle
    # only, so a one-directional test would miss half of these configurations.
    tri_a = np.array([[[0, 0, 0], [4, 0, 0], [2, 3, 0]]], dtype=float)
    tri_b = np.array([[[2, 1, -1], [2, 1, 1], [2, -5, 0]]], dtype=float)
    assert triangles_intersect(tri_a, tri_b)[0]
    assert triangles_intersect(tri_b, tri_a)[0]


def test_broad_phase_matches_brute_force() -> None:
    # A soup of random triangles of very different sizes and shapes, including slivers whose
    # corners lie far from the centroid; the k-d tree broad phase must not lose any pair.
    rng = np.random.default_rng(0)
    n = 80
    centres = rng.uniform(-2, 2, size=(n, 1, 3))
    scales = rng.uniform(0.05, 1.5, size=(n, 1, 1))
    corners = centres + scales * rng.normal(size=(n, 3, 3))
    corners[::7, 2] = corners[::7, 0] + 1e-3 * (corners[::7, 1] - corners[::7, 0]) + 0.01
    vertices = corners.reshape(-1, 3)
    faces = np.arange(3 * n).reshape(n, 3)

    i, j = np.triu_indices(n, k=1)
    hit = triangles_intersect(vertices[faces[i]], vertices[faces[j]])
    expected = np.stack([i[hit], j[hit]], axis=1)
    found = self_intersections(vertices, faces)
    assert expected.shape[0] > 0
    np.testing.assert_array_equal(found, expected)


def test_broad_phase_finds_slivers_meeting_far_from_their_centroids() -> None:
    # Long thin triangles reach up to twice the farthest-corner radius apart; A's tip region
    # pierces B, whose centroid lies further from A's than either triangle's radius.
    tri_a = np.array([[0, 0, -1], [0, 0, 1], [10, 0, 0]], dtype=float)
    tri_b = np.array([[9, 20, -1], [9, 20, 1], [9, -0.2, 0]], dtype=float)
    vertices = np.concatenate([tri_a, tri_b])
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    centre_gap = np.linalg.norm(tri_a.mean(axis=0) - tri_b.mean(axis=0))
    radii = [np.linalg.norm(t - t.mean(axis=0), axis=1).max() for t in (tri_a, tri_b)]
    assert centre_gap > max(radii)
    np.testing.assert_array_equal(self_intersections(vertices, faces), [[0, 1]])


def test_pairs_sharing_a_vertex_are_ignored() -> None:
    # Two triangles sharing vertex 0 and folded through each other.
    vertices = np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0], [1, 0.3, -1], [1, 0.3, 1]], dtype=float)
    faces = np.array([[0, 1, 2], [0, 3, 4]])
    assert triangles_intersect(vertices[faces[[0]]], vertices[faces[[1]]])[0]
    assert self_intersections(vertices, faces).shape == (0, 2)


# --- volume and Euler characteristic ------------------------------------------------------


def test_unit_cube_signed_volume() -> None:
    vertices, faces = _box((0, 0, 0))
    assert signed_volume(vertices, faces) == pytest.approx(1.0)
    assert signed_volume(vertices, faces[:, ::-1]) == pytest.approx(-1.0)
    # Volume does not depend on where the cube is.
    assert signed_volume(vertices + 100.0, faces) == pytest.approx(1.0)


def test_inside_out_cube_is_reported() -> None:
    vertices, faces = _box((0, 0, 0))
    problems = check_closed_surface(vertices, faces[:, ::-1])
    assert len(problems) == 1
    assert "volume" in problems[0]


def test_euler_characteristic_of_torus_is_zero() -> None:
    torus = trimesh.creation.torus(major_radius=1.0, minor_radius=0.3)
    assert euler_characteristic(len(torus.vertices), np.array(torus.faces)) == 0


# --- input handling -----------------------------------------------------------------------


def test_bad_inputs_are_reported_not_raised() -> None:
    vertices, faces = _sphere()
    assert check_closed_surface(vertices, np.zeros((0, 3), dtype=int)) == ["mesh has no faces"]
    out_of_range = faces.copy()
    out_of_range[0, 0] = len(vertices)
    problems = check_closed_surface(vertices, out_of_range)
    assert len(problems) == 1
    assert "outside" in problems[0]
    assert check_closed_surface(vertices[:, :2], faces)
    nan_vertices = vertices.copy()
    nan_vertices[3] = np.nan
    assert any("non-finite" in p for p in check_closed_surface(nan_vertices, faces))
