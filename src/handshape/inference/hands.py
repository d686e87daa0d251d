"""Every hand in a photograph or a video: palm detection, landmarks, handedness, tracking.

`HandFinder` runs MediaPipe Hands' two networks (ported to PyTorch, `tflite_graph`) the way its
hand-tracking graph does (hand_landmark_tracking_cpu.pbtxt):

1. the palm detector on the letterboxed image (`palm_detection`); each palm becomes a rotated
   crop around its hand;
2. the landmark network on every crop in one batch (`hand_landmarks`); a crop whose presence
   score is below 0.5 holds no hand;
3. in a video, frame t + 1 is cropped where frame t's landmarks ask (`landmarks_roi`), and the
   detector runs again only while fewer hands than `max_hands` are tracked; detections
   overlapping a tracked hand (IoU > 0.5) are dropped, as MediaPipe's association does.

What handshape adds, each measured in docs/benchmarks.md:

- tiles: in a large picture (longer side at least `tile_from` pixels) the detector sees
  MediaPipe's whole image and, in the same batch, `tiles` x `tiles` overlapping squares of it,
  so that hands too small at 192 px over the whole picture are found; their palms may score
  lower (`tile_score`), because the landmark network's presence score confirms every crop
  before it counts;
- refinement: each photograph's hands are cropped again from their own landmarks and read a
  second time (what tracking does between frames), which centres and turns the crop the way
  the landmark network was trained on, and (`flip`) that crop is read mirrored too and the two
  readings averaged;
- close-ups: when the detector finds no hand, the whole picture is read as a hand crop at four
  turns (`closeup_rois`), each confirmed or not by its presence score;
- duplicates: two crops whose landmarks land on one hand (boxes overlapping by IoU > 0.5) keep
  the more confident;
- handedness as the person's real hand (MediaPipe's label assumes a mirrored image).

Coordinates are the project's pixels (pixel centres at integers, `handshape.inference.rois`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from handshape.inference import hand_landmarks, palm_detection
from handshape.inference.hand_landmarks import Landmarks
from handshape.inference.rois import Roi, Window, tiles

Network = Callable[[torch.Tensor], tuple[torch.Tensor, ...]]
SAME_HAND_IOU = 0.5


@dataclass(frozen=True)
class Hand:
    """One hand found: landmarks (21, 3) with x, y in image pixels (pixel centres at integers)
    and z in pixels relative to the wrist (smaller is closer); world (21, 3) metres;
    handedness 'left' or 'right' (the person's); presence and right_score in [0, 1]; box
    (x0, y0, x1, y1) around the landmarks; roi the crop they were read from; track the hand's
    number in a video (-1 in a photograph)."""

    landmarks: np.ndarray
    world: np.ndarray
    handedness: str
    presence: float
    right_score: float
    box: np.ndarray
    roi: Roi
    track: int = -1  # in a video: the same number for the same hand from frame to frame


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> (N, 3, S, S) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(hi - lo, 0.0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2])) - inter
    return inter / union if union > 0 else 0.0


def _hand(found: Landmarks, track: int = -1) -> Hand:
    points = found.points.copy()
    box = np.concatenate([points[:, :2].min(0), points[:, :2].max(0)])
    side = "right" if found.right_score >= 0.5 else "left"
    return Hand(points, found.world, side, found.presence, found.right_score, box, found.roi, track)


def distinct(hands: Sequence[Hand], iou: float = SAME_HAND_IOU) -> list[Hand]:
    """The hands, most present first, without any whose box overlaps a kept one's by > iou."""
    kept: list[Hand] = []
    for hand in sorted(hands, key=lambda h: -h.presence):
        if all(box_iou(hand.box, other.box) <= iou for other in kept):
            kept.append(hand)
    return kept


@dataclass
class HandFinder:
    """MediaPipe Hands in PyTorch, with handshape's additions (module docstring).

    detector: (N, 3, 192, 192) -> (boxes (N, 2016, 18), scores (N, 2016, 1));
    landmarker: (N, 3, 224, 224) -> (points (N, 63), presence (N, 1), handedness (N, 1),
    world (N, 63)); both take values in [0, 1]."""

    detector: Network
    landmarker: Network
    max_hands: int = 4
    min_score: float = palm_detection.MIN_SCORE
    tiles: int = 3
    tile_score: float = 0.2
    min_presence: float = hand_landmarks.MIN_PRESENCE
    refine: bool = True
    flip: bool = True
    closeup: bool = True
    tile_from: int = 1000
    _anchors: np.ndarray = field(default_factory=palm_detection.ssd_anchors, repr=False)

    @classmethod
    def load(cls, **options: object) -> HandFinder:
        """Both networks from the set-up cache (`mediapipe_files`), ported to PyTorch."""
        from handshape.inference.mediapipe_files import model_file
        from handshape.inference.tflite_graph import load_tflite

        detector = load_tflite(model_file("palm_detection")).eval()
        landmarker = load_tflite(model_file("hand_landmark")).eval()
        return cls(detector, landmarker, **options)  # type: ignore[arg-type]

    # -- the two networks -------------------------------------------------------------------

    @torch.inference_mode()
    def detect(self, image: np.ndarray) -> list[palm_detection.Detection]:
        """Palms in an (H, W, 3) uint8 image, best first, in image pixels."""
        height, width = image.shape[:2]
        windows = [Window.whole(width, height)]
        if self.tiles > 0 and max(width, height) >= self.tile_from:
            windows += tiles(width, height, self.tiles)
        boxes, scores = self.detector(to_tensor(palm_detection.window_inputs(image, windows)))
        # The tiles' palms may score lower: the presence score confirms every crop.
        thresholds = [self.min_score] + [min(self.min_score, self.tile_score)] * (len(windows) - 1)
        return palm_detection.merge_windows(
            windows, boxes.numpy(), scores.numpy(), thresholds, self._anchors
        )

    @torch.inference_mode()
    def read(self, image: np.ndarray, rois: Sequence[Roi], flip: bool = False) -> list[Landmarks]:
        """The landmark network on each crop of an (H, W, 3) uint8 image, in one batch.

        flip: also read each crop mirrored left to right (a right hand becomes a left one,
        which the network reads as well) and average both readings, mirrored back."""
        if not rois:
            return []
        crops = np.stack([hand_landmarks.crop_input(image, roi) for roi in rois])
        if flip:
            crops = np.concatenate([crops, crops[:, :, ::-1]])
        points, presence, handedness, world = (t.numpy() for t in self.landmarker(to_tensor(crops)))
        presence, handedness = presence.reshape(-1), handedness.reshape(-1)
        n = len(rois)
        if flip:
            mirrored = points[n:].reshape(n, -1, 3).copy()
            # Flipping the crop's pixels takes pixel centre u to INPUT_SIZE - 1 - u.
            mirrored[..., 0] = hand_landmarks.INPUT_SIZE - 1 - mirrored[..., 0]
            points = (points[:n] + mirrored.reshape(n, -1)) / 2
            mirrored_world = world[n:].reshape(n, -1, 3).copy()
            mirrored_world[..., 0] *= -1
            world = (world[:n] + mirrored_world.reshape(n, -1)) / 2
            presence = (presence[:n] + presence[n:]) / 2
            handedness = (handedness[:n] + 1 - handedness[n:]) / 2
        return [
            hand_landmarks.decode(p, float(s), float(h), w, roi)
            for p, s, h, w, roi in zip(points, presence, handedness, world, rois, strict=True)
        ]

    def read_box(self, image: np.ndarray, box: np.ndarray) -> Landmarks:
        """The landmarks of a hand in a given box (x0, y0, x1, y1, pixels), whatever its
        presence: the box's square 1.5x its longer side read at four turns, the most present
        reading kept, then refined (`refined`)."""
        best = max(self.read(image, turns(box_roi(box))), key=lambda f: f.presence)
        return self.refined(image, [best])[0]

    def refined(self, image: np.ndarray, found: list[Landmarks]) -> list[Landmarks]:
        """Each reading read again from the crop its landmarks ask for (and mirrored, with
        `flip`), kept where the hand is still present there (`refine`; else as it was)."""
        if not self.refine or not found:
            return found
        rois = [hand_landmarks.landmarks_roi(f.points) for f in found]
        again = self.read(image, rois, flip=self.flip)
        kept = zip(found, again, strict=True)
        return [b if b.presence >= self.min_presence else a for a, b in kept]

    # -- photographs --------------------------------------------------------------------------

    def find(self, image: np.ndarray, boxes: Sequence[np.ndarray] | None = None) -> list[Hand]:
        """Every hand in an (H, W, 3) uint8 RGB photograph, most confident first.

        boxes: the user's hand boxes (x0, y0, x1, y1, project pixels), which replace the
        detector (`read_box`)."""
        if boxes is not None:
            found = [self.read_box(image, np.asarray(b, dtype=np.float64)) for b in boxes]
        else:
            rois = [palm_detection.detection_roi(d) for d in self.detect(image)]
            found = [f for f in self.read(image, rois) if f.presence >= self.min_presence]
            if not found and self.closeup:
                found = self.read(image, closeup_rois(image))
                found = [f for f in found if f.presence >= self.min_presence]
            found = self.refined(image, found)
        found = [f for f in found if f.presence >= self.min_presence]
        return distinct([_hand(f) for f in found])[: self.max_hands]


def turns(roi: Roi) -> list[Roi]:
    """The square turned four ways: where no palm says which way the hand points."""
    return [Roi(roi.cx, roi.cy, roi.side, roi.rotation + k * np.pi / 2) for k in range(4)]


def closeup_rois(image: np.ndarray) -> list[Roi]:
    """The whole picture as a hand crop, turned four ways: a hand filling the frame (a close-up,
    an egocentric view, a hand-centred crop such as FreiHAND's) is too large for the palm
    detector's anchors, but the landmark network reads it at one of these turns."""
    height, width = image.shape[:2]
    return turns(Roi(width / 2, height / 2, float(max(width, height)), 0.0))


def box_roi(box: np.ndarray, margin: float = 1.5) -> Roi:
    """An upright square crop around a user's box (project pixels), margin x its longer side."""
    x0, y0, x1, y1 = box
    return Roi((x0 + x1) / 2, (y0 + y1) / 2, margin * max(x1 - x0, y1 - y0), 0.0)


@dataclass
class HandTracker:
    """MediaPipe's video mode: each frame is cropped where the last frame's landmarks ask; the
    detector runs only while fewer than `max_hands` hands are tracked, and (unlike MediaPipe,
    which then runs it on every frame) while at least one is, only every `detect_every`
    frames: a new hand is picked up within a third of a second at 30 frames/s, and a tracked
    hand costs one landmark reading a frame. A hand keeps its `track` number while it is
    followed; a hand found by the detector gets a new one."""

    finder: HandFinder
    detect_every: int = 10
    _tracked: list[tuple[int, Roi]] = field(default_factory=list)
    _next: int = 0
    _since: int = 0

    def reset(self) -> None:
        self._tracked, self._next, self._since = [], 0, 0

    def step(self, frame: np.ndarray) -> list[Hand]:
        """The hands in the next (H, W, 3) uint8 RGB frame."""
        finder = self.finder
        tracked = list(self._tracked)
        due = not tracked or self._since >= self.detect_every
        if len(tracked) < finder.max_hands and due:
            self._since = 0
            boxes = [roi.box() for _, roi in tracked]
            for det in finder.detect(frame):
                roi = palm_detection.detection_roi(det)
                if all(box_iou(roi.box(), b) <= SAME_HAND_IOU for b in boxes):
                    tracked.append((self._next, roi))
                    boxes.append(roi.box())
                    self._next += 1
        read = finder.read(frame, [roi for _, roi in tracked])
        found = [
            _hand(f, track)
            for (track, _), f in zip(tracked, read, strict=True)
            if f.presence >= finder.min_presence
        ]
        hands = distinct(found)[: finder.max_hands]
        self._since += 1
        self._tracked = [
            (h.track, hand_landmarks.landmarks_roi(h.landmarks[:, :2])) for h in hands
        ]
        return hands
