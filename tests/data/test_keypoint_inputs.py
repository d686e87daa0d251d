"""What the keypoint network reads: an upright square of the keypoints, whose intrinsics lift
its uvd exactly as an image crop's do."""

from __future__ import annotations

import math

import pytest
import torch

from handshape.data.keypoint_inputs import (
    MARGIN,
    keypoint_inputs,
    keypoint_square,
    num_features,
    upright_angle,
)
from handshape.geometry.camera import from_uvd, project, to_uvd


def hand_joints(turn: float = 0.0) -> torch.Tensor:
    """(1, 21, 3) camera-frame joints of a flat hand, fingers along -y, turned in the image
    plane by `turn`, half a metre away."""
    joints = torch.zeros(21, 3, dtype=torch.float64)
    joints[0] = torch.tensor([0.0, 0.08, 0.0])
    for f in range(5):
        for s in range(4):
            joints[1 + 4 * f + s] = torch.tensor([0.02 * (f - 2), -0.025 * s, 0.004 * s])
    c, s = math.cos(turn), math.sin(turn)
    rot = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1.0]], dtype=torch.float64)
    return (joints @ rot.T + torch.tensor([0.05, 0.02, 0.5], dtype=torch.float64))[None]


K = torch.tensor([[[800.0, 0, 320], [0, 800.0, 240], [0, 0, 1]]], dtype=torch.float64)


@pytest.mark.parametrize("turn", [0.0, 0.9, -2.5])
def test_the_square_turns_the_wrist_to_palm_direction_straight_up(turn: float) -> None:
    keypoints = project(hand_joints(turn), K)
    theta = upright_angle(keypoints)
    assert math.remainder(float(theta) - turn, 2 * math.pi) == pytest.approx(0.0, abs=1e-6)
    A, _ = keypoint_square(keypoints, 256)
    inside = keypoints @ A[:, :2, :2].transpose(1, 2) + A[:, None, :2, 2]
    palm = inside[0, 9] - inside[0, 0]
    assert float(palm[0]) == pytest.approx(0.0, abs=1e-6) and float(palm[1]) < 0
    extent = inside[0].amax(0) - inside[0].amin(0)
    assert float(extent.max()) == pytest.approx(256 / MARGIN, rel=1e-6)


def test_uvd_in_the_square_lifts_back_to_the_camera_frame() -> None:
    joints = hand_joints(0.4)
    keypoints = project(joints, K)
    features, K_square = keypoint_inputs(keypoints, torch.ones(1, 21), None, K.float(), 256)
    assert features.shape == (1, num_features())
    root, scale = joints[:, 0, 2].float(), torch.tensor([0.025])
    uvd = to_uvd(joints.float(), K_square, root, scale, 256)
    # The network's uv inputs are the keypoints' own uv in the square.
    assert torch.allclose(features[0, : 21 * 4].view(21, 4)[:, :2], uvd[0, :, :2], atol=1e-5)
    back = from_uvd(uvd, K_square, root, scale, 256)
    assert torch.allclose(back, joints.float(), atol=1e-6)


def test_depth_is_given_in_the_units_of_u_and_the_ray_says_where_the_hand_is() -> None:
    keypoints = project(hand_joints(), K)
    depth = torch.linspace(0, 20, 21)[None]
    features, _ = keypoint_inputs(keypoints, torch.full((1, 21), 0.7), depth, K.float(), 128)
    _, side = keypoint_square(keypoints.float(), 128)
    per_joint = features[0, : 21 * 4].view(21, 4)
    assert torch.allclose(per_joint[:, 2], torch.full((21,), 0.7))
    assert torch.allclose(per_joint[:, 3], 2 * depth[0] / side)
    middle = (keypoints.amin(1, keepdim=True) + keypoints.amax(1, keepdim=True)) / 2
    centred = keypoints - middle + torch.tensor([320.0, 240.0])
    off, _ = keypoint_inputs(centred, torch.ones(1, 21), None, K.float(), 128)
    ray = features[0, -3:]
    assert float(ray[2]) == pytest.approx(float(side) / 800, rel=1e-5)
    assert float(ray[:2].norm()) > 0.05 and float(off[0, -3:-1].norm()) < 1e-5
