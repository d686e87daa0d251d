"""The consumer depth sensor model: noise grows with distance, holes at edges, quantisation."""

from __future__ import annotations

import numpy as np
import pytest

from handshape.data.sensor import SensorModel, degrade_depth, degrade_image, depth_edges

NO_HOLES = SensorModel(edge_drop=0.0, quantum_at_1m=1e-9)


def plane(z: float, size: int = 64) -> np.ndarray:
    return np.full((size, size), z)


def test_noise_grows_with_the_square_of_the_distance() -> None:
    near = degrade_depth(plane(0.5), np.random.default_rng(0), NO_HOLES) - 0.5
    far = degrade_depth(plane(1.0), np.random.default_rng(1), NO_HOLES) - 1.0
    assert abs(far.mean()) < 3 * NO_HOLES.noise_at_1m / 64  # unbiased
    assert far.std() == pytest.approx(NO_HOLES.noise_at_1m, rel=0.1)
    assert far.std() / near.std() == pytest.approx(4.0, rel=0.15)


def test_readings_are_quantised_in_steps_growing_with_distance() -> None:
    model = SensorModel(noise_at_1m=0.01, quantum_at_1m=0.004, edge_drop=0.0)
    out = degrade_depth(plane(1.0), np.random.default_rng(0), model)
    steps = out / 0.004
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    assert len(np.unique(out)) > 3  # noise moves readings across several steps


def test_holes_only_on_depth_edges_and_background_stays_empty() -> None:
    depth = np.zeros((32, 32))
    depth[8:24, 8:24] = 0.6
    depth[8:24, 16:24] = 0.7  # a 10 cm step inside the square
    edges = depth_edges(depth, 0.01)
    assert edges[8, 12] and edges[12, 8] and edges[12, 15] and edges[12, 16]
    assert not edges[12, 12] and not edges[0, 0]
    out = degrade_depth(depth, np.random.default_rng(0), SensorModel(edge_drop=1.0))
    assert np.all(out[depth == 0] == 0)
    assert np.all(out[edges] == 0)
    assert np.all(out[(depth > 0) & ~edges] > 0)
    some = degrade_depth(depth, np.random.default_rng(0), SensorModel(edge_drop=0.5))
    dropped = (some[edges] == 0).mean()
    assert 0.25 < dropped < 0.75


def test_pure_function_of_its_generator() -> None:
    depth = plane(0.8, 16)
    before = depth.copy()
    a = degrade_depth(depth, np.random.default_rng(3), SensorModel())
    b = degrade_depth(depth, np.random.default_rng(3), SensorModel())
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(depth, before)
    assert a.dtype == np.float32


def test_image_blur_and_noise() -> None:
    image = np.zeros((16, 16, 3), np.uint8)
    image[:, 8:] = 200
    out = degrade_image(image, np.random.default_rng(0), SensorModel(image_noise=0.0))
    assert 0 < out[8, 7, 0] < 200 and 0 < out[8, 8, 0] < 200  # the edge is blurred
    noisy = degrade_image(image, np.random.default_rng(0), SensorModel(blur_sigma=0, image_noise=5))
    assert 2 < np.abs(noisy[:, 8:].astype(float) - 200).mean() < 8
    with pytest.raises(ValueError, match="uint8"):
        degrade_image(image.astype(float), np.random.default_rng(0), SensorModel())
