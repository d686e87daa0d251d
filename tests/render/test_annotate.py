"""draw_skeleton: bones and joints drawn where the 2D joints are, nowhere else."""

from __future__ import annotations

import numpy as np
import pytest

from handshape.joints import JOINT_PARENTS
from handshape.render.annotate import FINGER_COLORS, draw_skeleton, joint_color

SIZE = 160
GREY = 40


def spread_hand() -> np.ndarray:
    """(21, 2) joints of an open hand: the wrist low in the middle, five straight fingers.

    Integer coordinates (pixel centres); fractional ones are the subject of their own test.
    """
    wrist = np.array([80.0, 140.0])
    joints = [wrist]
    for angle in np.deg2rad([-60, -25, 0, 25, 50]):
        direction = np.array([np.sin(angle), -np.cos(angle)])
        joints += [wrist + direction * (30 + 22 * s) for s in range(4)]
    return np.round(joints)


def distance_to_segments(
    points: np.ndarray, segments: list[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Smallest distance from each point (P, 2) to any of the segments."""
    best = np.full(len(points), np.inf)
    for a, b in segments:
        t = np.clip(((points - a) @ (b - a)) / ((b - a) @ (b - a)), 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1))
    return best


@pytest.fixture
def canvas() -> np.ndarray:
    return np.full((SIZE, SIZE, 3), GREY, dtype=np.uint8)


def test_returns_a_drawn_copy_of_the_same_size(canvas: np.ndarray) -> None:
    before = canvas.copy()
    drawn = draw_skeleton(canvas, spread_hand())
    assert drawn.shape == canvas.shape and drawn.dtype == np.uint8
    assert np.array_equal(canvas, before)  # the input is left alone
    assert not np.array_equal(drawn, canvas)


def test_bones_are_drawn_in_their_finger_colour(canvas: np.ndarray) -> None:
    joints = spread_hand()
    drawn = draw_skeleton(canvas, joints, radius=1.0, width=3)
    for j, parent in enumerate(JOINT_PARENTS):
        if parent < 0:
            continue
        for t in (0.35, 0.5, 0.65):  # points along the bone, away from the joint dots
            u, v = np.round(joints[parent] + t * (joints[j] - joints[parent])).astype(int)
            assert tuple(drawn[v, u]) == joint_color(j), (j, t)


def test_nothing_changes_far_from_the_skeleton(canvas: np.ndarray) -> None:
    joints = spread_hand()
    radius, width = 3.0, 2
    drawn = draw_skeleton(canvas, joints, radius=radius, width=width)
    segments = [(joints[p], joints[j]) for j, p in enumerate(JOINT_PARENTS) if p >= 0]
    v, u = np.mgrid[0:SIZE, 0:SIZE]
    points = np.stack([u.ravel(), v.ravel()], axis=1).astype(float)
    far = distance_to_segments(points, segments) > radius + width + 1
    changed = np.any(drawn != canvas, axis=2).ravel()
    assert far.sum() > 0.6 * SIZE * SIZE
    assert not np.any(changed & far)
    assert changed.sum() > 300  # and the skeleton itself is there


def test_the_wrist_is_white_and_each_finger_has_its_own_colour() -> None:
    assert joint_color(0) == (255, 255, 255)
    for finger in range(5):
        assert {joint_color(1 + 4 * finger + s) for s in range(4)} == {FINGER_COLORS[finger]}
    assert len(set(FINGER_COLORS)) == 5


def test_hidden_joints_are_drawn_hollow(canvas: np.ndarray) -> None:
    joints = spread_hand()
    tip = 12  # the middle fingertip: its bone arrives from below, nothing lies above it
    visible = np.ones(21, bool)
    hidden = visible.copy()
    hidden[tip] = False
    radius = 6.0
    solid = draw_skeleton(canvas, joints, visible, radius=radius, width=1)
    hollow = draw_skeleton(canvas, joints, hidden, radius=radius, width=1)
    u, v = np.round(joints[tip]).astype(int)
    inside = (v - 3, u)  # within the dot, beyond the end of the bone
    assert tuple(solid[inside]) == joint_color(tip)
    assert tuple(hollow[inside]) == (GREY, GREY, GREY)
    ring = (v - 6, u)  # the outline is drawn either way
    assert tuple(hollow[ring]) == joint_color(tip) == tuple(solid[ring])
    # No visibility given means every joint is drawn solid.
    assert np.array_equal(draw_skeleton(canvas, joints, radius=radius, width=1), solid)


def test_joints_outside_the_image_are_clipped_not_an_error(canvas: np.ndarray) -> None:
    joints = spread_hand() + np.array([0.0, -100.0])  # the fingertips leave the top edge
    drawn = draw_skeleton(canvas, joints)
    assert drawn.shape == canvas.shape
    assert np.any(drawn != canvas)


def test_fractional_joints_are_drawn_at_their_nearest_pixel(canvas: np.ndarray) -> None:
    joints = spread_hand() + 0.8  # nearest pixel: one to the right of and below spread_hand()
    drawn = draw_skeleton(canvas, joints, np.zeros(21, bool), radius=4.0, width=1)
    reference = draw_skeleton(canvas, spread_hand() + 1.0, np.zeros(21, bool), radius=4.0, width=1)
    assert np.array_equal(drawn, reference)
