"""Contact sheets: labelled grids of renders for eyeballing many meshes at once."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from handshape.render.offscreen import MeshRenderer, look_at
from handshape.safeio.atomic import atomic_write

__all__ = ["contact_sheet", "render_views", "sheet_size", "view_pose"]

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont

#: Outer border and spacing between grid cells, in pixels.
MARGIN: int = 10
#: Spacing between the images inside one tile, in pixels.
GAP: int = 4
#: Label text size in pixels; the label band under each tile is derived from it.
FONT_SIZE: int = 14
#: Title text size in pixels.
TITLE_FONT_SIZE: int = 20

_BACKGROUND = (255, 255, 255)
_TEXT = (0, 0, 0)


def _band_height(font_size: int) -> int:
    """Height of a text band; fixed by the font size so layout never depends on the font."""
    return round(font_size * 1.6)


@functools.lru_cache(maxsize=8)
def _font(size: int) -> Font:
    """Return DejaVuSans at ``size`` px from matplotlib if available, else Pillow's default.

    Pillow's built-in bitmap font is tiny and unreadable in figures, while matplotlib (a
    project dependency) ships a TrueType DejaVuSans, so prefer that.
    """
    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return ImageFont.truetype(str(path), size)
    except (ImportError, OSError):
        pass
    try:
        # Pillow >= 10.1 scales its default font when FreeType is available.
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):
        return ImageFont.load_default()


def _to_uint8_rgb(image: npt.ArrayLike) -> np.ndarray:
    """Convert an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image to (H, W, 3) uint8.

    Float images are taken to be in [0, 1] (clipped); RGBA is composited onto white so
    transparent render backgrounds match the sheet.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W[, 1|3|4]) image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            arr = np.round(np.clip(np.nan_to_num(arr), 0.0, 1.0) * 255.0)
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        alpha = arr[..., 3:].astype(np.float32) / 255.0
        rgb = arr[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        arr = np.round(rgb).astype(np.uint8)
    return arr


def _tile_extent(images: Sequence[np.ndarray], gap: int) -> tuple[int, int]:
    """Width and height of images placed side by side with ``gap`` px between them."""
    width = sum(im.shape[1] for im in images) + gap * max(len(images) - 1, 0)
    height = max((im.shape[0] for im in images), default=0)
    return width, height


def sheet_size(
    tile_sizes: Sequence[tuple[int, int]],
    columns: int,
    title: bool,
    margin: int = MARGIN,
    font_size: int = FONT_SIZE,
    title_font_size: int = TITLE_FONT_SIZE,
) -> tuple[int, int]:
    """Pixel size ``(width, height)`` of a sheet whose tiles have the given image extents.

    Every grid cell is as large as the largest tile (its images side by side) plus a
    label band; cells are separated from each other and from the border by ``margin``.

    Args:
        tile_sizes: ``(width, height)`` of each tile's images laid side by side.
        columns: Maximum number of tiles per row.
        title: Whether a title band is drawn on top.
        margin: Border and cell spacing in pixels.
        font_size: Label font size in pixels.
        title_font_size: Title font size in pixels.
    """
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    if not tile_sizes:
        raise ValueError("a contact sheet needs at least one tile")
    cols = min(columns, len(tile_sizes))
    rows = math.ceil(len(tile_sizes) / cols)
    cell_w = max(w for w, _ in tile_sizes)
    cell_h = max(h for _, h in tile_sizes) + _band_height(font_size)
    title_h = _band_height(title_font_size) if title else 0
    return (
        cols * cell_w + (cols + 1) * margin,
        title_h + rows * cell_h + (rows + 1) * margin,
    )


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font: Font, max_width: int) -> str:
    """Shorten ``text`` with an ellipsis so it fits in ``max_width`` pixels."""
    if draw.textlength(text, font=font) <= max_width:
        return text
    while text and draw.textlength(text + "…", font=font) > max_width:
        text = text[:-1]
    return text + "…"


def _draw_centered(
    draw: ImageDraw.ImageDraw, text: str, font: Font, x0: int, y0: int, width: int, height: int
) -> None:
    """Draw ``text`` centred in the box (x0, y0, width, height), truncated to fit."""
    text = _fit_text(draw, text, font, width)
    draw.text((x0 + width / 2, y0 + height / 2), text, fill=_TEXT, font=font, anchor="mm")


def _write_atomic(image: Image.Image, out: Path) -> None:
    """Save ``image`` to ``out`` so readers never see a half-written file."""
    fmt = Image.registered_extensions().get(out.suffix.lower(), "PNG")
    atomic_write(out, lambda tmp: image.save(tmp, format=fmt))


def contact_sheet(
    tiles: Sequence[tuple[str, Sequence[npt.ArrayLike]]],
    out: Path | str,
    columns: int = 4,
    title: str | None = None,
    margin: int = MARGIN,
    gap: int = GAP,
    font_size: int = FONT_SIZE,
    title_font_size: int = TITLE_FONT_SIZE,
) -> Path:
    """Lay labelled tiles out in a grid on a white background and write the image.

    Args:
        tiles: ``(label, images)`` per tile; the images (e.g. two viewpoints of one
            mesh) are placed side by side, the label centred underneath. Each image is
            (H, W), (H, W, 3) or (H, W, 4), uint8 or float in [0, 1]; sizes may differ.
        out: Destination file; the format follows its suffix (PNG if unknown). Parent
            directories are created.
        columns: Maximum tiles per row.
        title: Optional title drawn in a band across the top.
        margin: Border and cell spacing in pixels.
        gap: Spacing between the images of one tile in pixels.
        font_size: Label font size in pixels.
        title_font_size: Title font size in pixels.

    Returns:
        ``out`` as a Path. The size is :func:`sheet_size` of the tiles.
    """
    out = Path(out)
    prepared = [(label, [_to_uint8_rgb(im) for im in images]) for label, images in tiles]
    for label, images in prepared:
        if not images:
            raise ValueError(f"tile {label!r} has no images")
    extents = [_tile_extent(images, gap) for _, images in prepared]
    width, height = sheet_size(
        extents, columns, title is not None, margin, font_size, title_font_size
    )

    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    title_h = _band_height(title_font_size) if title is not None else 0
    if title is not None:
        _draw_centered(
            draw, title, _font(title_font_size), margin, margin, width - 2 * margin, title_h
        )

    cols = min(columns, len(prepared))
    cell_w = max(w for w, _ in extents)
    image_h = max(h for _, h in extents)
    label_h = _band_height(font_size)
    label_font = _font(font_size)
    for index, ((label, images), (tile_w, _)) in enumerate(zip(prepared, extents, strict=True)):
        row, col = divmod(index, cols)
        x0 = margin + col * (cell_w + margin)
        y0 = title_h + margin + row * (image_h + label_h + margin)
        # Centre smaller tiles in their cell so mixed sizes still line up by column.
        x = x0 + (cell_w - tile_w) // 2
        for im in images:
            y = y0 + (image_h - im.shape[0]) // 2
            sheet.paste(Image.fromarray(im), (x, y))
            x += im.shape[1] + gap
        _draw_centered(draw, label, label_font, x0, y0 + image_h, cell_w, label_h)

    out.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(sheet, out)
    return out


def view_pose(
    center: npt.ArrayLike, azimuth_deg: float, elevation_deg: float, distance: float
) -> np.ndarray:
    """World-from-camera pose (OpenGL) on a sphere around ``center``, looking at it.

    Azimuth rotates about world +y starting from +z (azimuth 0, elevation 0 looks along
    -z); positive elevation moves the camera towards +y, i.e. looks down.

    Returns:
        (4, 4) float64 pose.
    """
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    direction = np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
    c = np.asarray(center, dtype=np.float64).reshape(3)
    return look_at(c + distance * direction, c, up=(0.0, 1.0, 0.0))


def render_views(
    renderer: MeshRenderer,
    vertices: npt.ArrayLike,
    faces: npt.ArrayLike,
    views: Sequence[tuple[float, float]],
    distance: float,
    size: int | None = None,
    fill: float = 0.9,
) -> list[np.ndarray]:
    """Render a mesh from several viewpoints, framed so it fills the image.

    Cameras orbit the centre of the mesh's axis-aligned bounding box at ``distance``;
    the field of view is chosen so the bounding sphere spans ``fill`` of the shorter
    image side, hence the whole mesh is visible from every direction.

    Args:
        renderer: Renderer to draw with (resized to ``size`` if given).
        vertices: (N, 3) float vertex positions in metres.
        faces: (F, 3) int triangle indices.
        views: ``(azimuth, elevation)`` pairs in degrees, see :func:`view_pose`.
        distance: Camera distance from the box centre in metres; must exceed the
            bounding-sphere radius.
        size: Square output side in pixels; ``None`` keeps the renderer's size.
        fill: Fraction of the shorter image side covered by the bounding sphere.

    Returns:
        One (H, W, 3) uint8 image per view.
    """
    verts = np.asarray(vertices, dtype=np.float64)
    if verts.ndim != 2 or verts.shape[1] != 3 or len(verts) == 0:
        raise ValueError(f"vertices must have shape (N, 3) with N > 0, got {verts.shape}")
    if not 0.0 < fill <= 1.0:
        raise ValueError(f"fill must be in (0, 1], got {fill}")
    if size is not None:
        renderer.resize(size, size)

    lo, hi = verts.min(axis=0), verts.max(axis=0)
    center = (lo + hi) / 2.0
    radius = float(np.linalg.norm(verts - center, axis=1).max())
    if distance <= radius:
        raise ValueError(f"distance {distance} m is inside the mesh's bounding sphere ({radius} m)")

    # A sphere of radius r at distance d subtends a half-angle asin(r / d); scale the
    # tangent so it covers `fill` of the half-height, and widen for portrait images.
    half = math.tan(math.asin(radius / distance)) / fill if radius > 0 else 1e-3
    half *= max(1.0, renderer.height / renderer.width)
    yfov = 2.0 * math.atan(half)

    images = []
    for azimuth, elevation in views:
        pose = view_pose(center, azimuth, elevation, distance)
        rgb, _ = renderer.render(verts, faces, pose, yfov=yfov)
        images.append(rgb)
    return images
