"""Reading what `handshape predict` is given (image files, folders of them, videos) and writing
videos, through Pillow and OpenCV (whose wheel carries FFmpeg).

- Images are turned upright by their EXIF orientation, so pixels are what a viewer shows; the
  focal length in pixels is read from EXIF where the photograph records it (the 35 mm
  equivalent focal length over the 43.27 mm diagonal of a 36 x 24 mm frame, else the focal
  length times the focal plane's resolution).
- A folder stands for the images and videos directly inside it, in name order.
- A video is read frame by frame (RGB) with its frame rate; an overlaid video is written under a
  temporary name and renamed when complete, so no half-written file is left.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
# EXIF tags (Exif IFD)
FOCAL_35MM, FOCAL_MM = 0xA405, 0x920A
PLANE_X_RES, PLANE_UNIT = 0xA20E, 0xA210
UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # inch, cm, mm, micrometre


@dataclass(frozen=True)
class Source:
    path: Path
    kind: str  # "image" or "video"


def sources(paths: Sequence[Path]) -> list[Source]:
    """The inputs named on the command line: files as they are (a video by its suffix), folders
    as the images and videos directly inside them. FileNotFoundError for a missing path; a
    folder with nothing to read is a ValueError naming it."""
    found: list[Source] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            inside = [
                p
                for p in sorted(path.iterdir())
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
            ]
            if not inside:
                raise ValueError(f"{path}: a folder without images or videos to read")
            found += [_source(p) for p in inside]
        elif path.is_file():
            found.append(_source(path))
        else:
            raise FileNotFoundError(f"{path}: no such image, video or folder")
    return found


def _source(path: Path) -> Source:
    return Source(path, "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image")


def exif_focal_px(image: Image.Image) -> float | None:
    """The focal length in pixels that the image's EXIF records, or None."""
    try:
        exif = image.getexif().get_ifd(0x8769)
    except Exception:  # a malformed EXIF block is no reason to refuse the photograph
        return None
    longer = max(image.size)
    f35 = exif.get(FOCAL_35MM)
    if f35 and float(f35) > 0:
        diagonal_px = math.hypot(*image.size)
        return float(f35) * diagonal_px / FRAME_DIAGONAL_MM
    f_mm, x_res, unit = exif.get(FOCAL_MM), exif.get(PLANE_X_RES), exif.get(PLANE_UNIT)
    if f_mm and x_res and unit in UNIT_MM and float(f_mm) > 0 and float(x_res) > 0:
        focal = float(f_mm) * float(x_res) / UNIT_MM[int(unit)]
        return focal if 0.1 * longer < focal < 20 * longer else None
    return None


def read_image(path: Path) -> tuple[np.ndarray, float | None]:
    """(H, W, 3) uint8 RGB, upright, and the EXIF focal length in pixels (or None).
    ValueError naming the file when it is not a readable image."""
    try:
        with Image.open(path) as img:
            img.load()
            upright = ImageOps.exif_transpose(img) or img
            focal = exif_focal_px(img)
            return np.asarray(upright.convert("RGB")).copy(), focal
    except (OSError, ValueError, SyntaxError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from err


class VideoReader:
    """The frames of a video file as (H, W, 3) uint8 RGB; ValueError naming the file when it
    cannot be opened or yields no frame."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            raise ValueError(f"{self.path}: not a readable video")
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if math.isfinite(fps) and fps > 0 else 30.0
        self.frames = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def __iter__(self) -> Iterator[np.ndarray]:
        count = 0
        try:
            while True:
                ok, frame = self._capture.read()
                if not ok:
                    break
                count += 1
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            self._capture.release()
        if count == 0:
            raise ValueError(f"{self.path}: a video without a readable frame")


class VideoWriter:
    """An MP4 (mp4v) written frame by frame under a temporary name, renamed onto `path` by
    `close()`; `abort()` (or an exception inside a with block) removes it."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".mp4", dir=self.path.parent
        )
        os.close(fd)
        self._tmp = Path(tmp)
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame (every frame of one size)."""
        if self._writer is None:
            h, w = frame.shape[:2]
            self._writer = cv2.VideoWriter(
                str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h)
            )
            if not self._writer.isOpened():
                raise ValueError(f"{self.path}: OpenCV cannot write an mp4v video here")
        self._writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))

    def close(self) -> Path:
        if self._writer is None:
            self.abort()
            raise ValueError(f"{self.path}: no frame to write")
        self._writer.release()
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.release()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
