"""Palm detection as MediaPipe decodes it: anchors, boxes, keypoints, weighted suppression and
the hand crop a palm asks for, on cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from handshape.inference import palm_detection as pd
from handshape.inference.rois import Window, tiles


def test_anchors_are_the_2016_cell_centres_of_two_grids() -> None:
    anchors = pd.ssd_anchors()
    assert anchors.shape == (2016, 2)
    # 24 x 24 cells of stride 8, two anchors each, row by row; then 12 x 12 cells, six each.
    assert np.allclose(anchors[0], [0.5 / 24, 0.5 / 24]) and np.allclose(anchors[1], anchors[0])
    assert np.allclose(anchors[2], [1.5 / 24, 0.5 / 24])
    assert np.allclose(anchors[2 * 24], [0.5 / 24, 1.5 / 24])
    assert np.allclose(anchors[1152 : 1152 + 6], [0.5 / 12, 0.5 / 12])
    assert np.allclose(anchors[-1], [11.5 / 12, 11.5 / 12])


def test_decoding_reads_x_first_in_input_pixels_around_the_anchor() -> None:
    anchors = np.array([[0.25, 0.5]])
    raw = np.zeros((1, 18))
    raw[0, :4] = [19.2, -9.6, 38.4, 19.2]  # x, y offsets; w, h: in 192-px input pixels
    raw[0, 4:6] = [0.0, 96.0]  # keypoint 0: 0.5 of the input below the anchor
    scores, boxes, points = pd.decode(raw, np.array([0.0]), anchors)
    assert scores[0] == pytest.approx(0.5)  # sigmoid(0)
    centre = np.array([0.25 + 0.1, 0.5 - 0.05])
    half = np.array([0.1, 0.05])
    assert np.allclose(boxes[0], np.concatenate([centre - half, centre + half]))
    assert np.allclose(points[0, 0], [0.25, 1.0]) and np.allclose(points[0, 1:], anchors[0])


def test_scores_are_clipped_logits_through_a_sigmoid() -> None:
    scores, _, _ = pd.decode(np.zeros((2, 18)), np.array([1e4, -1e4]), np.zeros((2, 2)))
    assert scores[0] == pytest.approx(1 / (1 + math.exp(-100)))
    assert scores[1] == pytest.approx(1 / (1 + math.exp(100)))


def test_weighted_nms_merges_overlapping_boxes_by_score_and_keeps_the_best_score() -> None:
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [3.0, 3.0, 4.0, 4.0]])
    points = np.zeros((3, 7, 2))
    points[:, 0] = [[0.0, 0.0], [1.0, 1.0], [3.5, 3.5]]
    scores = np.array([0.9, 0.6, 0.7])
    found = pd.weighted_nms(scores, boxes, points, threshold=0.3)
    assert [d.score for d in found] == [0.9, 0.7]
    # The first two overlap (IoU 0.9 / 1.1 = 0.82): their mean weighted 0.9 : 0.6.
    assert np.allclose(found[0].box, [0.04, 0.0, 1.04, 1.0])
    assert np.allclose(found[0].keypoints[0], [0.4, 0.4])
    assert np.allclose(found[1].box, boxes[2])


def test_weighted_nms_drops_boxes_with_negative_sides() -> None:
    boxes = np.array([[0.0, 0.0, -1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    found = pd.weighted_nms(np.array([0.9, 0.5]), boxes, np.zeros((2, 7, 2)))
    assert len(found) == 1 and found[0].score == 0.5


def test_a_palm_with_its_fingers_up_gives_an_upright_crop_shifted_towards_the_fingers() -> None:
    points = np.zeros((7, 2))
    points[pd.WRIST], points[pd.MIDDLE_MCP] = [50.0, 80.0], [50.0, 40.0]
    det = pd.Detection(0.9, np.array([30.0, 40.0, 70.0, 80.0]), points)
    roi = pd.detection_roi(det)
    assert roi.rotation == pytest.approx(0.0)
    # Half the box's height (40 px) up, then squared and enlarged 2.6x.
    assert (roi.cx, roi.cy, roi.side) == pytest.approx((50.0, 40.0, 104.0))


def test_a_palm_pointing_right_turns_its_crop_a_quarter_turn() -> None:
    points = np.zeros((7, 2))
    points[pd.WRIST], points[pd.MIDDLE_MCP] = [40.0, 50.0], [80.0, 50.0]
    det = pd.Detection(0.9, np.array([40.0, 30.0, 80.0, 70.0]), points)
    roi = pd.detection_roi(det)
    assert roi.rotation == pytest.approx(math.pi / 2)
    # Shifted towards the fingers, i.e. to the right in the image.
    assert (roi.cx, roi.cy) == pytest.approx((80.0, 50.0))
    # The crop's top edge lies on the fingers' side: its top-left corner is at the right.
    top_left = roi.corners()[1]
    assert top_left[0] > roi.cx


def test_detections_of_every_window_land_in_image_pixels_and_merge() -> None:
    windows = [Window.whole(400, 200), *tiles(400, 200, 2)]
    assert windows[0] == Window(0.0, -100.0, 400.0)
    assert len(windows) == 5 and all(w.side == pytest.approx(800 / 3) for w in windows[1:])
    anchors = pd.ssd_anchors()
    raw = np.zeros((len(windows), 2016, 18))
    logits = np.full((len(windows), 2016), -50.0)
    # The same palm, at (100, 50) in the image, found in the whole image and in the first tile.
    palm = np.array([100.0, 50.0])
    for w, (window, logit) in enumerate(zip(windows[:2], (5.0, 3.0), strict=True)):
        centres = anchors * window.side + [window.x0, window.y0]
        k = int(np.argmin(np.linalg.norm(centres - palm, axis=1)))
        logits[w, k] = logit
        raw[w, k, 2:4] = 40.0 * 192 / window.side  # 40 image pixels wide in both
    found = pd.merge_windows(windows, raw, logits, min_score=0.5, anchors=anchors)
    assert len(found) == 1
    assert found[0].score == pytest.approx(1 / (1 + math.exp(-5)))
