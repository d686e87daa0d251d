"""Lighting set-ups for the synthetic data: directional, point and spot lights with ambient.

The paper lit its renders with 30 HDR environments; handshape draws a fixed, numbered family of
set-ups (key / fill / rim arrangements, intensities and colour temperatures) from a constant
seed, so set-up k means the same thing on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handshape.render.synthetic import Light

# Colour of a black body at these temperatures (Kelvin), as linear RGB normalised to max 1.
_KELVIN = np.array([2700.0, 3500.0, 4500.0, 5500.0, 6500.0, 8000.0])
_KELVIN_RGB = np.array(
    [
        [1.00, 0.40, 0.11],
        [1.00, 0.55, 0.27],
        [1.00, 0.72, 0.53],
        [1.00, 0.86, 0.76],
        [1.00, 0.97, 0.95],
        [0.80, 0.84, 1.00],
    ]
)
_FAMILY_SEED = 2019  # fixed: set-ups are part of the data set's definition
ARRANGEMENTS = ("key_fill", "point_key", "spot_fill", "three_point")


def kelvin_to_rgb(kelvin: float) -> tuple[float, float, float]:
    """Linear RGB (max component 1) of a light of the given colour temperature."""
    rgb = np.array([np.interp(kelvin, _KELVIN, _KELVIN_RGB[:, c]) for c in range(3)])
    rgb /= rgb.max()
    return (float(rgb[0]), float(rgb[1]), float(rgb[2]))


@dataclass(frozen=True)
class LightingSetup:
    arrangement: str
    ambient: tuple[float, float, float]
    lights: tuple[Light, ...]


def _frontal_direction(rng: np.random.Generator, spread: float) -> tuple[float, float, float]:
    """A light direction travelling away from the camera (-z), tilted by up to `spread` rad."""
    tilt = rng.uniform(0.0, spread)
    azimuth = rng.uniform(0.0, 2 * np.pi)
    d = np.array([np.sin(tilt) * np.cos(azimuth), np.sin(tilt) * np.sin(azimuth), -np.cos(tilt)])
    return (float(d[0]), float(d[1]), float(d[2]))


def _setup(index: int) -> LightingSetup:
    rng = np.random.default_rng([_FAMILY_SEED, index])
    arrangement = ARRANGEMENTS[index % len(ARRANGEMENTS)]
    key_color = kelvin_to_rgb(rng.uniform(2700, 8000))
    fill_color = kelvin_to_rgb(rng.uniform(3500, 8000))
    ambient_level = rng.uniform(0.08, 0.35)
    ambient_tint = np.asarray(kelvin_to_rgb(rng.uniform(4000, 8000)))
    lights: list[Light] = []
    if arrangement in ("key_fill", "three_point", "spot_fill"):
        lights.append(
            Light(
                "directional", _frontal_direction(rng, 1.1), key_color, float(rng.uniform(2.0, 4.5))
            )
        )
    if arrangement == "point_key":
        position = (
            float(rng.uniform(-0.4, 0.4)),
            float(rng.uniform(-0.4, 0.4)),
            float(rng.uniform(-0.1, 0.2)),
        )
        lights.append(
            Light(
                "point",
                (0.0, 0.0, -1.0),
                key_color,
                float(rng.uniform(0.6, 1.6)),
                position=position,
            )
        )
    if arrangement == "spot_fill":
        position = (float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-0.3, 0.3)), 0.0)
        lights.append(
            Light(
                "spot",
                _frontal_direction(rng, 0.2),
                key_color,
                float(rng.uniform(1.0, 3.0)),
                position=position,
                cone=float(rng.uniform(0.3, 0.7)),
            )
        )
    if arrangement in ("key_fill", "three_point", "point_key"):
        lights.append(
            Light(
                "directional",
                _frontal_direction(rng, 1.3),
                fill_color,
                float(rng.uniform(0.4, 1.2)),
            )
        )
    if arrangement == "three_point":
        # A rim light from behind the hand, travelling towards the camera.
        tilt = rng.uniform(0.3, 0.9)
        azimuth = rng.uniform(0, 2 * np.pi)
        direction = (
            float(np.sin(tilt) * np.cos(azimuth)),
            float(np.sin(tilt) * np.sin(azimuth)),
            float(np.cos(tilt)),
        )
        lights.append(
            Light(
                "directional",
                direction,
                kelvin_to_rgb(rng.uniform(5000, 8000)),
                float(rng.uniform(1.0, 3.0)),
            )
        )
    ambient = tuple(float(a) for a in ambient_level * ambient_tint)
    return LightingSetup(arrangement, (ambient[0], ambient[1], ambient[2]), tuple(lights))


def lighting_setups(count: int) -> list[LightingSetup]:
    """The first `count` set-ups of the family (the same on every machine)."""
    return [_setup(k) for k in range(count)]
