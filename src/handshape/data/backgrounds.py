"""Random backgrounds for compositing synthetic hand renders.

Ge et al. (CVPR 2019) paste every rendered hand over a random crop of a real photograph
(COCO / LSUN / Flickr) so the network never learns to rely on the background. This module
provides that as :class:`BackgroundSource`:

* with ``root`` it samples random square crops of the photographs found in a folder tree
  (a COCO ``train2017/``, an LSUN export, a Flickr download, ...);
* without ``root`` it needs no data at all: it mixes procedural images (gradients,
  fractal value noise, random clutter, stripes, checkers) with the handful of photographs
  that ship *inside* the scikit-image wheel. Those are read straight from the package
  folder with PIL, never through ``skimage.data`` (which may reach for the network via
  pooch), so nothing is ever downloaded.

Every background is an ``(size, size, 3)`` ``uint8`` RGB array, and everything random is
drawn from the caller's ``numpy.random.Generator``: the same generator state gives the same
background.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from collections import OrderedDict
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

logger = logging.getLogger("handshape.data.backgrounds")

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png"})

PROCEDURAL_KINDS: tuple[str, ...] = (
    "linear_gradient",
    "radial_gradient",
    "value_noise",
    "clutter",
    "stripes",
    "checkers",
)

# Photographs shipped in the scikit-image wheel (its legacy data folder), so they load offline.
# Left out on purpose: silhouettes/logos/phantoms (horse, logo, phantom), the chessboards
# (the procedural checkers cover them) and tiny files (microaneurysms, the gif).
BUNDLED_PHOTO_FILES: tuple[str, ...] = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "color.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
)


# --------------------------------------------------------------------------- image helpers


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Any PIL image (L, LA, P, RGBA, CMYK, 16-bit, ...) -> ``(H, W, 3)`` uint8 RGB."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # PIL's convert("RGB") clips these to 0..255 instead of rescaling, which would turn
        # 16-bit photographs white; rescale by the dtype range ourselves.
        values = np.asarray(image, dtype=np.float32)
        top = 65535.0 if values.max() > 255 else 255.0
        gray = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _load_rgb(path: Path) -> np.ndarray:
    """Decode an image file to ``(H, W, 3)`` uint8; raises whatever PIL raises on bad files."""
    with Image.open(path) as image:
        # Decode fully here so truncated files fail now, not lazily somewhere later.
        image.load()
        array = _to_rgb(image)
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError("image has no pixels")
    return array


def random_square_crop(
    image: np.ndarray,
    rng: np.random.Generator,
    size: int,
    min_scale: float = 0.3,
    max_scale: float = 1.0,
) -> np.ndarray:
    """Random square crop of ``image`` resized to ``(size, size, 3)``, randomly mirrored.

    The crop side is a uniform fraction in ``[min_scale, max_scale]`` of the image's short
    side and the crop lies at a uniform position inside the image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        rng: source of all randomness.
        size: output side in pixels.
        min_scale: smallest crop side as a fraction of ``min(H, W)``.
        max_scale: largest crop side as a fraction of ``min(H, W)``.

    Returns:
        ``(size, size, 3)`` uint8 RGB.
    """
    height, width = image.shape[:2]
    short = min(height, width)
    side = max(1, min(short, round(short * rng.uniform(min_scale, max_scale))))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    flip = bool(rng.random() < 0.5)
    crop = Image.fromarray(image[top : top + side, left : left + side])
    if side != size:
        # PIL's bilinear filter widens its support when shrinking, i.e. it averages like an
        # area filter, so large crops do not alias.
        crop = crop.resize((size, size), Image.Resampling.BILINEAR)
    out = np.asarray(crop, dtype=np.uint8)
    if flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


# --------------------------------------------------------------------------- bundled photos


def _skimage_data_dir() -> Path | None:
    """Folder of the ``skimage.data`` package, found without importing ``skimage.data``."""
    try:
        spec = importlib.util.find_spec("skimage.data")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def _bundled_photos() -> tuple[tuple[str, np.ndarray], ...]:
    """Decoded bundled photographs, loaded once per process; missing/broken ones are skipped."""
    folder = _skimage_data_dir()
    if folder is None:
        return ()
    photos: list[tuple[str, np.ndarray]] = []
    for name in BUNDLED_PHOTO_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            photos.append((Path(name).stem, _load_rgb(path)))
        except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ... on bad files
            logger.debug("bundled photo %s unavailable: %s", path, exc)
    return tuple(photos)


def available_bundled_photos() -> tuple[str, ...]:
    """Names of the scikit-image photographs usable offline in this environment."""
    return tuple(name for name, _ in _bundled_photos())


# --------------------------------------------------------------------------- procedural


def _palette_map(t: np.ndarray, rng: np.random.Generator, min_stops: int = 2) -> np.ndarray:
    """Map a scalar field ``t`` in [0, 1] of shape ``(H, W)`` through a random colour ramp.

    Returns ``(H, W, 3)`` float32 in [0, 255].
    """
    n_stops = int(rng.integers(min_stops, 5))
    stops = np.sort(rng.uniform(0.0, 1.0, n_stops))
    stops[0], stops[-1] = 0.0, 1.0
    colours = rng.integers(0, 256, size=(n_stops, 3)).astype(np.float32)
    flat = t.reshape(-1)
    channels = [np.interp(flat, stops, colours[:, c]) for c in range(3)]
    return np.stack(channels, axis=-1).reshape(*t.shape, 3).astype(np.float32)


def _normalise(field: np.ndarray) -> np.ndarray:
    """Rescale an array to [0, 1] (constant arrays become 0)."""
    low, high = float(field.min()), float(field.max())
    return (field - low) / max(high - low, 1e-6)


def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(y, x)``, each ``(size, size)`` float32 in pixels."""
    axis = np.arange(size, dtype=np.float32) + 0.5
    return np.meshgrid(axis, axis, indexing="ij")


def _linear_gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    theta = rng.uniform(0.0, 2.0 * math.pi)
    y, x = _coords(size)
    t = _normalise(x * math.cos(theta) + y * math.sin(theta))
    return _palette_map(t, rng)


def _radial_gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    cy, cx = rng.uniform(-0.25, 1.25, size=2) * size
    radius = rng.uniform(0.3, 1.5) * size
    y, x = _coords(size)
    t = np.clip(np.hypot(y - cy, x - cx) / radius, 0.0, 1.0)
    return _palette_map(t, rng)


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """Bicubic upsampling of a ``(g, g)`` float grid to ``(size, size)`` float32."""
    image = Image.fromarray(grid.astype(np.float32))
    return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)


def _fractal_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Multi-octave value noise, ``(size, size)`` float32 in [0, 1]."""
    octaves = int(rng.integers(3, 7))
    base = int(rng.integers(2, 6))
    persistence = rng.uniform(0.35, 0.75)
    total = np.zeros((size, size), dtype=np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        cells = min(base * 2**octave, size)
        total += amplitude * _upsample(rng.random((cells, cells), dtype=np.float32), size)
        amplitude *= persistence
    return _normalise(total)


def _value_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    if rng.random() < 0.5:
        return _palette_map(_fractal_noise(rng, size), rng)
    # Independent noise per channel gives mottled, multi-hued textures.
    low = rng.integers(0, 256, size=3).astype(np.float32)
    high = rng.integers(0, 256, size=3).astype(np.float32)
    noise = np.stack([_fractal_noise(rng, size) for _ in range(3)], axis=-1)
    return low + noise * (high - low)


def _clutter(rng: np.random.Generator, size: int) -> np.ndarray:
    """Random translucent rectangles, ellipses, lines and polygons, optionally blurred.

    Mimics indoor clutter: many overlapping objects with hard, hand-like edges, which is the
    hardest kind of background for segmentation-by-shortcut.
    """
    base_kind = int(rng.integers(3))
    if base_kind == 0:
        base = np.broadcast_to(rng.integers(0, 256, size=3).astype(np.float32), (size, size, 3))
    elif base_kind == 1:
        base = _linear_gradient(rng, size)
    else:
        base = _value_noise(rng, size)
    canvas = Image.fromarray(np.clip(base + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas, "RGBA")
    for _ in range(int(rng.integers(5, 40))):
        colour = (*(int(v) for v in rng.integers(0, 256, size=3)), int(rng.integers(128, 256)))
        shape = int(rng.integers(4))
        points = rng.uniform(-0.2, 1.2, size=(2, 2)) * size
        (x0, x1), (y0, y1) = np.sort(points[:, 0]), np.sort(points[:, 1])
        if shape == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif shape == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif shape == 2:
            width = int(rng.integers(1, max(2, size // 16)))
            draw.line((*points[0], *points[1]), fill=colour, width=width)
        else:
            vertices = rng.uniform(-0.1, 1.1, size=(int(rng.integers(3, 8)), 2)) * size
            draw.polygon([(float(px), float(py)) for px, py in vertices], fill=colour)
    if rng.random() < 0.5:
        canvas = canvas.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.5, 3.0))))
    return np.asarray(canvas, dtype=np.float32)


def _rotated_axes(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Coordinates rotated by a random angle plus a random period in pixels."""
    theta = rng.uniform(0.0, math.pi)
    period = float(rng.uniform(4.0, size / 2))
    y, x = _coords(size)
    u = x * math.cos(theta) + y * math.sin(theta) + rng.uniform(0.0, period)
    v = -x * math.sin(theta) + y * math.cos(theta) + rng.uniform(0.0, period)
    return u, v, period


def _stripes(rng: np.random.Generator, size: int) -> np.ndarray:
    u, _, period = _rotated_axes(rng, size)
    phase = (u / period) % 1.0
    if rng.random() < 0.5:
        t = (phase < rng.uniform(0.2, 0.8)).astype(np.float32)
    else:
        t = 0.5 + 0.5 * np.sin(2.0 * math.pi * phase)
    return _palette_map(t, rng)


def _checkers(rng: np.random.Generator, size: int) -> np.ndarray:
    u, v, period = _rotated_axes(rng, size)
    t = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    pattern = _palette_map(t, rng)
    # A soft shading ramp so the board looks lit rather than perfectly flat.
    shade = 0.6 + 0.4 * _normalise(_linear_gradient(rng, size).mean(axis=-1))
    return pattern * shade[..., None]


_GENERATORS = {
    "linear_gradient": _linear_gradient,
    "radial_gradient": _radial_gradient,
    "value_noise": _value_noise,
    "clutter": _clutter,
    "stripes": _stripes,
    "checkers": _checkers,
}


def procedural_background(
    rng: np.random.Generator, size: int = 256, kind: str | None = None
) -> np.ndarray:
    """One procedural background.

    Args:
        rng: source of all randomness.
        size: output side in pixels.
        kind: one of :data:`PROCEDURAL_KINDS`, or ``None`` for a uniformly random kind.

    Returns:
        ``(size, size, 3)`` uint8 RGB.
    """
    if kind is None:
        kind = PROCEDURAL_KINDS[int(rng.integers(len(PROCEDURAL_KINDS)))]
    if kind not in _GENERATORS:
        raise ValueError(f"unknown procedural kind {kind!r}; expected one of {PROCEDURAL_KINDS}")
    image = _GENERATORS[kind](rng, size)
    return np.ascontiguousarray(np.clip(image + 0.5, 0, 255).astype(np.uint8))


# --------------------------------------------------------------------------- source


def _index_images(root: Path) -> list[Path]:
    """Every .jpg/.jpeg/.png under ``root``, sorted by relative path for a stable order."""
    found: list[Path] = []
    # os.walk with followlinks: data sets are often assembled from symlinked folders.
    for folder, _, files in os.walk(root, followlinks=True):
        found.extend(Path(folder) / f for f in files if Path(f).suffix.lower() in IMAGE_SUFFIXES)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


class BackgroundSource:
    """Random ``(size, size, 3)`` uint8 backgrounds from a photo folder or procedurally.

    Args:
        root: folder tree of .jpg/.jpeg/.png photographs (searched recursively). ``None``
            uses procedural backgrounds mixed with the photographs bundled in scikit-image.
        size: side of the returned square backgrounds in pixels.
        min_scale: smallest crop side as a fraction of a photograph's short side.
        max_scale: largest crop side as a fraction of a photograph's short side.
        cache_size: number of decoded photographs kept in memory (LRU).
        photo_fraction: without ``root``, probability of a bundled photograph rather than a
            procedural image (ignored if no bundled photograph is available).

    Unreadable files are skipped, not fatal: each is logged once as a warning on the
    ``handshape.data.backgrounds`` logger, counted in :attr:`skipped`, never tried again,
    and another file is drawn. Only if every file is unreadable is a ``ValueError`` raised.
    A large photo collection scraped from the web nearly always holds a few broken files,
    and a multi-day training run should not die on one.

    Sampling is a pure function of the generator state: a bad file is rejected after the
    same random draws whether or not it was already known to be bad, so even the skipping
    does not change which background a given generator state yields.
    """

    def __init__(
        self,
        root: Path | str | None = None,
        size: int = 256,
        min_scale: float = 0.3,
        max_scale: float = 1.0,
        *,
        cache_size: int = 64,
        photo_fraction: float = 0.4,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        if not 0.0 < min_scale <= max_scale <= 1.0:
            raise ValueError(
                f"need 0 < min_scale <= max_scale <= 1, got min_scale={min_scale}, "
                f"max_scale={max_scale}"
            )
        if not 0.0 <= photo_fraction <= 1.0:
            raise ValueError(f"photo_fraction must lie in [0, 1], got {photo_fraction}")
        self.size = int(size)
        self.min_scale = float(min_scale)
        self.max_scale = float(max_scale)
        self.cache_size = int(cache_size)
        self.photo_fraction = float(photo_fraction)
        self.skipped = 0
        self._bad: set[Path] = set()
        self._cache: OrderedDict[Path, np.ndarray] = OrderedDict()
        self.root: Path | None = None
        self._paths: list[Path] = []
        if root is not None:
            self.root = Path(root).expanduser()
            if not self.root.is_dir():
                raise ValueError(f"background folder {self.root} does not exist or is not a folder")
            self._paths = _index_images(self.root)
            if not self._paths:
                raise ValueError(f"background folder {self.root} contains no .jpg/.jpeg/.png image")

    @property
    def num_images(self) -> int:
        """Photographs to draw from: indexed files with ``root``, bundled ones without."""
        if self.root is not None:
            return len(self._paths)
        return len(_bundled_photos())

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One random background, ``(size, size, 3)`` uint8 RGB."""
        if self.root is not None:
            return self._crop(self._draw_file(rng), rng)
        photos = _bundled_photos()
        # Always consume this draw so the stream of draws does not depend on availability.
        use_photo = rng.random() < self.photo_fraction
        if use_photo and photos:
            _, photo = photos[int(rng.integers(len(photos)))]
            return self._crop(photo, rng)
        return procedural_background(rng, self.size)

    def _crop(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return random_square_crop(image, rng, self.size, self.min_scale, self.max_scale)

    def _draw_file(self, rng: np.random.Generator) -> np.ndarray:
        """Decoded random photograph from the folder, rejecting unreadable files."""
        while True:
            if len(self._bad) >= len(self._paths):
                raise ValueError(
                    f"background folder {self.root}: all {len(self._paths)} images are unreadable"
                )
            path = self._paths[int(rng.integers(len(self._paths)))]
            if path in self._bad:
                continue
            image = self._load(path)
            if image is not None:
                return image

    def _load(self, path: Path) -> np.ndarray | None:
        """Decoded image via the LRU cache, or ``None`` (logged, counted) if unreadable."""
        cached = self._cache.get(path)
        if cached is not None:
            self._cache.move_to_end(path)
            return cached
        try:
            image = _load_rgb(path)
        except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ... on bad files
            self._bad.add(path)
            self.skipped += 1
            logger.warning("skipping unreadable background image %s: %s", path, exc)
            return None
        if self.cache_size > 0:
            self._cache[path] = image
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return image

    def __repr__(self) -> str:
        if self.root is not None:
            return (
                f"BackgroundSource(folder={str(self.root)!r}, images={len(self._paths)}, "
                f"skipped={self.skipped}, size={self.size})"
            )
        return (
            f"BackgroundSource(procedural + {self.num_images} bundled scikit-image photos, "
            f"size={self.size})"
        )
