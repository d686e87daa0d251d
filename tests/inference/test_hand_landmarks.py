"""Decoding the landmark network's outputs and the crop its landmarks ask for next."""

from __future__ import annotations

import math

import numpy as np
import pytest

from handshape.inference import hand_landmarks as hl
from handshape.inference.rois import Roi


def upright_hand(scale: float = 10.0) -> np.ndarray:
    """(21, 2) a schematic right hand, fingers up, in image pixels around (100, 100)."""
    points = np.zeros((21, 2))
    points[0] = [0, 6]
    for f in range(5):
        x = -3 + 1.5 * f
        base = [x - 2, 3] if f == 0 else [x, 0]
        for s in range(4):
            points[1 + 4 * f + s] = [base[0], base[1] - 1.5 * s]
    return points * scale + 100


def test_landmarks_are_projected_through_the_crop_and_z_scaled_like_x() -> None:
    roi = Roi(100.0, 50.0, 112.0, math.pi / 2)
    raw = np.zeros((21, 3))
    raw[:, :2] = 112.0  # the crop's centre in input pixels
    raw[1] = [224.0, 112.0, 22.4]  # the crop's right edge, z of a tenth of the input
    world = np.zeros((21, 3))
    world[1] = [0.01, 0.0, 0.02]
    out = hl.decode(raw.ravel(), 0.9, 0.8, world.ravel(), roi)
    assert np.allclose(out.points[0, :2], [100, 50])
    # The crop is turned a quarter: its right edge lies below its centre in the image.
    assert np.allclose(out.points[1, :2], [100, 50 + 56])
    assert out.points[1, 2] == pytest.approx(0.1 / hl.NORMALIZE_Z * 112)
    assert np.allclose(out.world[1], [0.0, 0.01, 0.02], atol=1e-12)
    assert (out.presence, out.right_score) == (0.9, 0.8)


def test_an_upright_hand_asks_for_an_upright_crop_around_its_palm_and_fingers() -> None:
    points = upright_hand()
    roi = hl.landmarks_roi(points)
    assert roi.rotation == pytest.approx(0.0, abs=1e-9)
    part = points[list(hl.ROI_LANDMARKS)]
    height = np.ptp(part[:, 1])
    assert roi.side == pytest.approx(2 * max(np.ptp(part[:, 0]), height))
    assert roi.cy == pytest.approx((part[:, 1].max() + part[:, 1].min()) / 2 - 0.1 * height)


@pytest.mark.parametrize("angle", [0.5, -1.2, 2.8])
def test_a_turned_hand_asks_for_the_same_crop_turned(angle: float) -> None:
    points = upright_hand()
    c, s = math.cos(angle), math.sin(angle)
    turned = (points - 100) @ np.array([[c, -s], [s, c]]).T + 100
    upright, roi = hl.landmarks_roi(points), hl.landmarks_roi(turned)
    assert math.remainder(roi.rotation - angle, 2 * math.pi) == pytest.approx(0.0, abs=1e-9)
    assert roi.side == pytest.approx(upright.side)
    centre = np.array([[c, -s], [s, c]]) @ (np.array([upright.cx, upright.cy]) - 100) + 100
    assert np.allclose([roi.cx, roi.cy], centre)
