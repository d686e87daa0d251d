"""render/shadows.py: the shadow map's view of a scene, fitted to what the camera sees."""

from __future__ import annotations

import numpy as np
import pytest

from handshape.render.direct import projection_matrix
from handshape.render.shadows import (
    directional_view,
    light_view,
    perspective_view,
    visible_points,
)

SIZE = 64
K = np.array([[80.0, 0.0, 31.5], [0.0, 80.0, 31.5], [0.0, 0.0, 1.0]])
PROJECTION = projection_matrix(K, SIZE, 0.05, 10.0)


def _map(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 3) map coordinates (u, v, depth) of points (N, 3) under a (4, 4) texture matrix."""
    h = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ matrix.T
    return h[:, :3] / h[:, 3:]


@pytest.fixture
def scene() -> tuple[np.ndarray, np.ndarray]:
    """A cloud in front of the camera (OpenGL frame: -z ahead) and a long arm leaving the
    picture towards the lower left: (all points, the visible ones)."""
    rng = np.random.default_rng(0)
    hand = rng.uniform([-0.08, -0.08, -0.55], [0.08, 0.08, -0.45], size=(200, 3))
    arm = np.linspace([0.0, 0.0, -0.5], [-0.6, -0.5, -0.3], 50)
    points = np.concatenate([hand, arm])
    return points, visible_points(points, PROJECTION)


def test_visible_points_are_those_in_the_picture(scene: tuple[np.ndarray, np.ndarray]) -> None:
    points, visible = scene
    assert 200 <= len(visible) < len(points)  # the hand, not the arm's far end
    ndc = np.concatenate([visible, np.ones((len(visible), 1))], axis=1) @ PROJECTION.T
    assert np.all(np.abs(ndc[:, :2] / ndc[:, 3:]) <= 1.1)
    behind = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 2.0]])  # nothing in the picture: keep all
    np.testing.assert_array_equal(visible_points(behind, PROJECTION), behind)


@pytest.mark.parametrize(
    "make",
    [
        lambda pts, vis: directional_view(np.array([0.3, -0.4, -1.0]), pts, vis),
        lambda pts, vis: perspective_view(np.array([0.2, 0.1, 0.0]), pts, vis),
    ],
    ids=["directional", "perspective"],
)
def test_the_view_covers_the_visible_receivers_and_every_caster_in_depth(
    scene: tuple[np.ndarray, np.ndarray], make: object
) -> None:
    points, visible = scene
    view = make(points, visible)  # type: ignore[operator]
    uvd = _map(view.texture, visible)
    assert np.all((uvd[:, :2] > 0) & (uvd[:, :2] < 1))
    # Tight: the visible receivers span most of the map (no texels wasted on the arm).
    assert (uvd[:, :2].max(axis=0) - uvd[:, :2].min(axis=0)).max() > 0.8
    depth = _map(view.texture, points)[:, 2]
    assert np.all((depth > 0) & (depth < 1))  # every vertex can cast
    # clip and texture agree: NDC = 2 * map - 1.
    h = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ view.clip.T
    np.testing.assert_allclose(h[:, :3] / h[:, 3:], 2 * _map(view.texture, points) - 1, atol=1e-9)
    assert 0.1 < view.metres_per_unit < 1.0


def test_depth_grows_along_the_light(scene: tuple[np.ndarray, np.ndarray]) -> None:
    points, visible = scene
    direction = np.array([0.3, -0.4, -1.0])
    view = directional_view(direction, points, visible)
    start = np.array([[0.0, 0.0, -0.5]])
    ray = start + np.linspace(0, 0.05, 5)[:, None] * direction / np.linalg.norm(direction)
    uvd = _map(view.texture, ray)
    np.testing.assert_allclose(
        uvd[:, :2], np.repeat(uvd[:1, :2], 5, axis=0), atol=1e-9
    )  # one map texel
    assert np.all(np.diff(uvd[:, 2]) > 0)
    eye = np.array([0.2, 0.1, 0.0])
    view = perspective_view(eye, points, visible)
    ray = eye + np.linspace(0.3, 0.6, 5)[:, None] * (start - eye)
    uvd = _map(view.texture, ray)
    np.testing.assert_allclose(uvd[:, :2], np.repeat(uvd[:1, :2], 5, axis=0), atol=1e-9)
    assert np.all(np.diff(uvd[:, 2]) > 0)


def test_an_unknown_light_kind_is_refused(scene: tuple[np.ndarray, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="unknown light kind 'area'"):
        light_view("area", np.zeros(3), np.zeros(3), scene[0], PROJECTION)
