"""Tests for contact sheets and multi-view framing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from handshape.render.contact_sheet import contact_sheet, render_views, sheet_size
from handshape.render.offscreen import MeshRenderer


def _solid(h: int, w: int, value: int) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


def test_contact_sheet_size_and_png(tmp_path: Path) -> None:
    tiles = [
        ("first", [_solid(40, 30, 0), _solid(40, 30, 50)]),
        ("second with a label far too long to fit under its tile", [_solid(40, 30, 100)] * 2),
        ("third", [_solid(40, 30, 150), np.zeros((40, 30), dtype=np.float32)]),
    ]
    out = contact_sheet(tiles, tmp_path / "sheet.png", columns=2, title="Sheet")

    assert out == tmp_path / "sheet.png"
    with out.open("rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as im:
        im.verify()
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        size = im.size
        pixels = np.asarray(im)
    # 2 columns x 2 rows of (2 * 30 + gap 4) x 40 images, labels and title on top.
    assert size == sheet_size([(64, 40)] * 3, columns=2, title=True)
    assert size == (2 * 64 + 3 * 10, 32 + 2 * (40 + 22) + 3 * 10)
    assert (pixels[0, 0] == 255).all(), "background must be white"
    assert (pixels == 0).all(axis=2).any(), "black tile pixels must be pasted"
    assert list(tmp_path.iterdir()) == [out], "atomic write must not leave temp files"


def test_contact_sheet_overwrites_atomically(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "sheet.png"
    contact_sheet([("a", [_solid(10, 10, 0)])], out, columns=3, title=None)
    contact_sheet([("a", [_solid(20, 10, 0)]), ("b", [_solid(20, 10, 0)])], out, 3, None)
    with Image.open(out) as im:
        assert im.size == sheet_size([(10, 20)] * 2, columns=3, title=False)
    assert sorted(p.name for p in out.parent.iterdir()) == ["sheet.png"]


def test_contact_sheet_failed_write_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("handshape.safeio.atomic.os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        contact_sheet([("a", [_solid(10, 10, 0)])], tmp_path / "x.png", columns=1, title=None)
    assert list(tmp_path.iterdir()) == []


def test_contact_sheet_rejects_empty_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        contact_sheet([], tmp_path / "x.png", columns=2, title=None)
    with pytest.raises(ValueError):
        contact_sheet([("a", [])], tmp_path / "x.png", columns=2, title=None)


def test_render_views_frames_mesh(tmp_path: Path) -> None:
    # Off-origin and elongated, so framing must use the bounding box, not the origin.
    mesh = trimesh.creation.box(extents=(0.04, 0.12, 0.02))
    mesh.apply_translation((0.5, -0.2, 0.1))
    views = [(0.0, 0.0), (90.0, 0.0), (30.0, 60.0), (0.0, 90.0)]
    with MeshRenderer(32, 32) as renderer:
        images = render_views(renderer, mesh.vertices, mesh.faces, views, distance=0.4, size=64)
    assert len(images) == len(views)
    for rgb in images:
        assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
        fg = (rgb < 250).any(axis=2)
        rows, cols = np.nonzero(fg)
        assert fg.sum() > 100, "mesh must be visible"
        # Fully inside the frame and roughly centred.
        assert not (fg[0].any() or fg[-1].any() or fg[:, 0].any() or fg[:, -1].any())
        assert rows.mean() == pytest.approx(31.5, abs=3)
        assert cols.mean() == pytest.approx(31.5, abs=3)
    # Front view of a tall box is taller than wide.
    front = (images[0] < 250).any(axis=2)
    assert np.ptp(np.nonzero(front)[0]) > 2 * np.ptp(np.nonzero(front)[1])

    out = contact_sheet([("box", images[:2]), ("box top", images[2:])], tmp_path / "v.png", 2, "t")
    with Image.open(out) as im:
        assert im.size == sheet_size([(2 * 64 + 4, 64)] * 2, columns=2, title=True)


def test_render_views_rejects_camera_inside_mesh() -> None:
    mesh = trimesh.creation.icosphere(radius=0.1)
    with MeshRenderer(16, 16) as renderer, pytest.raises(ValueError, match="bounding sphere"):
        render_views(renderer, mesh.vertices, mesh.faces, [(0.0, 0.0)], distance=0.05)
