"""Specification of handshape.handmodel.model.HandModel: the differentiable forward pass."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from handshape.geometry.mesh_checks import face_areas, signed_volume
from handshape.geometry.rotations import axis_angle_to_matrix
from handshape.handmodel.mano_io import read_mano, write_mano
from handshape.handmodel.model import HandModel
from handshape.joints import (
    FINGERS,
    KINEMATIC_PARENTS,
    KINEMATIC_TO_JOINT,
    NUM_KINEMATIC,
    TIP_JOINTS,
)

KINEMATIC = list(KINEMATIC_TO_JOINT)
FOUR_FINGERS = FINGERS[1:]


@pytest.fixture(scope="module")
def model() -> HandModel:
    """The default model in float64 (its float32 buffers are tested separately)."""
    return HandModel.default().to(torch.float64)


@pytest.fixture(scope="module")
def edges(model: HandModel) -> np.ndarray:
    f = model.data.faces
    pairs = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    return np.unique(np.sort(pairs, axis=1), axis=0)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_inputs(
    model: HandModel, b: int, seed: int, pose_scale: float = 0.4
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = generator(seed)
    shape = torch.randn(b, model.num_shapes, generator=g, dtype=torch.float64)
    pose = pose_scale * torch.randn(b, NUM_KINEMATIC, 3, generator=g, dtype=torch.float64)
    translation = 0.1 * torch.randn(b, 3, generator=g, dtype=torch.float64)
    return shape, pose, translation


def flat() -> torch.Tensor:
    """(1, 16, 3) float64 rest pose."""
    return torch.zeros(1, NUM_KINEMATIC, 3, dtype=torch.float64)


def anatomical_pose(model: HandModel, joint: int, flex: float = 0.0, twist: float = 0.0):
    """(1, 16, 3) axis-angle pose with one joint flexed / twisted (radians), the rest flat."""
    anatomical = torch.zeros(1, NUM_KINEMATIC, 3, dtype=torch.float64)
    anatomical[0, joint, 0] = flex
    anatomical[0, joint, 2] = twist
    return model.limits.from_anatomical(anatomical)


# --- identities --------------------------------------------------------------------------------


def test_zero_parameters_give_the_template_and_rest_joints(model: HandModel) -> None:
    zeros = dict(
        shape=torch.zeros(1, model.num_shapes, dtype=torch.float64),
        pose=torch.zeros(1, NUM_KINEMATIC, 3, dtype=torch.float64),
        translation=torch.zeros(1, 3, dtype=torch.float64),
    )
    out = model(**zeros)
    assert out.vertices.shape == (1, model.num_vertices, 3)
    assert out.joints.shape == (1, 21, 3)
    assert np.allclose(out.vertices[0].numpy(), model.data.v_template, rtol=0, atol=1e-12)
    assert np.allclose(out.joints[0].numpy(), model.rest_joints, rtol=0, atol=1e-12)
    # No argument at all means the same thing (in the default dtype).
    default = model()
    assert torch.allclose(default.vertices.double(), out.vertices, rtol=0, atol=1e-6)


def test_translation_shifts_vertices_and_joints(model: HandModel) -> None:
    shape, pose, translation = random_inputs(model, 3, seed=1)
    moved = model(shape, pose, translation)
    still = model(shape, pose)
    assert torch.allclose(moved.vertices, still.vertices + translation[:, None], atol=1e-12)
    assert torch.allclose(moved.joints, still.joints + translation[:, None], atol=1e-12)


def test_batch_equals_one_at_a_time(model: HandModel) -> None:
    shape, pose, translation = random_inputs(model, 4, seed=2)
    batch = model(shape, pose, translation)
    for i in range(4):
        one = model(shape[i : i + 1], pose[i : i + 1], translation[i : i + 1])
        assert torch.allclose(batch.vertices[i], one.vertices[0], rtol=0, atol=1e-12)
        assert torch.allclose(batch.joints[i], one.joints[0], rtol=0, atol=1e-12)


def test_wrong_parameter_shapes_are_refused(model: HandModel) -> None:
    with pytest.raises(ValueError, match="coefficients"):
        model(shape=torch.zeros(1, model.num_shapes + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="pose"):
        model(pose=torch.zeros(1, 15, 3, dtype=torch.float64))


# --- dtypes and gradients ----------------------------------------------------------------------


def test_float32_and_float64_agree_and_outputs_follow_the_input_dtype(model: HandModel) -> None:
    shape, pose, translation = random_inputs(model, 2, seed=3)
    out64 = model(shape, pose, translation)
    assert out64.vertices.dtype == out64.joints.dtype == torch.float64
    single = HandModel.default().to(torch.float32)
    assert single.v_template.dtype == torch.float32
    out32 = single(shape.float(), pose.float(), translation.float())
    assert out32.vertices.dtype == out32.joints.dtype == torch.float32
    assert torch.allclose(out32.vertices.double(), out64.vertices, rtol=0, atol=1e-5)
    assert torch.allclose(out32.joints.double(), out64.joints, rtol=0, atol=1e-5)
    # The inputs decide the dtype, whatever the buffers hold.
    assert model(shape.float(), pose.float(), translation.float()).vertices.dtype == torch.float32
    mixed = single(shape, pose, translation)
    assert mixed.vertices.dtype == mixed.joints.dtype == torch.float64
    assert torch.allclose(mixed.vertices, out64.vertices, rtol=0, atol=1e-6)


def test_gradients_match_finite_differences(model: HandModel) -> None:
    """Float64 gradcheck w.r.t. shape, pose and translation (B=2, a small non-zero pose): in full
    on the fingertips and a spread of vertices, and in fast mode (random projections) on every
    vertex and joint."""
    shape, pose, translation = random_inputs(model, 2, seed=4, pose_scale=0.05)
    inputs = tuple(x.clone().requires_grad_(True) for x in (shape, pose, translation))
    ids = torch.cat([model.tip_vertex_ids, torch.arange(0, model.num_vertices, 100)])

    def some_vertices(s: torch.Tensor, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model(s, p, t).vertices[:, ids]

    def everything(s: torch.Tensor, p: torch.Tensor, t: torch.Tensor):
        out = model(s, p, t)
        return out.vertices, out.joints

    assert torch.autograd.gradcheck(some_vertices, inputs, eps=1e-6, atol=1e-5)
    assert torch.autograd.gradcheck(everything, inputs, eps=1e-6, atol=1e-5, fast_mode=True)


def test_gradients_are_finite_at_the_rest_pose(model: HandModel) -> None:
    pose = torch.zeros(1, NUM_KINEMATIC, 3, dtype=torch.float64, requires_grad=True)
    model(pose=pose).vertices.sum().backward()
    assert torch.isfinite(pose.grad).all()


# --- kinematics --------------------------------------------------------------------------------


def test_posing_preserves_bone_lengths(model: HandModel) -> None:
    """The kinematic joints form a rigid chain: parent-child distances do not depend on pose."""
    shape, pose, _ = random_inputs(model, 6, seed=5, pose_scale=0.8)
    rest = model(shape).joints[:, KINEMATIC]
    posed = model(shape, pose).joints[:, KINEMATIC]
    child = list(range(1, NUM_KINEMATIC))
    parent = [KINEMATIC_PARENTS[k] for k in child]
    before = (rest[:, child] - rest[:, parent]).norm(dim=-1)
    after = (posed[:, child] - posed[:, parent]).norm(dim=-1)
    assert torch.allclose(after, before, rtol=0, atol=1e-10)
    assert not torch.allclose(posed, rest, atol=1e-3)  # the pose did something


def test_fingertips_move_rigidly_with_their_last_bone(model: HandModel) -> None:
    shape, pose, _ = random_inputs(model, 6, seed=6, pose_scale=0.8)
    last = [t - 1 for t in TIP_JOINTS]
    rest = model(shape).joints
    posed = model(shape, pose).joints
    before = (rest[:, list(TIP_JOINTS)] - rest[:, last]).norm(dim=-1)
    after = (posed[:, list(TIP_JOINTS)] - posed[:, last]).norm(dim=-1)
    assert torch.allclose(after, before, rtol=0, atol=1e-9)


def test_root_rotation_rotates_the_whole_hand_about_the_wrist(model: HandModel) -> None:
    shape, pose, _ = random_inputs(model, 3, seed=7)
    fingers_only = pose.clone()
    fingers_only[:, 0] = 0.0
    unrotated = model(shape, fingers_only)
    rotated = model(shape, pose)
    r = axis_angle_to_matrix(pose[:, 0])  # (B, 3, 3)
    wrist = unrotated.joints[:, :1]
    expect_v = torch.einsum("bij,bvj->bvi", r, unrotated.vertices - wrist) + wrist
    expect_j = torch.einsum("bij,bvj->bvi", r, unrotated.joints - wrist) + wrist
    assert torch.allclose(rotated.vertices, expect_v, rtol=0, atol=1e-12)
    assert torch.allclose(rotated.joints, expect_j, rtol=0, atol=1e-12)
    assert torch.allclose(rotated.joints[:, 0], unrotated.joints[:, 0], atol=1e-12)


# --- skin quality under articulation -----------------------------------------------------------


@pytest.mark.parametrize("segment", [0, 1], ids=["mcp", "pip"])
@pytest.mark.parametrize("finger", range(1, 5), ids=FOUR_FINGERS)
def test_ninety_degree_flexion_neither_tears_nor_collapses_the_skin(
    model: HandModel, edges: np.ndarray, finger: int, segment: int
) -> None:
    """Flexing one MCP or PIP by 90 degrees: every edge stays within 0.3x..2.5x its rest length,
    every face keeps at least 10 % of its rest area, and the volume changes by less than 10 %."""
    joint = 1 + 3 * finger + segment
    f = model.data.faces
    rest = model(pose=flat()).vertices[0].numpy()
    bent = model(pose=anatomical_pose(model, joint, flex=math.pi / 2)).vertices[0].numpy()

    length = lambda v: np.linalg.norm(v[edges[:, 0]] - v[edges[:, 1]], axis=1)  # noqa: E731
    stretch = length(bent) / length(rest)
    assert stretch.max() <= 2.5, f"an edge stretches {stretch.max():.2f}x"
    assert stretch.min() >= 0.3, f"an edge shrinks to {stretch.min():.2f}x"
    area = face_areas(bent, f) / face_areas(rest, f)
    assert area.min() >= 0.1, f"a face keeps only {area.min():.3f} of its area"
    volume = signed_volume(bent, f) / signed_volume(rest, f)
    assert abs(volume - 1.0) < 0.1, volume


@pytest.mark.parametrize("finger", range(1, 5), ids=FOUR_FINGERS)
def test_mcp_twist_keeps_the_finger_cross_section(model: HandModel, finger: int) -> None:
    """No candy wrapper: twisting an MCP by 40 degrees keeps the skin around the joint (within
    one joint radius along the bone, two radii from its axis) at least half as far from the
    bone axis as at rest."""
    joint = 1 + 3 * finger
    mcp, pip = KINEMATIC[joint], KINEMATIC[joint] + 1

    def axis_distance(v: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        axis = (j[pip] - j[mcp]) / np.linalg.norm(j[pip] - j[mcp])
        rel = v - j[mcp]
        along = rel @ axis
        return along, np.linalg.norm(rel - along[:, None] * axis, axis=1)

    rest = model(pose=flat())
    v0, j0 = rest.vertices[0].numpy(), rest.joints[0].numpy()
    along, radial = axis_distance(v0, j0)
    radius = np.median(radial[(np.abs(along) < 0.003) & (radial < 0.015)])
    around = (np.abs(along) <= radius) & (radial <= 2 * radius)
    assert around.sum() >= 8

    twisted = model(pose=anatomical_pose(model, joint, twist=math.radians(40)))
    v1, j1 = twisted.vertices[0].numpy(), twisted.joints[0].numpy()
    _, radial_twisted = axis_distance(v1, j1)
    assert radial_twisted[around].min() >= 0.5 * radial[around].min()
    assert np.abs(v1 - v0).max() > 1e-3  # the twist did move the finger's skin


# --- interoperability --------------------------------------------------------------------------


def test_mano_file_round_trip_gives_the_same_hand(model: HandModel, tmp_path: Path) -> None:
    path = tmp_path / "handshape_right.pkl"
    write_mano(model.data, path)
    other = HandModel(read_mano(path)).to(torch.float64)
    shape, pose, translation = random_inputs(model, 3, seed=8)
    a, b = model(shape, pose, translation), other(shape, pose, translation)
    assert torch.allclose(a.vertices, b.vertices, rtol=0, atol=1e-6)
    assert torch.allclose(a.joints, b.joints, rtol=0, atol=1e-6)
    assert torch.equal(model.faces, other.faces)


def test_the_rest_scale_is_the_middle_finger_bone_of_the_rest_pose(model: HandModel) -> None:
    rest = model.rest_joints
    assert model.rest_scale == pytest.approx(float(np.linalg.norm(rest[9] - rest[10])), abs=1e-12)
    assert 0.03 < model.rest_scale < 0.07  # metres: a human middle finger's first bone
