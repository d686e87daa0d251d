"""Specification tests for handshape.data.backgrounds."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handshape.data.backgrounds import (
    PROCEDURAL_KINDS,
    BackgroundSource,
    available_bundled_photos,
    procedural_background,
)

# Flat colours far apart from each other, so a JPEG-decoded crop is still unambiguous.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red.png": (220, 30, 30),
    "green.jpg": (30, 200, 40),
    "blue.jpeg": (20, 40, 210),
    "nested/deeper/yellow.PNG": (230, 220, 20),
    "nested/gray.png": (128, 128, 128),  # stored as mode "L"
    "nested/rgba.png": (150, 30, 200),  # stored as RGBA with partial alpha
}


def _write_folder(root: Path) -> None:
    for rel, colour in COLOURS.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        size = (97, 61) if "yellow" in rel else (80, 120)  # portrait and landscape
        if "gray" in rel:
            Image.new("L", size, colour[0]).save(path)
        elif "rgba" in rel:
            Image.new("RGBA", size, (*colour, 90)).save(path)
        elif rel.lower().endswith((".jpg", ".jpeg")):
            Image.new("RGB", size, colour).save(path, format="JPEG", quality=95)
        else:
            Image.new("RGB", size, colour).save(path)
    (root / "notes.txt").write_text("not an image")


def _closest_colour_distance(image: np.ndarray) -> float:
    mean = image.reshape(-1, 3).mean(axis=0)
    return min(float(np.abs(mean - np.array(c)).max()) for c in COLOURS.values())


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    _write_folder(root)
    return root


def test_folder_samples_are_crops_of_its_images(folder: Path) -> None:
    source = BackgroundSource(folder, size=64)
    assert source.num_images == len(COLOURS)
    rng = np.random.default_rng(0)
    seen: set[int] = set()
    for _ in range(60):
        bg = source.sample(rng)
        assert bg.shape == (64, 64, 3)
        assert bg.dtype == np.uint8
        assert bg.reshape(-1, 3).std(axis=0).max() < 3.0, "a flat image must give a flat crop"
        assert _closest_colour_distance(bg) <= 4.0
        mean = bg.reshape(-1, 3).mean(axis=0)
        seen.add(int(np.argmin([np.abs(mean - np.array(c)).max() for c in COLOURS.values()])))
    assert len(seen) == len(COLOURS), "every indexed image, nested ones included, gets drawn"
    assert source.skipped == 0
    assert "images=6" in repr(source)


def test_folder_sampling_is_deterministic_and_seed_dependent(tmp_path: Path) -> None:
    rng_img = np.random.default_rng(123)
    for i in range(3):
        pixels = rng_img.integers(0, 256, size=(90, 140, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"noise{i}.png")
    a = BackgroundSource(tmp_path, size=48)
    b = BackgroundSource(tmp_path, size=48)
    first = [a.sample(np.random.default_rng(7)) for _ in range(2)]
    assert np.array_equal(first[0], first[1])
    assert np.array_equal(first[0], b.sample(np.random.default_rng(7)))
    others = [a.sample(np.random.default_rng(seed)) for seed in range(8, 12)]
    assert all(not np.array_equal(first[0], o) for o in others)


def test_corrupt_file_is_skipped_logged_and_counted(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = folder / "nested" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    source = BackgroundSource(folder, size=32)
    with caplog.at_level(logging.WARNING, logger="handshape.data.backgrounds"):
        rng = np.random.default_rng(1)
        for _ in range(80):
            bg = source.sample(rng)
            assert _closest_colour_distance(bg) <= 4.0
    assert source.skipped == 1, "a bad file is counted once, then never tried again"
    messages = [r.getMessage() for r in caplog.records if r.name == "handshape.data.backgrounds"]
    assert len(messages) == 1
    assert "broken.jpg" in messages[0]
    assert "skipped=1" in repr(source)


def test_truncated_png_is_skipped(tmp_path: Path) -> None:
    Image.new("RGB", (40, 40), (10, 200, 10)).save(tmp_path / "good.png")
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    source = BackgroundSource(tmp_path, size=16)
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert source.sample(rng)[0, 0].tolist() == [10, 200, 10]
    assert source.skipped == 1


def test_all_corrupt_folder_raises_naming_it(tmp_path: Path) -> None:
    root = tmp_path / "all_bad"
    root.mkdir()
    for name in ("a.jpg", "b.png", "c.JPEG"):
        (root / name).write_bytes(b"garbage")
    source = BackgroundSource(root)
    with pytest.raises(ValueError, match="all_bad"):
        source.sample(np.random.default_rng(0))
    assert source.skipped == 3


def test_missing_or_empty_folder_raises_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does_not_exist"):
        BackgroundSource(tmp_path / "does_not_exist")
    empty = tmp_path / "empty_dir"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match="empty_dir"):
        BackgroundSource(empty)


def test_invalid_scales_rejected() -> None:
    with pytest.raises(ValueError):
        BackgroundSource(min_scale=0.8, max_scale=0.5)
    with pytest.raises(ValueError):
        BackgroundSource(min_scale=0.0)


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.usefixtures("no_network")
def test_default_source_is_offline_varied_and_deterministic() -> None:
    source = BackgroundSource(size=96)
    assert "procedural" in repr(source)
    samples = [source.sample(np.random.default_rng(seed)) for seed in range(40)]
    for bg in samples:
        assert bg.shape == (96, 96, 3)
        assert bg.dtype == np.uint8
    assert sum(float(bg.std()) > 2.0 for bg in samples) >= 36, "backgrounds are not flat"
    for i in range(len(samples) - 1):
        assert not np.array_equal(samples[i], samples[i + 1])
    means = np.array([bg.reshape(-1, 3).mean(axis=0) for bg in samples])
    assert means.std(axis=0).min() > 15.0, "colours vary between samples"
    again = BackgroundSource(size=96).sample(np.random.default_rng(3))
    assert np.array_equal(again, samples[3])


@pytest.mark.usefixtures("no_network")
def test_bundled_photos_load_offline() -> None:
    names = available_bundled_photos()
    # scikit-image ships these inside its wheel; if this fails the photo mix is gone.
    assert {"astronaut", "camera", "coffee", "chelsea"} <= set(names)
    source = BackgroundSource(size=64, photo_fraction=1.0)
    assert source.num_images == len(names)
    bg = source.sample(np.random.default_rng(0))
    assert bg.shape == (64, 64, 3)
    assert bg.dtype == np.uint8


@pytest.mark.parametrize("kind", PROCEDURAL_KINDS)
def test_every_procedural_kind(kind: str) -> None:
    images = [procedural_background(np.random.default_rng(s), 64, kind) for s in range(4)]
    for img in images:
        assert img.shape == (64, 64, 3)
        assert img.dtype == np.uint8
        assert img.flags.c_contiguous
    assert any(float(img.std()) > 2.0 for img in images)
    assert not np.array_equal(images[0], images[1])
    assert np.array_equal(images[0], procedural_background(np.random.default_rng(0), 64, kind))


def test_unknown_procedural_kind() -> None:
    with pytest.raises(ValueError, match="kind"):
        procedural_background(np.random.default_rng(0), 32, "plasma")
