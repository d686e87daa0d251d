"""Posed hands drawn on the fly: a pure function of (seed, split, index), the split's own
gesture variants, every hand in front of the camera within its cone."""

from __future__ import annotations

import math

import pytest
import torch

from handshape.data.posed_hands import PosedHands, PosedHandSettings
from handshape.data.synth.datamodule import generator_config
from handshape.handmodel.model import HandModel


@pytest.fixture(scope="module")
def hands() -> PosedHands:
    settings = PosedHandSettings(random_pose=0.2, distance=(0.3, 0.6), off_axis=20.0)
    return PosedHands(HandModel.default(), generator_config({"config": "synthetic"}), settings)


def test_a_batch_is_a_pure_function_of_seed_split_and_index(hands: PosedHands) -> None:
    a, b = hands.draw(0, "train", 3, 16), hands.draw(0, "train", 3, 16)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["vertices"], hands.draw(0, "train", 4, 16)["vertices"])
    assert not torch.equal(a["vertices"], hands.draw(1, "train", 3, 16)["vertices"])


def test_hands_stand_in_front_of_the_camera_within_the_cone(hands: PosedHands) -> None:
    drawn = hands.draw(0, "val", 0, 256)
    vertices, rotation, translation = drawn["vertices"], drawn["rotation"], drawn["translation"]
    model = (vertices - translation[:, None]) @ rotation  # back in the model's frame
    centre = ((model.amin(1) + model.amax(1)) / 2)[..., None]
    centre = (rotation @ centre)[..., 0] + translation  # the box centre the camera aims at
    distance = centre.norm(dim=1)
    assert bool(((distance > 0.3 - 1e-4) & (distance < 0.6 + 1e-4)).all())
    angle = torch.rad2deg(torch.acos(centre[:, 2] / distance))
    assert float(angle.max()) <= 20.0 + 1e-3
    assert bool((vertices[..., 2] > 0.1).all())
    projected = drawn["joints_3d"][..., :2] / drawn["joints_3d"][..., 2:] * 1000.0
    assert torch.allclose(drawn["joints_2d"], projected, atol=1e-3)


def test_orientations_cover_every_direction(hands: PosedHands) -> None:
    rotation = hands.draw(0, "train", 0, 512)["rotation"]
    assert torch.allclose(
        rotation @ rotation.transpose(1, 2), torch.eye(3).expand(512, 3, 3), atol=1e-5
    )
    palm_normal = rotation[:, :, 2]  # the model's z axis in the camera frame
    assert float(palm_normal.mean(0).norm()) < 0.1  # no preferred side
    assert float(palm_normal[:, 2].min()) < -0.9 and float(palm_normal[:, 2].max()) > 0.9


def test_validation_draws_only_the_held_out_variants(hands: PosedHands) -> None:
    """Each drawn pose lies nearest to a variant of its own split (the per-sample perturbation
    is a quarter of the variants' spread)."""
    settings = PosedHandSettings(random_pose=0.0, distance=(0.3, 0.6), off_axis=20)
    only_gestures = PosedHands(hands.model, hands.synth, settings)
    per = hands.synth.variants_per_gesture
    held_out = set(range(per - hands.synth.validation["last_variants"], per))
    variants = only_gestures.variants.flatten(0, 1).float()  # (G * V, 16, 3)
    for split in ("train", "val"):
        pose = only_gestures.draw(0, split, 0, 128)["pose"]
        nearest = ((pose[:, None] - variants[None]) ** 2).sum((-1, -2)).argmin(1) % per
        inside = [int(v) in held_out for v in nearest]
        share = sum(inside) / len(inside)
        assert share > 0.95 if split == "val" else share < 0.05, (split, share)


def test_bad_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"hands\.distance"):
        PosedHandSettings.from_dict(
            {"random_pose": 0.1, "distance": [0.5, 0.2], "off_axis": 10}, "hands"
        )
    with pytest.raises(ValueError, match="expected the settings"):
        PosedHandSettings.from_dict({"random_pose": 0.1}, "hands")
    assert math.isfinite(
        PosedHandSettings.from_dict(
            {"random_pose": 0.1, "distance": [0.2, 0.5], "off_axis": 10}, "hands"
        ).off_axis
    )
