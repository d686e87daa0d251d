"""Palm detection as MediaPipe Hands does it: SSD anchors, box and keypoint decoding, weighted
non-maximum suppression, and the rotated hand crop a detection asks for.

Followed from MediaPipe's graph (palm_detection_cpu.pbtxt, palm_detection_detection_to_roi.pbtxt)
and calculators (SsdAnchors, TensorsToDetections, NonMaxSuppression, DetectionsToRects,
RectTransformation):

- the detector sees a square window of the image resized to 192 x 192 (the whole image,
  letterboxed with black borders, in MediaPipe); 2016 anchors, one per cell of a 24 x 24 grid
  (stride 8) twice and of a 12 x 12 grid (stride 16) six times, centred in their cells, of unit
  size (`fixed_anchor_size`);
- each anchor's 18 numbers are a box (x, y, w, h) and 7 palm keypoints (x, y), in input pixels
  relative to the anchor centre (`reverse_output_order`: x first); its score is a logit,
  clipped to +-100, through a sigmoid;
- boxes scoring at least `min_score` (0.5) are merged by weighted NMS: the best box takes every
  box overlapping it by IoU > 0.3 and becomes their score-weighted mean (box and keypoints),
  keeping its own score;
- keypoint 0 is the centre of the wrist, keypoint 2 the middle finger's MCP joint: the hand crop
  is the detection's box turned so that the wrist-to-MCP vector points up, moved by half its
  height towards the fingers, squared on its longer side and enlarged 2.6x.

Coordinates are image pixels, centres at integers (`handshape.inference.rois`).
Where handshape goes beyond MediaPipe: the detector may see several windows of the image in one
batch (the letterboxed whole image, MediaPipe's only one, and tiles of it, `rois.tiles`), whose
detections are merged by the same weighted NMS (`detect`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from handshape.inference.rois import Roi, Window, transform_rect, upright_rotation, warp

INPUT_SIZE = 192
STRIDES = (8, 16, 16, 16)
NUM_KEYPOINTS = 7
SCORE_CLIP = 100.0
MIN_SCORE = 0.5
NMS_IOU = 0.3
WRIST, MIDDLE_MCP = 0, 2  # palm keypoints that orient the hand crop
CROP_SCALE, CROP_SHIFT_Y = 2.6, -0.5


def ssd_anchors(input_size: int = INPUT_SIZE, strides: tuple[int, ...] = STRIDES) -> np.ndarray:
    """(A, 2) anchor centres in [0, 1] (x, y), in the order of the detector's outputs.

    Layers of equal stride share one grid; each layer puts two anchors in every cell (its own
    aspect ratio 1 and the interpolated scale, which with a fixed anchor size are the same
    point): 24 x 24 x 2 + 12 x 12 x 6 = 2016 for the 192-px detector."""
    centres = []
    layer = 0
    while layer < len(strides):
        same = layer
        while same < len(strides) and strides[same] == strides[layer]:
            same += 1
        per_cell = 2 * (same - layer)
        cells = math.ceil(input_size / strides[layer])
        grid = (np.arange(cells) + 0.5) / cells
        yy, xx = np.meshgrid(grid, grid, indexing="ij")
        points = np.stack([xx, yy], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(points, per_cell, axis=1).reshape(-1, 2))
        layer = same
    return np.concatenate(centres).astype(np.float64)


@dataclass(frozen=True)
class Detection:
    """One palm: score in [0, 1], box (x0, y0, x1, y1) and keypoints (7, 2), image pixels."""

    score: float
    box: np.ndarray
    keypoints: np.ndarray


def decode(
    raw_boxes: np.ndarray,
    raw_scores: np.ndarray,
    anchors: np.ndarray,
    input_size: int = INPUT_SIZE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The detector's raw outputs -> (scores (A,), boxes (A, 4) x0 y0 x1 y1, keypoints (A, 7, 2)),
    coordinates normalised to the detector's input window ([0, 1]).

    raw_boxes: (A, 18); raw_scores: (A,) or (A, 1) logits; anchors: (A, 2) from `ssd_anchors`."""
    raw_boxes = np.asarray(raw_boxes, dtype=np.float64).reshape(len(anchors), -1)
    logits = np.clip(np.asarray(raw_scores, dtype=np.float64).reshape(-1), -SCORE_CLIP, SCORE_CLIP)
    scores = 1.0 / (1.0 + np.exp(-logits))
    centre = raw_boxes[:, 0:2] / input_size + anchors
    half = raw_boxes[:, 2:4] / input_size / 2.0
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw_boxes[:, 4 : 4 + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2)
    keypoints = keypoints / input_size + anchors[:, None, :]
    return scores, boxes, keypoints


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box (4,) with each of boxes (N, 4), x0 y0 x1 y1."""
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def weighted_nms(
    scores: np.ndarray,
    boxes: np.ndarray,
    keypoints: np.ndarray,
    threshold: float = NMS_IOU,
) -> list[Detection]:
    """MediaPipe's weighted non-maximum suppression, best first.

    The best remaining box gathers every remaining box (itself included) whose IoU with it
    exceeds `threshold`; the merged detection is their score-weighted mean box and keypoints
    with the best box's score. Boxes with a negative or NaN side are dropped first, as
    MediaPipe's decoder drops them."""
    sides = boxes[:, 2:] - boxes[:, :2]
    valid = np.all(sides >= 0, axis=1) & np.all(np.isfinite(boxes), axis=1)
    order = np.argsort(-scores[valid], kind="stable")
    index = np.flatnonzero(valid)[order]
    out: list[Detection] = []
    while len(index):
        best = index[0]
        overlap = iou(boxes[best], boxes[index]) > threshold
        overlap[0] = True  # a box of no area overlaps nothing, itself included
        group = index[overlap]
        weights = scores[group][:, None]
        total = float(weights.sum())
        box = (boxes[group] * weights).sum(0) / total
        points = (keypoints[group] * weights[:, :, None]).sum(0) / total
        out.append(Detection(float(scores[best]), box, points))
        index = index[~overlap]
    return out


def detection_roi(detection: Detection) -> Roi:
    """The hand crop of one palm detection (module docstring)."""
    rotation = upright_rotation(detection.keypoints[WRIST], detection.keypoints[MIDDLE_MCP])
    x0, y0, x1, y1 = detection.box
    return transform_rect(
        (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, rotation, CROP_SCALE, CROP_SHIFT_Y
    )


def window_inputs(image: np.ndarray, windows: list[Window]) -> np.ndarray:
    """(N, 192, 192, 3) uint8: what the detector sees of each window of an (H, W, 3) image."""
    return np.stack(
        [warp(image, w.matrix(INPUT_SIZE), INPUT_SIZE, replicate=False) for w in windows]
    )


def merge_windows(
    windows: list[Window],
    raw_boxes: np.ndarray,
    raw_scores: np.ndarray,
    min_score: float | list[float] = MIN_SCORE,
    anchors: np.ndarray | None = None,
) -> list[Detection]:
    """Detections in image pixels from the detector's outputs for each window (raw_boxes (N,
    A, 18), raw_scores (N, A) or (N, A, 1)): decoded, kept from `min_score` (one for all
    windows or one per window), mapped out of their windows and merged across windows by
    weighted NMS, best first."""
    anchors = ssd_anchors() if anchors is None else anchors
    thresholds = [min_score] * len(windows) if isinstance(min_score, float | int) else min_score
    all_scores, all_boxes, all_points = [], [], []
    for window, boxes_raw, scores_raw, threshold in zip(
        windows, raw_boxes, raw_scores, thresholds, strict=True
    ):
        scores, boxes, points = decode(boxes_raw, scores_raw, anchors)
        keep = scores >= threshold
        all_scores.append(scores[keep])
        all_boxes.append(window.to_image(boxes[keep].reshape(-1, 2, 2)).reshape(-1, 4))
        all_points.append(window.to_image(points[keep]))
    return weighted_nms(
        np.concatenate(all_scores),
        np.concatenate(all_boxes),
        np.concatenate(all_points).reshape(-1, NUM_KEYPOINTS, 2),
    )
