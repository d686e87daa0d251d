"""The fixed family of lighting set-ups used by the synthetic data."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import trimesh

from handshape.data.synth.lighting import (
    ARRANGEMENTS,
    LightingSetup,
    kelvin_to_rgb,
    lighting_setups,
)
from handshape.render.synthetic import SyntheticRenderer

COUNT = 32


@pytest.fixture(scope="module")
def setups() -> list[LightingSetup]:
    return lighting_setups(COUNT)


@pytest.fixture(scope="module")
def renderer() -> Iterator[SyntheticRenderer]:
    with SyntheticRenderer(64) as r:
        yield r


def test_setups_are_deterministic_and_a_prefix_of_the_family(setups: list[LightingSetup]) -> None:
    assert len(setups) == COUNT
    assert lighting_setups(COUNT) == setups
    assert lighting_setups(8) == setups[:8]  # set-up k does not depend on how many are asked


def test_setups_are_all_different(setups: list[LightingSetup]) -> None:
    assert len({repr(s) for s in setups}) == COUNT


def test_family_has_directional_point_and_spot_lights(setups: list[LightingSetup]) -> None:
    kinds = {light.kind for s in setups for light in s.lights}
    assert kinds == {"directional", "point", "spot"}
    assert {s.arrangement for s in setups} == set(ARRANGEMENTS)
    for s in setups:
        assert 1 <= len(s.lights) <= 3


def test_light_parameters_are_physical(setups: list[LightingSetup]) -> None:
    for s in setups:
        assert all(0 < a < 1 for a in s.ambient)
        for light in s.lights:
            assert light.intensity > 0
            assert all(0 <= c <= 1 for c in light.color) and max(light.color) == pytest.approx(1)
            assert np.linalg.norm(light.direction) == pytest.approx(1.0)
            if light.kind == "spot":
                assert 0 < light.cone < np.pi / 2


def test_key_lights_shine_from_the_camera_side(setups: list[LightingSetup]) -> None:
    # Directions are in OpenGL camera coordinates: travelling away from the camera is -z.
    for s in setups:
        key = s.lights[0]
        assert key.direction[2] < 0, s.arrangement
        if s.arrangement == "three_point":
            assert s.lights[-1].direction[2] > 0  # the rim light comes from behind the hand


def test_colour_temperatures_run_from_warm_to_cool() -> None:
    warm, neutral, cool = kelvin_to_rgb(2700), kelvin_to_rgb(5500), kelvin_to_rgb(8000)
    assert warm[0] == 1 and warm[2] < 0.2
    assert warm[2] < neutral[2] < cool[2]
    assert cool[2] == 1
    blue = [kelvin_to_rgb(k)[2] for k in np.linspace(2700, 6500, 20)]
    assert np.all(np.diff(blue) > 0)


@pytest.mark.parametrize(
    "kelvin",
    [2700.0, 3000.0, 6500.0, 7000.0, 8000.0],
)
def test_kelvin_colours_have_largest_component_one(kelvin: float) -> None:
    assert max(kelvin_to_rgb(kelvin)) == pytest.approx(1.0)


@pytest.mark.parametrize("distance", [0.3, 0.8])
def test_every_setup_lights_a_hand_sized_object_without_blowing_it_out(
    setups: list[LightingSetup], renderer: SyntheticRenderer, distance: float
) -> None:
    # A mid-tone sphere of a hand's size at the configured near and far camera distances.
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.08)
    K = np.array([[50.0 / distance, 0, 31.5], [0, 50.0 / distance, 31.5], [0, 0, 1]])
    means = []
    for k, s in enumerate(setups):
        rgba, depth = renderer.render(
            sphere.vertices + np.array([0.0, 0.0, distance]),
            sphere.faces,
            K,
            (0.5, 0.3, 0.2),
            list(s.lights),
            np.asarray(s.ambient),
        )
        colour = rgba[..., :3][depth > 0].astype(float)
        assert colour.mean() > 40, k
        assert np.mean(colour.min(axis=1) == 255) < 0.8, k
        means.append(colour.mean(axis=0))
    # The set-ups also look different: brightness and tint vary across the family.
    means_arr = np.array(means)
    assert np.ptp(means_arr.mean(axis=1)) > 30
    assert np.ptp(means_arr[:, 2] / means_arr[:, 0]) > 0.1
