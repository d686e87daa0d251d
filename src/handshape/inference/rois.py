"""The squares of a photograph that MediaPipe's two networks see, and cutting them out.

A `Window` is an axis-aligned square the palm detector sees (the whole image, letterboxed, or a
tile of it); a `Roi` a rotated square around one hand that the landmark network sees. Both are
in image pixels with OpenCV's (and the project's) convention, pixel centres at integers:
MediaPipe's normalised coordinates times the image size, as its ImageToTensor hands them to
cv2.warpPerspective, and its landmarks come back in the same terms (measured on rendered hands
with known joints: reading them as half a pixel off, or flipping mirrored crops about 224
instead of 223, is no better; docs/prediction.md). `warp` cuts either out the way MediaPipe's
ImageToTensor does (the square's corners onto the input's corners, bilinear), except that a
square shrunk by more than 2x is area-averaged most of the way first: bilinear sampling alone
aliases in large photographs (MediaPipe accepts that; handshape does not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Window:
    """An axis-aligned square of the image: top-left corner and side, in pixels (it may reach
    past the image, where the detector sees black)."""

    x0: float
    y0: float
    side: float

    @classmethod
    def whole(cls, width: int, height: int) -> Window:
        """MediaPipe's: the whole image, letterboxed into a centred square."""
        side = float(max(width, height))
        return cls((width - side) / 2.0, (height - side) / 2.0, side)

    def matrix(self, size: int) -> np.ndarray:
        """(2, 3) affine taking image pixels to the size-px input."""
        s = size / self.side
        return np.array([[s, 0.0, -s * self.x0], [0.0, s, -s * self.y0]])

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) coordinates normalised to the window ([0, 1]) -> image pixels."""
        return np.asarray(points, dtype=np.float64) * self.side + np.array([self.x0, self.y0])


def tiles(width: int, height: int, count: int) -> list[Window]:
    """A count x count grid of squares over the image, each 2 / (count + 1) of the longer side
    (neighbours overlap by half), for hands too small to find at the whole image's scale."""
    side = 2.0 * max(width, height) / (count + 1)
    spots = [i / max(count - 1, 1) for i in range(count)]
    return [Window((width - side) * i, (height - side) * j, side) for j in spots for i in spots]


@dataclass(frozen=True)
class Roi:
    """A rotated square: centre, side (pixels) and rotation (radians; MediaPipe's `rotation`,
    the angle from the image's axes to the square's, positive turning x towards y)."""

    cx: float
    cy: float
    side: float
    rotation: float

    def corners(self) -> np.ndarray:
        """(4, 2) image pixels of the corners: bottom-left, top-left, top-right, bottom-right
        in the square's own frame (OpenCV's boxPoints order, which MediaPipe maps onto the
        input's corners)."""
        half = self.side / 2.0
        local = np.array([[-half, half], [-half, -half], [half, -half], [half, half]])
        return local @ self._rotation().T + np.array([self.cx, self.cy])

    def _rotation(self) -> np.ndarray:
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        return np.array([[c, -s], [s, c]])

    def matrix(self, size: int) -> np.ndarray:
        """(2, 3) affine taking image pixels to the size-px input."""
        # The inverse of `to_image`, scaled to the input: the corners land on the input's.
        linear = (size / self.side) * self._rotation().T
        return np.concatenate(
            [linear, (size / 2 - linear @ np.array([self.cx, self.cy]))[:, None]], axis=1
        )

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) coordinates normalised to the square ([0, 1], y down) -> image pixels."""
        local = (np.asarray(points, dtype=np.float64) - 0.5) * self.side
        return local @ self._rotation().T + np.array([self.cx, self.cy])

    def box(self) -> np.ndarray:
        """(4,) the axis-aligned box x0, y0, x1, y1 around the square."""
        corners = self.corners()
        return np.concatenate([corners.min(0), corners.max(0)])


def normalize_radians(angle: float) -> float:
    """The angle in [-pi, pi)."""
    return angle - 2.0 * math.pi * math.floor((angle + math.pi) / (2.0 * math.pi))


def upright_rotation(start: np.ndarray, end: np.ndarray) -> float:
    """The rotation of a square whose up direction is the vector start -> end (pixels, y
    down): MediaPipe's `target_angle - atan2(-dy, dx)` with a 90 degree target."""
    return normalize_radians(math.pi / 2 - math.atan2(-(end[1] - start[1]), end[0] - start[0]))


def transform_rect(
    cx: float,
    cy: float,
    width: float,
    height: float,
    rotation: float,
    scale: float,
    shift_y: float,
) -> Roi:
    """MediaPipe's RectTransformation in pixels: move the rect by shift_y of its height along
    its own vertical axis, square it on its longer side, scale it."""
    cx -= height * shift_y * math.sin(rotation)
    cy += height * shift_y * math.cos(rotation)
    return Roi(cx, cy, max(width, height) * scale, rotation)


def warp(image: np.ndarray, matrix: np.ndarray, size: int, replicate: bool) -> np.ndarray:
    """(size, size, C) uint8: `image` (H, W, C) uint8 through the (2, 3) affine `matrix`,
    bilinear; outside the image its border pixels (`replicate`, the landmark network's
    convention) or black (the detector's letterbox).

    Where the matrix shrinks by more than 2x, the part of the image the square covers is
    area-averaged to 2x the output's resolution first."""
    border = cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    if scale < 0.5:
        h, w = image.shape[:2]
        inverse = cv2.invertAffineTransform(matrix)
        square = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], float)
        reach = square @ inverse.T
        pad = 2.0 / scale  # a few source pixels more, so the bilinear taps stay inside
        x0 = int(np.clip(math.floor(reach[:, 0].min() - pad), 0, w - 1))
        y0 = int(np.clip(math.floor(reach[:, 1].min() - pad), 0, h - 1))
        x1 = int(np.clip(math.ceil(reach[:, 0].max() + pad), x0 + 1, w))
        y1 = int(np.clip(math.ceil(reach[:, 1].max() + pad), y0 + 1, h))
        part = image[y0:y1, x0:x1]
        f = 2.0 * scale
        small = cv2.resize(
            part,
            (max(1, round(part.shape[1] * f)), max(1, round(part.shape[0] * f))),
            interpolation=cv2.INTER_AREA,
        )
        fx, fy = small.shape[1] / part.shape[1], small.shape[0] / part.shape[0]
        # small pixels -> image pixels, both with OpenCV's pixel centres at integers (as
        # cv2.resize maps them): X = x0 + (x + 0.5) / fx - 0.5
        back = np.array(
            [[1 / fx, 0.0, x0 + 0.5 / fx - 0.5], [0.0, 1 / fy, y0 + 0.5 / fy - 0.5], [0, 0, 1.0]]
        )
        matrix = matrix @ back
        image = small
    return cv2.warpAffine(
        np.ascontiguousarray(image),
        np.ascontiguousarray(matrix, dtype=np.float64),
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=border,
        borderValue=(0, 0, 0),
    )
