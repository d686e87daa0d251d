"""Setting up MediaPipe's networks: taken out of a wheel checked by its sha256, whole or not at
all; a cache without them says which command fills it."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from handshape.inference import mediapipe_files as mf


def fake_wheel(path: Path, skip: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for inner in [*mf.FILES.values(), mf.LICENSE]:
            if inner != skip:
                archive.writestr(inner, f"contents of {inner}")
    return path


def test_the_two_networks_and_the_licence_are_extracted_with_their_record(tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path / "mp.whl")
    folder = mf.install(tmp_path / "cache", wheel=wheel, expected_sha256=mf.sha256(wheel))
    assert folder == mf.cache_dir(tmp_path / "cache")
    assert {p.name for p in folder.iterdir()} == {
        "palm_detection_full.tflite",
        "hand_landmark_full.tflite",
        "LICENSE",
        "SOURCE.json",
    }
    record = json.loads((folder / "SOURCE.json").read_text())
    assert record["wheel"] == mf.WHEEL and record["wheel_sha256"] == mf.sha256(wheel)
    assert mf.model_file("hand_landmark", tmp_path / "cache").read_text() == (
        f"contents of {mf.FILES['hand_landmark']}"
    )
    assert mf.is_installed(tmp_path / "cache")


def test_a_wheel_with_another_sha256_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path / "mp.whl")
    with pytest.raises(ValueError, match=f"is not the pinned {mf.WHEEL_SHA256}"):
        mf.install(tmp_path / "cache", wheel=wheel)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_wheel_missing_a_network_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path / "mp.whl", skip=mf.FILES["palm_detection"])
    with pytest.raises(ValueError, match="not the mediapipe wheel expected"):
        mf.install(tmp_path / "cache", wheel=wheel, expected_sha256=mf.sha256(wheel))
    assert not mf.cache_dir(tmp_path / "cache").exists()


def test_a_missing_cache_names_the_command_that_fills_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANDSHAPE_CACHE", str(tmp_path))
    assert mf.cache_root() == tmp_path
    with pytest.raises(mf.MissingModelFiles, match="run `handshape setup` once"):
        mf.model_file("palm_detection")


def test_the_project_is_set_up() -> None:
    """`make test` runs `handshape setup` first: the real files are in the cache."""
    record = json.loads((mf.cache_dir() / "SOURCE.json").read_text())
    assert record["wheel_sha256"] == mf.WHEEL_SHA256
    for name in mf.FILES:
        path = mf.model_file(name)
        assert mf.sha256(path) == record["files"][path.name]["sha256"]
