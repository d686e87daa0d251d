"""Specification of handshape.handmodel.poses: joint limits, pose sampler and gesture library."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from handshape.handmodel.model import HandModel
from handshape.handmodel.poses import GestureLibrary, JointLimits
from handshape.joints import FINGERS, NUM_KINEMATIC, TIP_JOINTS

REQUIRED_GESTURES = (
    "fist", "open_palm", "point", "pinch", "ok", "thumbs_up", "victory", "rock",
    "count_one", "count_two", "count_three", "count_four", "count_five",
    "cylinder_grasp", "sphere_grasp", "tripod_grasp", "relaxed",
)  # fmt: skip
WRIST = 0
FINGER_TIPS = list(TIP_JOINTS[1:])  # index..little
INDEX_TIP = TIP_JOINTS[1]


@pytest.fixture(scope="module")
def model() -> HandModel:
    return HandModel.default().to(torch.float64)


@pytest.fixture(scope="module")
def limits(model: HandModel) -> JointLimits:
    return model.limits


@pytest.fixture(scope="module")
def library() -> GestureLibrary:
    return GestureLibrary.load()


@pytest.fixture(scope="module")
def gesture_joints(model: HandModel, limits: JointLimits, library: GestureLibrary) -> dict:
    """name -> (21, 3) joints of the mean hand in that gesture."""
    joints = model(pose=library.pose_tensor(limits)).joints
    return dict(zip(library.names, joints.numpy(), strict=True))


def tip_to_wrist(joints: np.ndarray) -> np.ndarray:
    return np.linalg.norm(joints[FINGER_TIPS] - joints[WRIST], axis=-1)


# --- limits ------------------------------------------------------------------------------------


def test_limits_load_for_the_default_model(limits: JointLimits) -> None:
    assert limits.frames.shape == (NUM_KINEMATIC, 3, 3)
    assert limits.lower.shape == limits.upper.shape == (NUM_KINEMATIC, 3)
    # The root (global rotation) is free, every finger joint is bounded.
    assert torch.isinf(limits.lower[0]).all() and torch.isinf(limits.upper[0]).all()
    assert torch.isfinite(limits.lower[1:]).all() and torch.isfinite(limits.upper[1:]).all()
    assert (limits.lower[1:] <= 0).all() and (limits.upper[1:] >= 0).all()  # flat hand allowed
    assert (limits.upper[1:] - limits.lower[1:] > 0).all()
    # Frames are proper rotations.
    eye = torch.eye(3, dtype=limits.frames.dtype).expand(NUM_KINEMATIC, 3, 3)
    assert torch.allclose(limits.frames.transpose(1, 2) @ limits.frames, eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(limits.frames), torch.ones(NUM_KINEMATIC).double())


def test_finger_mcp_flexion_range_is_anatomical(limits: JointLimits) -> None:
    """Each finger MCP flexes to (at least) 90 degrees and hyperextends less than 45."""
    for finger in range(1, 5):
        mcp = 1 + 3 * finger
        assert limits.upper[mcp, 0] >= math.radians(89)
        assert -math.radians(45) <= limits.lower[mcp, 0] < 0


def test_limits_file_missing_a_joint_is_an_error(model: HandModel, tmp_path: Path) -> None:
    path = tmp_path / "partial_limits.yaml"
    path.write_text("thumb_cmc: {flex: [-20, 55], abd: [-30, 40], twist: [-20, 40]}\n")
    with pytest.raises(ValueError, match=re.escape("partial_limits.yaml")):
        JointLimits.load(model.rest_joints, path)


def test_sampler_stays_within_limits_and_covers_them(limits: JointLimits) -> None:
    n = 2000
    poses = limits.sample(n, generator=torch.Generator().manual_seed(0))
    assert poses.shape == (n, NUM_KINEMATIC, 3)
    assert poses.dtype == torch.float64
    assert torch.all(poses[:, 0] == 0.0)  # no global rotation
    assert limits.violation(poses).max() <= 1e-9
    a = limits.to_anatomical(poses)[:, 1:]
    lower, upper = limits.lower[1:], limits.upper[1:]
    span = upper - lower
    assert torch.all(a.amin(0) - lower <= 0.01 * span)
    assert torch.all(upper - a.amax(0) <= 0.01 * span)


def test_sampler_is_reproducible_with_a_seeded_generator(limits: JointLimits) -> None:
    a = limits.sample(5, generator=torch.Generator().manual_seed(3))
    b = limits.sample(5, generator=torch.Generator().manual_seed(3))
    c = limits.sample(5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sampler_around_given_poses_stays_within_limits(
    limits: JointLimits, library: GestureLibrary
) -> None:
    base = library.pose_tensor(limits)
    noisy = limits.sample(len(base), generator=torch.Generator().manual_seed(1), around=base,
                          spread=0.2)  # fmt: skip
    assert limits.violation(noisy).max() <= 1e-9
    delta = (limits.to_anatomical(noisy) - limits.to_anatomical(base))[:, 1:]
    assert torch.all(delta.abs() <= 0.2 * (limits.upper - limits.lower)[1:] + 1e-12)


def test_anatomical_coordinates_round_trip(limits: JointLimits) -> None:
    pose = 0.7 * torch.randn(10, NUM_KINEMATIC, 3, generator=torch.Generator().manual_seed(2),
                             dtype=torch.float64)  # fmt: skip
    assert torch.allclose(limits.from_anatomical(limits.to_anatomical(pose)), pose, atol=1e-12)
    assert torch.allclose(limits.to_anatomical(limits.from_anatomical(pose)), pose, atol=1e-12)
    # The root's frame is the identity: the global rotation is not re-expressed.
    assert torch.equal(limits.to_anatomical(pose)[:, 0], pose[:, 0])


def test_projection_is_idempotent_and_keeps_valid_poses(limits: JointLimits) -> None:
    g = torch.Generator().manual_seed(5)
    inside = limits.sample(50, generator=g)
    assert torch.allclose(limits.project(inside), inside, rtol=0, atol=1e-12)
    wild = 2.0 * torch.randn(50, NUM_KINEMATIC, 3, generator=g, dtype=torch.float64)
    once = limits.project(wild)
    assert limits.violation(wild).min() > 0.1
    assert limits.violation(once).max() <= 1e-9
    assert torch.allclose(limits.project(once), once, rtol=0, atol=1e-12)
    assert torch.equal(once[:, 0], wild[:, 0])  # the global rotation is free


def test_projection_moves_an_out_of_range_coordinate_onto_its_bound(limits: JointLimits) -> None:
    a = torch.zeros(2, NUM_KINEMATIC, 3, dtype=torch.float64)
    a[0, 4, 0] = limits.upper[4, 0] + 0.5  # index MCP flexed too far
    a[1, 4, 1] = limits.lower[4, 1] - 0.3  # and abducted too far towards the little finger
    a[:, 7, 0] = 0.2  # middle MCP flexion, inside its range
    projected = limits.to_anatomical(limits.project(limits.from_anatomical(a)))
    expected = a.clone()
    expected[0, 4, 0] = limits.upper[4, 0]
    expected[1, 4, 1] = limits.lower[4, 1]
    assert torch.allclose(projected, expected, rtol=0, atol=1e-12)
    assert torch.allclose(limits.violation(limits.from_anatomical(a)), torch.tensor(
        [0.5, 0.3], dtype=torch.float64), atol=1e-12)  # fmt: skip


# --- anatomical axes ---------------------------------------------------------------------------


@pytest.mark.parametrize("finger", range(5), ids=FINGERS)
def test_positive_flexion_curls_towards_the_palm(model: HandModel, finger: int) -> None:
    """Palm faces -z: flexing a finger's base joint moves its tip to -z (thumb: and to +x)."""
    a = torch.zeros(1, NUM_KINEMATIC, 3, dtype=torch.float64)
    a[0, 1 + 3 * finger, 0] = math.radians(40)
    tip = TIP_JOINTS[finger]
    rest = model(pose=0 * a).joints[0, tip]
    bent = model(pose=model.limits.from_anatomical(a)).joints[0, tip]
    assert bent[2] < rest[2] - 0.01
    if finger == 0:
        assert bent[0] > rest[0]


def test_positive_abduction_swings_fingers_towards_the_thumb(model: HandModel) -> None:
    for finger in range(1, 5):
        a = torch.zeros(1, NUM_KINEMATIC, 3, dtype=torch.float64)
        a[0, 1 + 3 * finger, 1] = math.radians(15)
        tip = TIP_JOINTS[finger]
        moved = model(pose=model.limits.from_anatomical(a)).joints[0, tip]
        assert moved[0] < model(pose=0 * a).joints[0, tip, 0] - 0.005, FINGERS[finger]


# --- gesture library ---------------------------------------------------------------------------


def test_library_has_the_named_gestures(library: GestureLibrary) -> None:
    assert len(library.names) >= 30
    missing = set(REQUIRED_GESTURES) - set(library.names)
    assert not missing, missing
    assert library.anatomical("fist").shape == (NUM_KINEMATIC, 3)
    with pytest.raises(KeyError, match="no_such_gesture"):
        library.anatomical("no_such_gesture")


def test_every_gesture_is_within_the_limits(limits: JointLimits, library: GestureLibrary) -> None:
    poses = library.pose_tensor(limits)
    assert poses.shape == (len(library.names), NUM_KINEMATIC, 3)
    violation = limits.violation(poses)
    degrees = np.degrees(violation.numpy())
    bad = {n: round(float(x), 2) for n, x in zip(library.names, degrees, strict=True) if x > 1e-7}
    assert not bad, f"gestures outside the limits (degrees): {bad}"
    assert torch.all(poses[:, 0] == 0.0)


def test_gestures_are_all_different(gesture_joints: dict) -> None:
    """No two gestures put the joints in the same place (at least one joint 5 mm apart)."""
    same = [
        (a, b)
        for (a, ja), (b, jb) in itertools.combinations(gesture_joints.items(), 2)
        if np.linalg.norm(ja - jb, axis=1).max() < 0.005
    ]
    assert not same, f"indistinguishable gestures: {same}"


def test_fist_brings_every_fingertip_towards_the_wrist(gesture_joints: dict) -> None:
    flat, fist = tip_to_wrist(gesture_joints["flat"]), tip_to_wrist(gesture_joints["fist"])
    assert np.all(fist < 0.6 * flat), fist / flat


def test_point_keeps_only_the_index_finger_extended(gesture_joints: dict) -> None:
    flat, point = gesture_joints["flat"], gesture_joints["point"]
    ratio = tip_to_wrist(point) / tip_to_wrist(flat)
    assert ratio[0] > 0.95, ratio  # index
    assert np.all(ratio[1:] < 0.6), ratio  # middle, ring, little
    assert np.allclose(point[INDEX_TIP], flat[INDEX_TIP], atol=0.01)


def test_flat_gesture_is_the_rest_pose(library: GestureLibrary) -> None:
    assert np.array_equal(library.anatomical("flat"), np.zeros((NUM_KINEMATIC, 3)))


def test_gesture_with_an_unknown_finger_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "my_gestures.yaml"
    path.write_text("wave:\n  index: [10, 10, 5]\n  pinky: [20, 20, 5]\n")
    with pytest.raises(ValueError, match=re.escape("my_gestures.yaml")) as info:
        GestureLibrary.load(path)
    assert "pinky" in str(info.value)


def test_gesture_yaml_forms_are_parsed(tmp_path: Path) -> None:
    """A finger is a list of flexions or a map with flex/abd/twist; the thumb may give cmc/mcp/ip;
    missing fingers stay straight."""
    path = tmp_path / "forms.yaml"
    path.write_text(
        "g:\n"
        "  thumb: {cmc: [10, 20, 30], ip: [5, 0, 0]}\n"
        "  index: [40, 50, 60]\n"
        "  ring: {flex: [1, 2, 3], abd: -8, twist: [4, 5, 6]}\n"
    )
    got = GestureLibrary.load(path).anatomical("g")
    expected = np.zeros((NUM_KINEMATIC, 3))
    expected[1] = [10, 20, 30]
    expected[3] = [5, 0, 0]
    expected[4:7, 0] = [40, 50, 60]
    expected[10:13, 0] = [1, 2, 3]
    expected[10, 1] = -8
    expected[10:13, 2] = [4, 5, 6]
    assert np.array_equal(got, expected)


@pytest.mark.parametrize(
    "text",
    ["", "- just a list", "fist: {thumb: {cmc: [10, 0]}}", "fist: {index: {flex: [1, 2]}}"],
)
def test_malformed_gesture_files_name_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad_gestures.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"bad_gestures\.yaml"):
        GestureLibrary.load(path)


def test_malformed_limits_name_the_file(tmp_path: Path, model: HandModel) -> None:
    path = tmp_path / "bad_limits.yaml"
    path.write_text("thumb_cmc: {flex: [1]}")
    with pytest.raises(ValueError, match=r"bad_limits\.yaml"):
        JointLimits.load(model.rest_joints, path)
