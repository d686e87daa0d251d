"""Finding hands with MediaPipe's two networks ported to PyTorch: detection, landmarks,
handedness as the person's, refinement, close-ups, tracking, duplicates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handshape.inference.hands import Hand, HandFinder, HandTracker, closeup_rois, distinct
from handshape.inference.rois import Roi

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def finder() -> HandFinder:
    return HandFinder.load()


@pytest.fixture(scope="module")
def photo() -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(Image.open(FIXTURES / "hand_photo.png").convert("RGB"))
    truth = np.asarray(json.loads((FIXTURES / "hand_photo.json").read_text())["joints_2d_px"])
    return image, truth


def error(points: np.ndarray, truth: np.ndarray) -> float:
    side = (truth.max(0) - truth.min(0)).max()
    return float(np.linalg.norm(points[:, :2] - truth, axis=1).mean() / side)


def test_the_hand_is_found_as_a_right_hand_on_its_joints(finder: HandFinder, photo) -> None:
    image, truth = photo
    hands = finder.find(image)
    assert len(hands) == 1 and hands[0].handedness == "right" and hands[0].presence > 0.9
    assert error(hands[0].landmarks, truth) < 0.08
    assert np.abs(hands[0].world).max() < 0.15  # metres around the hand's centre


def test_a_mirrored_photograph_shows_a_left_hand(finder: HandFinder, photo) -> None:
    image, truth = photo
    hands = finder.find(np.ascontiguousarray(image[:, ::-1]))
    assert len(hands) == 1 and hands[0].handedness == "left"
    assert error(hands[0].landmarks, truth * [-1, 1] + [image.shape[1] - 1, 0]) < 0.08


def test_mirrored_reading_agrees_with_the_plain_one(finder: HandFinder, photo) -> None:
    image, _ = photo
    roi = finder.find(image)[0].roi
    plain, both = finder.read(image, [roi])[0], finder.read(image, [roi], flip=True)[0]
    assert np.abs(plain.points[:, :2] - both.points[:, :2]).mean() < 0.03 * roi.side
    assert both.right_score > 0.5 and plain.right_score > 0.5


def test_refinement_and_mirrored_reading_do_not_lose_accuracy(finder: HandFinder, photo) -> None:
    image, truth = photo
    plain = HandFinder(finder.detector, finder.landmarker, refine=False, flip=False)
    assert (
        error(finder.find(image)[0].landmarks, truth)
        <= error(plain.find(image)[0].landmarks, truth) + 0.01
    )


def test_no_hand_in_a_blank_picture(finder: HandFinder) -> None:
    assert finder.find(np.full((200, 300, 3), 128, np.uint8)) == []


def test_a_close_up_the_detector_misses_is_read_whole(finder: HandFinder, photo) -> None:
    image, truth = photo
    lo, hi = truth.min(0).astype(int) - 4, truth.max(0).astype(int) + 4
    close = np.ascontiguousarray(image[lo[1] : hi[1], lo[0] : hi[0]])
    turns = {round(r.rotation, 3) for r in closeup_rois(close)}
    assert turns == {0.0, 1.571, 3.142, 4.712}
    hands = finder.find(close)
    assert len(hands) == 1 and error(hands[0].landmarks, truth - lo) < 0.12


def test_tracking_keeps_a_hand_and_its_number_without_detecting_again(photo) -> None:
    image, truth = photo
    finder = HandFinder.load()
    tracker = HandTracker(finder)
    calls = []
    detect = finder.detect
    finder.detect = lambda frame: calls.append(1) or detect(frame)  # type: ignore[method-assign]
    finder.max_hands = 1
    for k in range(4):
        hands = tracker.step(np.roll(image, 4 * k, axis=1))
        assert len(hands) == 1 and hands[0].track == 0
        assert error(hands[0].landmarks, truth + np.array([4 * k, 0])) < 0.1
    assert len(calls) == 1  # one hand tracked: the detector ran on the first frame only


def test_duplicates_keep_the_most_present() -> None:
    roi = Roi(0, 0, 1, 0)

    def hand(box: list[float], presence: float) -> Hand:
        return Hand(
            np.zeros((21, 3)), np.zeros((21, 3)), "right", presence, 1.0, np.array(box), roi
        )

    kept = distinct(
        [hand([0, 0, 10, 10], 0.6), hand([1, 0, 11, 10], 0.9), hand([20, 0, 30, 10], 0.7)]
    )
    assert [h.presence for h in kept] == [0.9, 0.7]
