"""render/direct.py: the projection of OpenCV intrinsics and the limits of the raw-GL drawing
(its images are specified through SyntheticRenderer in test_synthetic.py and against a
reference rasteriser in tests/data/synth/test_generate.py)."""

from __future__ import annotations

import numpy as np
import pytest

from handshape.render.direct import MAX_LIGHTS, projection_matrix
from handshape.render.synthetic import HAND, OBJECT, Light, Part, SyntheticRenderer

SIZE = 40
K = np.array([[55.0, 0.0, 18.5], [0.0, 60.0, 21.0], [0.0, 0.0, 1.0]])


def test_projection_puts_camera_points_on_their_opencv_pixels() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform([-0.2, -0.2, 0.3], [0.2, 0.2, 2.0], size=(50, 3))  # OpenCV frame
    pixels = (points @ K.T)[:, :2] / points[:, 2:]
    gl = np.concatenate([points * [1.0, -1.0, -1.0], np.ones((50, 1))], axis=1)
    clip = gl @ projection_matrix(K, SIZE, 0.05, 10.0).T
    ndc = clip[:, :3] / clip[:, 3:]
    # NDC x, y in [-1, 1] span the image; pixel centres at integers, row 0 at the top.
    u = (ndc[:, 0] + 1) / 2 * SIZE - 0.5
    v = (1 - ndc[:, 1]) / 2 * SIZE - 0.5
    np.testing.assert_allclose(np.stack([u, v], axis=1), pixels, atol=1e-9)
    assert np.all((ndc[:, 2] > -1) & (ndc[:, 2] < 1))  # between the near and far planes


def _square(z: float, label: int, half: float = 0.05) -> Part:
    vertices = np.array([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]])
    # Counter-clockwise seen from the camera (OpenCV: y down), so it faces the camera.
    faces = np.array([[0, 2, 1], [0, 3, 2]])
    return Part(vertices, faces, np.array([0.5, 0.4, 0.3]), 0.6, label)


def test_the_nearer_part_wins_each_pixel_and_ids_follow_it() -> None:
    light = Light("directional", (0.0, 0.0, -1.0), (1.0, 1.0, 1.0), 3.0)
    with SyntheticRenderer(SIZE) as renderer:
        rgba, depth, ids = renderer.render_parts(
            [_square(0.5, HAND), _square(0.4, OBJECT, half=0.02)], K, [light], np.zeros(3)
        )
    centre = (21, 18)
    assert ids[centre] == OBJECT and depth[centre] == pytest.approx(0.4, abs=1e-4)
    assert ids[21, 14] == HAND and depth[21, 14] == pytest.approx(0.5, abs=1e-4)
    assert ids[0, 0] == 0 and depth[0, 0] == 0 and rgba[0, 0, 3] == 0


def test_more_lights_than_the_shader_holds_are_refused() -> None:
    light = Light("directional", (0.0, 0.0, -1.0), (1.0, 1.0, 1.0), 1.0)
    with SyntheticRenderer(SIZE) as renderer, pytest.raises(ValueError, match="at most"):
        renderer.render_parts([_square(0.5, HAND)], K, [light] * (MAX_LIGHTS + 1), np.zeros(3))
