"""The photograph's camera and the hand's distance: focal length by precedence, and the root
depth at which a hand's bones have its scale's lengths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from handshape.geometry.camera import to_uvd
from handshape.handmodel.model import HandModel
from handshape.inference.camera import Camera, bone_ratios, root_depth
from handshape.inference.media import exif_focal_px


def test_the_focal_length_is_the_given_one_else_exifs_else_the_longer_side() -> None:
    assert Camera.of_image(640, 480, 500.0, 900.0).record()["focal_from"] == "given"
    assert Camera.of_image(640, 480, None, 900.0).focal == 900.0
    default = Camera.of_image(640, 480)
    assert (default.focal, default.cx, default.cy, default.source) == (640, 319.5, 239.5, "default")
    with pytest.raises(ValueError, match="--focal must be a positive"):
        Camera.of_image(640, 480, -1.0)


def test_exif_gives_the_focal_length_in_pixels(tmp_path) -> None:
    image = Image.new("RGB", (4000, 3000))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 26  # 26 mm equivalent, a phone's main camera
    path = tmp_path / "phone.jpg"
    image.save(path, exif=exif)
    with Image.open(path) as read:
        focal = exif_focal_px(read)
    assert focal == pytest.approx(26 * 5000 / math.hypot(36, 24), rel=1e-6)
    assert exif_focal_px(Image.new("RGB", (10, 10))) is None


@pytest.mark.parametrize("depth", [0.3, 0.8, 2.5])
def test_the_root_depth_is_found_from_the_bone_lengths(depth: float) -> None:
    hand = HandModel.default()
    pose = hand.limits.sample(3, generator=torch.Generator().manual_seed(1)).float()
    out = hand(pose=pose, translation=torch.tensor([[0.05, -0.02, depth]] * 3))
    joints = out.joints
    K = torch.tensor([[[300.0, 0, 127.5], [0, 300.0, 127.5], [0, 0, 1]]]).expand(3, 3, 3)
    scale = torch.full((3,), hand.rest_scale)
    uvd = to_uvd(joints, K, joints[:, 0, 2], scale, 256)
    found = root_depth(uvd, K, 256, scale, bone_ratios(hand.rest_joints))
    assert torch.allclose(found, joints[:, 0, 2], rtol=0.02)


def test_bone_ratios_put_the_scale_bone_at_one() -> None:
    ratios = bone_ratios(HandModel.default().rest_joints)
    assert ratios.shape == (20,) and float(ratios[9]) == pytest.approx(1.0)  # the 10 -> 9 bone
    assert np.all(ratios.numpy() > 0)
