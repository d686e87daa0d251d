"""SyntheticRenderer: exact mask, metric depth at pixel centres, OpenCV camera frame, lights."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import trimesh

from handshape.render.synthetic import Light, SyntheticRenderer

SIZE = 128
FOCAL = 300.0
CX, CY = 60.3, 66.7  # off-centre and fractional: any half-pixel slip shows
RADIUS = 0.05
DISTANCE = 0.3
K = np.array([[FOCAL, 0.0, CX], [0.0, FOCAL, CY], [0.0, 0.0, 1.0]])
SKIN = (0.6, 0.35, 0.2)
HEADLIGHT = Light("directional", (0.0, 0.0, -1.0), (1.0, 1.0, 1.0), 3.0)
AMBIENT = np.array([0.1, 0.1, 0.1])


@pytest.fixture(scope="module")
def renderer() -> Iterator[SyntheticRenderer]:
    with SyntheticRenderer(SIZE) as r:
        yield r


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    # 4 subdivisions: the facets deviate from the sphere by ~0.05 mm, far below 1 mm.
    return trimesh.creation.icosphere(subdivisions=4, radius=RADIUS)


def render(
    renderer: SyntheticRenderer,
    sphere: trimesh.Trimesh,
    centre: tuple[float, float, float] = (0.0, 0.0, DISTANCE),
    lights: list[Light] | None = None,
    ambient: np.ndarray = AMBIENT,
    skin: tuple[float, float, float] = SKIN,
) -> tuple[np.ndarray, np.ndarray]:
    lights = [HEADLIGHT] if lights is None else lights
    return renderer.render(
        sphere.vertices + np.asarray(centre), sphere.faces, K, skin, lights, ambient
    )


def pixel_grid() -> tuple[np.ndarray, np.ndarray]:
    v, u = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    return u, v


def analytic_depth() -> tuple[np.ndarray, np.ndarray]:
    """Camera z where the ray through each pixel centre meets the sphere; and its radius (px)."""
    u, v = pixel_grid()
    x, y = (u - CX) / FOCAL, (v - CY) / FOCAL
    norm2 = x * x + y * y + 1.0
    disc = DISTANCE**2 - norm2 * (DISTANCE**2 - RADIUS**2)
    z = np.where(disc >= 0, (DISTANCE - np.sqrt(np.maximum(disc, 0))) / norm2, 0.0)
    return z, np.hypot(u - CX, v - CY)


SILHOUETTE_PX = FOCAL * RADIUS / np.sqrt(DISTANCE**2 - RADIUS**2)


def test_outputs_have_the_documented_types(
    renderer: SyntheticRenderer, sphere: trimesh.Trimesh
) -> None:
    rgba, depth = render(renderer, sphere)
    assert rgba.shape == (SIZE, SIZE, 4) and rgba.dtype == np.uint8
    assert depth.shape == (SIZE, SIZE) and depth.dtype == np.float32


def test_depth_is_metric_camera_z_at_pixel_centres(
    renderer: SyntheticRenderer, sphere: trimesh.Trimesh
) -> None:
    _, depth = render(renderer, sphere)
    expected, radius = analytic_depth()
    # The pixel nearest the principal point sees the sphere's front pole.
    centre = depth[round(CY), round(CX)]
    assert abs(centre - expected[round(CY), round(CX)]) < 1e-3
    assert abs(centre - (DISTANCE - RADIUS)) < 1e-3
    inner = radius < 0.8 * SILHOUETTE_PX  # away from the grazing rim
    assert np.abs(depth[inner] - expected[inner]).max() < 1e-3


def test_alpha_is_opaque_exactly_where_there_is_depth(
    renderer: SyntheticRenderer, sphere: trimesh.Trimesh
) -> None:
    rgba, depth = render(renderer, sphere)
    hand = depth > 0
    assert np.all(rgba[..., 3][hand] == 255)
    assert np.all(rgba[..., 3][~hand] == 0)
    assert np.all(rgba[..., :3][~hand] == 0)  # zero colour off the object
    assert rgba[..., :3][hand].mean() > 20  # lit on it


def test_mask_is_the_projected_disc_centred_on_the_principal_point(
    renderer: SyntheticRenderer, sphere: trimesh.Trimesh
) -> None:
    _, depth = render(renderer, sphere)
    mask = depth > 0
    _, radius = analytic_depth()
    assert np.all(mask[radius < SILHOUETTE_PX - 1])
    assert not np.any(mask[radius > SILHOUETTE_PX + 1])
    u, v = pixel_grid()
    # Pixel centres at integer coordinates: the disc's centroid is (cx, cy), not half a pixel off.
    assert abs(u[mask].mean() - CX) < 0.1
    assert abs(v[mask].mean() - CY) < 0.1


def test_camera_frame_is_opencv_x_right_y_down_z_forward(
    renderer: SyntheticRenderer, sphere: trimesh.Trimesh
) -> None:
    u, v = pixel_grid()
    shift = 0.008  # the shifted disc stays inside the crop
    _, right = render(renderer, sphere, centre=(shift, 0.0, DISTANCE))
    _, down = render(renderer, sphere, centre=(0.0, shift, DISTANCE))
    step = FOCAL * shift / DISTANCE
    assert u[right > 0].mean() == pytest.approx(CX + step, abs=0.5)
    assert v[right > 0].mean() == pytest.approx(CY, abs=0.1)
    assert v[down > 0].mean() == pytest.approx(CY + step, abs=0.5)
    assert u[down > 0].mean() == pytest.approx(CX, abs=0.1)
    _, far = render(renderer, sphere, centre=(0.0, 0.0, 2 * DISTANCE))
    assert (far > 0).sum() < 0.3 * (right > 0).sum()  # farther along +z: smaller
    assert far[round(CY), round(CX)] == pytest.approx(2 * DISTANCE - RADIUS, abs=1e-3)


def test_nothing_behind_the_camera_is_drawn(
    renderer: SyntheticRenderer, sphere: trimesh.Trimesh
) -> None:
    rgba, depth = render(renderer, sphere, centre=(0.0, 0.0, -DISTANCE))
    assert not depth.any() and not rgba.any()


@pytest.mark.parametrize(
    "light",
    [
        HEADLIGHT,
        Light("point", (0.0, 0.0, -1.0), (1.0, 1.0, 1.0), 1.0, position=(0.0, 0.0, 0.0)),
        Light("spot", (0.0, 0.0, -1.0), (1.0, 1.0, 1.0), 2.0, position=(0.0, 0.0, 0.0), cone=0.6),
    ],
    ids=lambda light: light.kind,
)
def test_every_light_kind_lights_the_object(
    renderer: SyntheticRenderer, sphere: trimesh.Trimesh, light: Light
) -> None:
    dark, depth = render(renderer, sphere, lights=[])
    lit, _ = render(renderer, sphere, lights=[light])
    hand = depth > 0
    assert lit[..., :3][hand].astype(float).mean() > dark[..., :3][hand].astype(float).mean() + 30
    colour = lit[..., :3][hand].astype(float).mean(axis=0)
    assert colour[0] > colour[1] > colour[2]  # the skin colour shows under white light


def test_a_narrow_spot_lights_only_inside_its_cone(
    renderer: SyntheticRenderer, sphere: trimesh.Trimesh
) -> None:
    spot = Light("spot", (0.0, 0.0, -1.0), (1.0, 1.0, 1.0), 3.0, cone=0.04)
    dark, depth = render(renderer, sphere, lights=[])
    lit, _ = render(renderer, sphere, lights=[spot])
    _, radius = analytic_depth()
    hand = depth > 0
    centre, rim = hand & (radius < 3), hand & (radius > 0.6 * SILHOUETTE_PX)
    gain = lit[..., :3].astype(float) - dark[..., :3].astype(float)
    assert gain[centre].mean() > 30
    assert np.abs(gain[rim]).max() <= 1


def test_an_unknown_light_kind_is_refused(
    renderer: SyntheticRenderer, sphere: trimesh.Trimesh
) -> None:
    with pytest.raises(ValueError, match=r"unknown light kind 'area'"):
        render(renderer, sphere, lights=[Light("area", (0, 0, -1), (1, 1, 1), 1.0)])


def test_renderer_can_be_closed_twice_and_reused(sphere: trimesh.Trimesh) -> None:
    small = SyntheticRenderer(48)
    k = np.array([[100.0, 0, 23.5], [0, 100.0, 23.5], [0, 0, 1]])
    first = small.render(
        sphere.vertices + np.array([0, 0, DISTANCE]), sphere.faces, k, SKIN, [HEADLIGHT], AMBIENT
    )
    small.close()
    small.close()
    again = small.render(
        sphere.vertices + np.array([0, 0, DISTANCE]), sphere.faces, k, SKIN, [HEADLIGHT], AMBIENT
    )
    small.close()
    assert first[0].shape == (48, 48, 4)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
