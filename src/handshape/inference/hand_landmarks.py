"""MediaPipe's hand landmark network around one hand: its input crop, decoding its four outputs,
and the crop that the landmarks ask for next (tracking, refinement).

Followed from MediaPipe's hand_landmark_cpu.pbtxt, hand_landmark_landmarks_to_roi.pbtxt and
calculators (TensorsToLandmarks, LandmarkProjection, WorldLandmarkProjection,
TensorsToClassification, HandLandmarksToRect):

- the input is the hand's rotated square (`rois.Roi`) resized to 224 x 224, values in [0, 1],
  the image's border pixels repeated outside it;
- output 0: 21 x (x, y, z) in input pixels; z is depth relative to the wrist, smaller is closer,
  in the units of x divided by 0.4 ("normalize_z"); projected into the image by the crop's
  rotation and side (z scaled like x);
- output 1: the hand presence score in [0, 1] (a probability already), a hand if at least 0.5;
- output 2: the handedness score in [0, 1]: MediaPipe labels it "Left" when above 0.5 and
  documents that its labels assume a mirrored (selfie) image, so for a photograph as taken it
  is the probability of a right hand (`right_score`), which handshape reports;
- output 3: 21 x (x, y, z) "world" landmarks in metres around the hand's centre, turned by the
  crop's rotation into the image's axes;
- the next crop (`landmarks_roi`) is the box of 12 landmarks (wrist, the thumb's first three,
  each finger's first two) in the frame turned so that the wrist points at the mean of the
  index, middle and ring MCP joints (middle counted twice), moved 0.1 of its height towards the
  fingers, squared on its longer side and enlarged 2x.

Every landmark is in the project's joint order already (wrist, then thumb, index, middle, ring,
little, base to tip).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handshape.inference.rois import Roi, transform_rect, upright_rotation, warp

INPUT_SIZE = 224
NORMALIZE_Z = 0.4
NUM_LANDMARKS = 21
MIN_PRESENCE = 0.5
ROI_SCALE, ROI_SHIFT_Y = 2.0, -0.1
# The landmarks whose box makes the next crop, and (within them) those that orient it.
ROI_LANDMARKS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)
WRIST, INDEX_MCP, MIDDLE_MCP, RING_MCP = 0, 5, 9, 13


@dataclass(frozen=True)
class Landmarks:
    """One hand's landmarks.

    points: (21, 3) image pixels x, y (pixel centres at integers) and z in pixels,
    relative to the wrist, smaller is closer; world: (21, 3) metres, hand-centred, in the
    image's axes; presence and right_score in [0, 1]; roi: the crop they came from."""

    points: np.ndarray
    world: np.ndarray
    presence: float
    right_score: float
    roi: Roi


def crop_input(image: np.ndarray, roi: Roi) -> np.ndarray:
    """(224, 224, 3) uint8: the hand's square of an (H, W, 3) uint8 image."""
    return warp(image, roi.matrix(INPUT_SIZE), INPUT_SIZE, replicate=True)


def decode(
    raw_points: np.ndarray,
    presence: float,
    handedness: float,
    raw_world: np.ndarray,
    roi: Roi,
) -> Landmarks:
    """The network's four outputs for one crop (63 numbers, a score, a score, 63 numbers) ->
    landmarks in the image."""
    local = np.asarray(raw_points, dtype=np.float64).reshape(NUM_LANDMARKS, 3) / INPUT_SIZE
    points = np.empty_like(local)
    points[:, :2] = roi.to_image(local[:, :2])
    points[:, 2] = local[:, 2] / NORMALIZE_Z * roi.side
    world = np.asarray(raw_world, dtype=np.float64).reshape(NUM_LANDMARKS, 3).copy()
    c, s = np.cos(roi.rotation), np.sin(roi.rotation)
    world[:, :2] = world[:, :2] @ np.array([[c, -s], [s, c]]).T
    return Landmarks(points, world, float(presence), float(handedness), roi)


def landmarks_roi(points: np.ndarray) -> Roi:
    """The crop that (21, 2+) landmarks in image pixels ask for (module docstring)."""
    xy = np.asarray(points, dtype=np.float64)[:, :2]
    mcp = ((xy[INDEX_MCP] + xy[RING_MCP]) / 2 + xy[MIDDLE_MCP]) / 2
    rotation = upright_rotation(xy[WRIST], mcp)
    part = xy[list(ROI_LANDMARKS)]
    centre = (part.min(0) + part.max(0)) / 2
    c, s = np.cos(rotation), np.sin(rotation)
    turn = np.array([[c, -s], [s, c]])
    local = (part - centre) @ turn  # rows times turn = the inverse rotation of each point
    lo, hi = local.min(0), local.max(0)
    cx, cy = turn @ ((lo + hi) / 2) + centre
    width, height = hi - lo
    return transform_rect(cx, cy, width, height, rotation, ROI_SCALE, ROI_SHIFT_Y)
