"""The forearm and held objects: closed meshes in the right place, built from the posed hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from handshape.data.synth.props import (
    GRASPS,
    ForearmParams,
    forearm_meshes,
    object_mesh,
    tube,
    wrist_bend,
    wrist_section,
)
from handshape.data.synth.scene import OBJECT_KINDS
from handshape.geometry.rotations import axis_angle_to_matrix
from handshape.handmodel.model import HandModel
from handshape.handmodel.poses import GestureLibrary


@pytest.fixture(scope="module")
def posed() -> tuple[HandModel, torch.Tensor, np.ndarray, np.ndarray]:
    """The hand model, a pose (16, 3) with a global turn, vertices (N, 3) and joints (21, 3)."""
    model = HandModel.default().double()
    pose = model.gesture("cylinder_grasp", dtype=torch.float64).clone()
    pose[0] = torch.tensor([0.4, -0.9, 0.3], dtype=torch.float64)
    with torch.no_grad():
        out = model(torch.zeros(1, model.num_shapes, dtype=torch.float64), pose[None])
    return model, pose, out.vertices[0].numpy(), out.joints[0].numpy()


def test_a_tube_is_closed_and_faces_outwards() -> None:
    mesh = tube(0.2, (0.03, 0.02), 1.3)
    shape = trimesh.Trimesh(mesh.vertices, mesh.faces, process=True)
    assert shape.is_watertight and shape.is_winding_consistent
    assert shape.volume > 0  # positive: normals point out
    expected = np.pi * 0.03 * 0.02 * 0.2 * (1 + 1.3 + 1.3**2) / 3  # elliptical frustum
    assert shape.volume == pytest.approx(expected, rel=0.05)


def test_the_forearm_starts_at_the_wrist_and_leaves_along_the_bent_arm(posed) -> None:
    model, pose, vertices, joints = posed
    root = axis_angle_to_matrix(pose[0]).numpy()
    params = ForearmParams(0.25, 1.0, 1.2, 0.5, -0.2, 0.1)
    section = wrist_section(model.v_template.numpy())
    arm, sleeve = forearm_meshes(params, vertices, section, root, joints[0])
    along = root @ wrist_bend(0.5, -0.2) @ np.array([0.0, -1.0, 0.0])
    reach = (arm.vertices - joints[0]) @ along
    assert reach.min() > -0.02 and reach.max() == pytest.approx(0.25, abs=0.02)
    # Its near end is as wide as the base of the palm, not wider than a wrist.
    near = arm.vertices[reach < 0.01]
    assert 0.02 < np.ptp(near @ np.linalg.svd(near - near.mean(0))[2][0]) < 0.1
    assert sleeve is not None
    assert ((sleeve.vertices - joints[0]) @ along).min() == pytest.approx(0.1, abs=0.01)
    no_sleeve = ForearmParams(0.25, 1.0, 1.2, 0.5, -0.2, 0.3)
    assert forearm_meshes(no_sleeve, vertices, section, root, joints[0])[1] is None


@pytest.mark.parametrize("kind", OBJECT_KINDS)
def test_a_held_object_sits_in_the_hand(posed, kind: str) -> None:
    joints = posed[3]
    held = object_mesh(kind, joints, np.random.default_rng(0))
    centre = held.vertices.mean(axis=0)
    palm = joints[[0, 5, 9, 13, 17]].mean(axis=0)
    # Near the hand (within a hand's length of the palm), and touching it.
    assert np.linalg.norm(centre - palm) < 0.12
    surface, _ = trimesh.sample.sample_surface(
        trimesh.Trimesh(held.vertices, held.faces), 3000, seed=0
    )
    gap = np.min(np.linalg.norm(surface[:, None] - joints[None], axis=2))
    assert gap < 0.03


def test_every_grasp_names_known_object_kinds_and_gestures() -> None:
    assert set(GRASPS) <= set(GestureLibrary.load().names)
    assert {k for kinds in GRASPS.values() for k in kinds} <= set(OBJECT_KINDS)
