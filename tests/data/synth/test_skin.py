"""Procedural skin: where its features sit on the hand, and how a sample's albedo is drawn."""

from __future__ import annotations

import numpy as np
import pytest

from handshape.config import PACKAGE_CONFIGS
from handshape.data.synth.scene import SynthConfig
from handshape.data.synth.skin import SkinMaps, noise_field, skin_albedo, skin_maps
from handshape.handmodel.model import HandModel
from handshape.joints import TIP_JOINTS
from handshape.render.synthetic import vertex_normals

CONFIG_PATH = PACKAGE_CONFIGS / "data" / "synthetic.yaml"
DARK = np.array([0.05, 0.025, 0.015])  # linear RGB of a dark skin tone


@pytest.fixture(scope="module")
def model() -> HandModel:
    return HandModel.default()


@pytest.fixture(scope="module")
def maps(model: HandModel) -> SkinMaps:
    rest = model.v_template.numpy().astype(np.float64)
    return skin_maps(rest, vertex_normals(rest, model.faces.numpy()), model.rest_joints)


@pytest.fixture(scope="module")
def settings() -> dict:
    return SynthConfig.load(CONFIG_PATH).skin


def test_feature_weights_lie_in_zero_one_and_each_feature_exists(maps: SkinMaps) -> None:
    for name in ("crease", "flush", "nail", "palm"):
        weights = getattr(maps, name)
        assert weights.min() >= 0 and weights.max() <= 1, name
        assert weights.max() > 0.5, name


def test_nails_sit_on_the_back_of_the_fingertips(maps: SkinMaps, model: HandModel) -> None:
    rest, joints = maps.rest, model.rest_joints
    nails = rest[maps.nail > 0.5]
    to_tips = np.linalg.norm(nails[:, None] - joints[list(TIP_JOINTS)][None], axis=2)
    finger = np.argmin(to_tips, axis=1)  # 0 thumb ... 4 little
    assert to_tips.min(axis=1).max() < 0.03  # within a last bone's length of a fingertip
    assert set(finger.tolist()) == set(range(5))  # one nail per finger
    # On the back of the four fingers (the palm faces -z at rest; the thumb is turned).
    dip_z = joints[[7, 11, 15, 19], 2]
    assert np.all(nails[finger > 0, 2] > dip_z[finger[finger > 0] - 1])


def test_creases_are_on_the_palm_side(maps: SkinMaps) -> None:
    crease = maps.crease > 0.3
    assert crease.any()
    assert np.all(maps.palm[crease] > 0) or np.mean(maps.rest[crease, 2] < 0.0) > 0.9


def test_albedo_is_a_pure_function_of_the_seed(maps: SkinMaps, settings: dict) -> None:
    base = np.array([0.6, 0.35, 0.25])
    first = skin_albedo(maps, base, np.random.default_rng(5), settings)
    again = skin_albedo(maps, base, np.random.default_rng(5), settings)
    other = skin_albedo(maps, base, np.random.default_rng(6), settings)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.shape == maps.rest.shape and first.min() >= 0 and first.max() <= 1
    assert first.std(axis=0).min() > 0.01  # it varies over the hand


def test_switched_off_the_albedo_is_the_base_colour(maps: SkinMaps, settings: dict) -> None:
    base = np.array([0.6, 0.35, 0.25])
    flat = skin_albedo(maps, base, np.random.default_rng(5), {**settings, "enabled": False})
    np.testing.assert_array_equal(flat, np.broadcast_to(base, flat.shape))


def test_dark_hands_have_lighter_palms(maps: SkinMaps, settings: dict) -> None:
    albedo = skin_albedo(maps, DARK, np.random.default_rng(1), {**settings, "noise": 0.0})
    palm, back = maps.palm > 0.8, (maps.palm == 0) & (maps.nail == 0) & (maps.flush < 0.1)
    assert albedo[palm].mean() > 1.5 * albedo[back].mean()


def test_the_noise_field_is_smooth_and_bounded() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.1, 0.1, size=(500, 3))
    field = noise_field(points, np.random.default_rng(1))
    assert np.abs(field).max() < 4 and field.std() > 0.3
    near = noise_field(points + 1e-4, np.random.default_rng(1))
    assert np.abs(near - field).max() < 0.1  # 0.1 mm away: nearly the same value
