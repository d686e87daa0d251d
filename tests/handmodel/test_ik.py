"""Inverse kinematics: joints -> pose parameters -> the same joints."""

import pytest
import torch

from handshape.handmodel.ik import inverse_kinematics
from handshape.handmodel.model import HandModel


@pytest.fixture(scope="module")
def model() -> HandModel:
    return HandModel.default().double()


def _random_hands(model: HandModel, n: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    pose = model.limits.sample(n, generator=g)
    pose[:, 0] = torch.randn(n, 3, generator=g, dtype=torch.float64)
    shape = torch.randn(n, model.num_shapes, generator=g, dtype=torch.float64)
    translation = 0.2 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    return shape, pose, translation


def test_round_trip_reproduces_joints_within_a_millimetre(model: HandModel) -> None:
    shape, pose, translation = _random_hands(model, 128, seed=0)
    joints = model(shape, pose, translation).joints
    ik_pose, ik_translation = inverse_kinematics(model, joints, shape)
    again = model(shape, ik_pose, ik_translation).joints
    assert (again - joints).norm(dim=-1).max() < 1e-3


def test_round_trip_on_gestures_recovers_the_mesh_closely(model: HandModel) -> None:
    """Joints fix everything but the twist of a straight finger, so the meshes agree closely."""
    for name in ("fist", "ok", "victory", "cylinder_grasp"):
        out = model(pose=model.gesture(name)[None])
        ik_pose, ik_translation = inverse_kinematics(model, out.joints)
        again = model(pose=ik_pose, translation=ik_translation)
        assert (again.joints - out.joints).norm(dim=-1).max() < 1e-3
        assert (again.vertices - out.vertices).norm(dim=-1).mean() < 4e-3, name


def test_template_shape_matches_bone_directions_of_another_hand(model: HandModel) -> None:
    """The direct-LBS baseline poses the mean shape: directions match, lengths may not."""
    shape, pose, _ = _random_hands(model, 16, seed=1)
    joints = model(shape, pose).joints
    ik_pose, ik_translation = inverse_kinematics(model, joints)
    posed = model(pose=ik_pose, translation=ik_translation).joints
    for parent, child in ((10, 11), (11, 12), (6, 7)):
        want = torch.nn.functional.normalize(joints[:, child] - joints[:, parent], dim=-1)
        got = torch.nn.functional.normalize(posed[:, child] - posed[:, parent], dim=-1)
        assert torch.allclose(got, want, atol=1e-6)


def test_ik_is_differentiable(model: HandModel) -> None:
    shape, pose, translation = _random_hands(model, 2, seed=2)
    joints = model(shape, pose, translation).joints.detach().requires_grad_(True)
    ik_pose, _ = inverse_kinematics(model, joints, shape)
    ik_pose.sum().backward()
    assert torch.isfinite(joints.grad).all() and joints.grad.abs().sum() > 0
