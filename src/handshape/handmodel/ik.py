"""Inverse kinematics: 21 joint positions -> pose parameters of a hand model.

Closed form, batched, differentiable almost everywhere:
1. the global rotation and translation rigidly fit the palm joints (wrist, thumb CMC and the four
   finger MCPs, which no finger joint moves) by weighted Kabsch;
2. walking each finger from base to tip, each joint gets the smallest rotation (swing) that points
   its bone at the target, then a twist about the bone that turns the plane of the next bone into
   the target's plane. Straight targets carry no plane, so the twist fades out as they straighten.
Given the right shape, bone directions and lengths match exactly, so the joints are reproduced
(up to float precision); with another shape (e.g. the template for the direct-LBS baseline) the
directions still match and only the bone lengths differ.
"""

from __future__ import annotations

import torch

from handshape.geometry.rotations import (
    axis_angle_to_matrix,
    kabsch,
    matrix_to_axis_angle,
    rotation_between,
)
from handshape.handmodel.model import HandModel
from handshape.joints import KINEMATIC_TO_JOINT, NUM_KINEMATIC, TIP_JOINTS

PALM_JOINTS: tuple[int, ...] = (0, 1, 5, 9, 13, 17)
# Below this sine of the angle between consecutive target bones the plane is mostly noise.
_PLANE_SIN = 0.05


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _twist_to_plane(
    bone: torch.Tensor, normal_now: torch.Tensor, normal_target: torch.Tensor
) -> torch.Tensor:
    """Rotation (B, 3, 3) about `bone` taking the plane normal `normal_now` towards
    `normal_target` (both (B, 3), perpendicular-ish to the bone), scaled by the target's
    plane confidence |normal_target|."""
    axis = _unit(bone)
    now = _unit(normal_now - (normal_now * axis).sum(-1, keepdim=True) * axis)
    strength = normal_target.norm(dim=-1, keepdim=True)
    target = _unit(normal_target - (normal_target * axis).sum(-1, keepdim=True) * axis)
    sin = (torch.cross(now, target, dim=-1) * axis).sum(-1, keepdim=True)
    cos = (now * target).sum(-1, keepdim=True)
    confidence = strength**2 / (strength**2 + _PLANE_SIN**2)
    return axis_angle_to_matrix(axis * torch.atan2(sin, cos) * confidence)


def inverse_kinematics(
    model: HandModel, joints: torch.Tensor, shape: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose and translation that make `model` (with `shape`) reach `joints`.

    joints: (B, 21, 3) in project order; shape: (B, S) or None for the mean shape.
    Returns pose (B, 16, 3) axis-angle and translation (B, 3).
    """
    b = joints.shape[0]
    if shape is None:
        shape = joints.new_zeros(b, model.num_shapes)
    rest = model(shape=shape).joints  # (B, 21, 3), wrist at its rest position
    palm = list(PALM_JOINTS)
    rest_c = rest[:, palm].mean(1, keepdim=True)
    tgt_c = joints[:, palm].mean(1, keepdim=True)
    root = kabsch(rest[:, palm] - rest_c, joints[:, palm] - tgt_c)
    wrist = rest[:, 0]
    translation = tgt_c[:, 0] - torch.einsum("bij,bj->bi", root, rest_c[:, 0] - wrist) - wrist

    local = [root]
    world = {0: root}
    for k in range(1, NUM_KINEMATIC):
        j = KINEMATIC_TO_JOINT[k]
        parent = model.parents[k]
        g_parent = world[parent]
        to_parent = g_parent.transpose(-1, -2)
        rest_bone = rest[:, j + 1] - rest[:, j]
        target_bone = torch.einsum("bij,bj->bi", to_parent, joints[:, j + 1] - joints[:, j])
        r = rotation_between(rest_bone, target_bone)
        if j + 1 not in TIP_JOINTS:
            rest_next = rest[:, j + 2] - rest[:, j + 1]
            target_next = torch.einsum("bij,bj->bi", to_parent, joints[:, j + 2] - joints[:, j + 1])
            normal_now = torch.einsum(
                "bij,bj->bi", r, torch.cross(_unit(rest_bone), _unit(rest_next), dim=-1)
            )
            normal_target = torch.cross(_unit(target_bone), _unit(target_next), dim=-1)
            r = _twist_to_plane(target_bone, normal_now, normal_target) @ r
        local.append(r)
        world[k] = g_parent @ r
    pose = matrix_to_axis_angle(torch.stack(local, 1))
    return pose, translation
