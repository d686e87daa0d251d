"""render/direct.py: the projection of OpenCV intrinsics and the limits of the raw-GL drawing
(its images are specified through SyntheticRenderer in test_synthetic.py and against a
reference rasteriser in tests/data/synth/test_generate.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest
from scipy import ndimage

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


# ----------------------------------------------------------------------------- shadows

SHADOW_SIZE = 128
SHADOW_K = np.array([[160.0, 0.0, 63.5], [0.0, 160.0, 63.5], [0.0, 0.0, 1.0]])
AMBIENT = np.full(3, 0.1)
# Where each kind of light shines from: the occluder's shadow falls off its own image.
SHADOW_LIGHTS = {
    "directional": Light("directional", (0.7, -0.5, -1.0), (1.0, 1.0, 1.0), 3.0),
    "spot": Light("spot", (-0.2, 0.1, -1.0), (1.0, 1.0, 1.0), 1.0, (0.1, -0.05, 0.0), 0.8),
    "point": Light("point", (0.0, 0.0, -1.0), (1.0, 1.0, 1.0), 1.0, (-0.1, -0.08, 0.05)),
}


def _plane_and_occluder() -> list[Part]:
    """A 24 cm square facing the camera at 50 cm and a 4 cm square 10 cm in front of it."""
    return [_square(0.5, HAND, half=0.12), _square(0.4, OBJECT, half=0.02)]


def _grey(rgba: np.ndarray) -> np.ndarray:
    return rgba[..., :3].astype(np.float64).mean(axis=-1)


@pytest.fixture(scope="module")
def shadow_renderer() -> Iterator[SyntheticRenderer]:
    with SyntheticRenderer(SHADOW_SIZE, shadow_map_size=256) as renderer:
        yield renderer


def _render(renderer: SyntheticRenderer, light: Light) -> tuple[np.ndarray, np.ndarray]:
    rgba, _, ids = renderer.render_parts(_plane_and_occluder(), SHADOW_K, [light], AMBIENT)
    return _grey(rgba), ids


@pytest.mark.parametrize("softness", [0.0, 0.006])
@pytest.mark.parametrize("kind", sorted(SHADOW_LIGHTS))
def test_an_occluder_darkens_the_plane_behind_it_and_nothing_else(
    shadow_renderer: SyntheticRenderer, kind: str, softness: float
) -> None:
    light = SHADOW_LIGHTS[kind]
    plain, ids = _render(shadow_renderer, light)
    hard, same_ids = _render(shadow_renderer, dataclasses.replace(light, shadow=softness))
    np.testing.assert_array_equal(ids, same_ids)  # shadows change shading, never geometry
    plane = ids == HAND
    drop = np.where(plane, plain - hard, 0.0)
    shadow = drop > 20  # grey levels
    # A shadow of about the occluder's size (4 cm seen from 50 cm: about 13 px across) ...
    assert 80 < shadow.sum() < 600, shadow.sum()
    # ... that is not pitch black: the ambient light still reaches it.
    assert hard[shadow].min() > 10
    # Everywhere else on the plane (2 px away from the shadow's border) nothing changed: no
    # acne; and a shadow never brightens anything.
    elsewhere = plane & ~ndimage.binary_dilation(drop > 1, iterations=2)
    assert elsewhere.sum() > 0.8 * plane.sum() - 4 * shadow.sum()
    assert np.abs(plain - hard)[elsewhere].max() <= 1.0
    assert (hard <= plain + 1.0).all()


def _intermediate(plain: np.ndarray, shaded: np.ndarray, plane: np.ndarray) -> int:
    """Plane pixels between 10 % and 90 % of the way from lit to fully shadowed."""
    ratio = np.where(plane, shaded / np.maximum(plain, 1.0), 1.0)
    full = ratio.min()
    depth = (1.0 - ratio) / (1.0 - full)
    return int((plane & (depth > 0.1) & (depth < 0.9)).sum())


@pytest.mark.parametrize("kind", sorted(SHADOW_LIGHTS))
def test_a_soft_shadow_has_a_wider_edge_than_a_hard_one(
    shadow_renderer: SyntheticRenderer, kind: str
) -> None:
    light = SHADOW_LIGHTS[kind]
    plain, ids = _render(shadow_renderer, light)
    hard, _ = _render(shadow_renderer, dataclasses.replace(light, shadow=0.0))
    soft, _ = _render(shadow_renderer, dataclasses.replace(light, shadow=0.006))
    plane = ids == HAND
    assert _intermediate(plain, soft, plane) > 2 * _intermediate(plain, hard, plane)
    # The same light is blocked: about the same amount of shadow overall.
    total_hard, total_soft = (plain - hard)[plane].sum(), (plain - soft)[plane].sum()
    assert total_soft == pytest.approx(total_hard, rel=0.25)


def test_a_negative_shadow_softness_is_refused(shadow_renderer: SyntheticRenderer) -> None:
    light = dataclasses.replace(SHADOW_LIGHTS["directional"], shadow=-0.01)
    with pytest.raises(ValueError, match="softness"):
        _render(shadow_renderer, light)
