"""`handshape predict` end to end: every hand in photographs, folders and videos, left hands
mirrored back onto themselves, and every kind of bad input.

The photograph is handshape's own render of a hand (tests/fixtures, `scripts/make_test_hand.py`)
with its true joints; the networks are MediaPipe's (set up by `make test`) and the keypoint
network handshape ships."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from handshape.cli import main
from handshape.inference import predict as predict_module

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REAL = Path(__file__).resolve().parents[3] / "shared" / "real_samples"


@pytest.fixture(scope="module")
def truth() -> dict:
    return json.loads((FIXTURES / "hand_photo.json").read_text())


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder: the right hand, its mirror image (a left hand), a picture without a hand."""
    folder = tmp_path_factory.mktemp("photos")
    image = np.asarray(Image.open(FIXTURES / "hand_photo.png").convert("RGB"))
    Image.fromarray(image).save(folder / "right.png")
    Image.fromarray(np.ascontiguousarray(image[:, ::-1])).save(folder / "left.jpg", quality=95)
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(folder / "empty.png")
    return folder


@pytest.fixture(scope="module")
def predicted(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out")
    assert main(["predict", str(photos), "--out", str(out)]) == 0
    return out


def read_ply(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = path.read_bytes()
    head, body = data.split(b"end_header\n", 1)
    lines = head.decode().splitlines()
    n_v = int(next(x for x in lines if x.startswith("element vertex")).split()[-1])
    n_f = int(next(x for x in lines if x.startswith("element face")).split()[-1])
    vertices = np.frombuffer(body[: 12 * n_v], "<f4").reshape(n_v, 3)
    faces = np.frombuffer(body[12 * n_v :], dtype=[("n", "u1"), ("v", "<i4", (3,))])
    assert len(faces) == n_f and (faces["n"] == 3).all()
    return vertices.astype(np.float64), faces["v"].astype(np.int64)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6)


def box_error(points: np.ndarray, truth: np.ndarray) -> float:
    side = (truth.max(0) - truth.min(0)).max()
    return float(np.linalg.norm(points - truth, axis=1).mean() / side)


def test_a_photograph_gives_its_hand_mesh_joints_and_overlay(predicted: Path, truth: dict) -> None:
    record = json.loads((predicted / "right.json").read_text())
    assert record["model"] == "keypoints" and len(record["hands"]) == 1
    hand = record["hands"][0]
    assert hand["handedness"] == "right" and 0.5 <= hand["score"] <= 1
    joints_2d = np.asarray(hand["joints_2d_px"])
    assert joints_2d.shape == (21, 2) and np.asarray(hand["joints_3d_m"]).shape == (21, 3)
    assert box_error(joints_2d, np.asarray(truth["joints_2d_px"])) < 0.1
    x0, y0, x1, y1 = hand["box_xyxy"]
    assert x0 < joints_2d[:, 0].mean() < x1 and y0 < joints_2d[:, 1].mean() < y1
    camera = hand["camera"]
    assert camera["focal_from"] == "default" and camera["focal_px"] == 400.0
    assert 0.05 < camera["root_depth_m"] < 5 and camera["hand_scale_m"] > 0
    vertices, faces = read_ply(predicted / hand["mesh"])
    assert vertices.shape == (1050, 3) and signed_volume(vertices, faces) > 0  # faces outwards
    # The mesh is where the JSON says: its joints project onto the joints_2d.
    K = np.array([[400.0, 0, 199.5], [0, 400.0, 149.5], [0, 0, 1]])
    joints = np.asarray(hand["joints_3d_m"]) @ K.T
    assert np.allclose(joints[:, :2] / joints[:, 2:], joints_2d, atol=0.05)
    assert Image.open(predicted / "right_overlay.png").size == (400, 300)


def test_a_left_hand_is_mirrored_in_and_back_out(predicted: Path, truth: dict) -> None:
    right = json.loads((predicted / "right.json").read_text())["hands"][0]
    left = json.loads((predicted / "left.json").read_text())["hands"][0]
    assert left["handedness"] == "left"
    mirrored_truth = np.asarray(truth["joints_2d_px"]) * [-1, 1] + [399, 0]
    assert box_error(np.asarray(left["joints_2d_px"]), mirrored_truth) < 0.1
    # Its mesh is the right hand's mirror image, facing outwards too.
    vertices, faces = read_ply(predicted / left["mesh"])
    assert signed_volume(vertices, faces) > 0
    right_vertices, _ = read_ply(predicted / right["mesh"])
    flipped = right_vertices * [-1, 1, 1]
    assert np.abs(vertices.mean(0) - flipped.mean(0)).max() < 0.05


def test_no_hand_is_an_empty_list_and_a_clear_line(
    predicted: Path, photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert json.loads((predicted / "empty.json").read_text())["hands"] == []
    assert (predicted / "empty_overlay.png").is_file()
    assert main(["predict", str(photos / "empty.png"), "--out", str(tmp_path)]) == 0
    assert "empty.png: no hand found" in capsys.readouterr().out


def test_a_corrupt_input_is_named_the_rest_done_and_the_exit_is_not_zero(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "in" / "broken.png"
    broken.parent.mkdir()
    broken.write_bytes(b"\x89PNG not really")
    shutil.copy(photos / "right.png", tmp_path / "in" / "zz_right.png")
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="1 of 2 inputs failed"):
        main(["predict", str(tmp_path / "in"), "--out", str(out)])
    assert "broken.png: not a readable image" in capsys.readouterr().err
    assert not list(out.glob("broken*"))
    assert json.loads((out / "zz_right.json").read_text())["hands"]


def test_a_missing_path_and_a_folder_without_images_are_refused(tmp_path: Path) -> None:
    assert main(["predict", str(tmp_path / "nope.jpg"), "--out", str(tmp_path)]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty"), "--out", str(tmp_path)]) == 2


def test_a_given_box_replaces_detection(photos: Path, tmp_path: Path, truth: dict) -> None:
    points = np.asarray(truth["joints_2d_px"])
    box = ",".join(f"{v:.1f}" for v in (*points.min(0), *points.max(0)))
    assert main(["predict", str(photos / "right.png"), "--box", box, "--out", str(tmp_path)]) == 0
    hand = json.loads((tmp_path / "right.json").read_text())["hands"][0]
    assert box_error(np.asarray(hand["joints_2d_px"]), points) < 0.1


def test_a_given_focal_and_depth_are_used_and_recorded(photos: Path, tmp_path: Path) -> None:
    args = ["predict", str(photos / "right.png"), "--out", str(tmp_path)]
    assert main([*args, "--focal", "500", "--root-depth", "0.7", "--format", "obj"]) == 0
    hand = json.loads((tmp_path / "right.json").read_text())["hands"][0]
    assert hand["camera"]["focal_px"] == 500 and hand["camera"]["focal_from"] == "given"
    assert hand["camera"]["root_depth_m"] == 0.7
    assert hand["joints_3d_m"][0][2] == pytest.approx(0.7, abs=0.02)
    assert (tmp_path / hand["mesh"]).read_text().startswith("v ")
    with pytest.raises(SystemExit) as refused:
        main([*args, "--focal", "-3"])
    assert refused.value.code == 2


def test_a_missing_default_bundle_names_the_command_that_makes_it(
    photos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(
        predict_module.DEFAULT_BUNDLES, "image", (tmp_path / "none", "make pretrain")
    )
    args = ["predict", str(photos / "right.png"), "--model", "image", "--out", str(tmp_path)]
    assert main(args) == 2
    assert "`make pretrain` makes one" in capsys.readouterr().err


def write_video(path: Path, frames: list[np.ndarray]) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def test_a_video_round_trips_with_one_tracked_hand_per_frame(photos: Path, tmp_path: Path) -> None:
    image = np.asarray(Image.open(photos / "right.png").convert("RGB"))
    frames = [np.roll(image, 3 * k, axis=1) for k in range(6)]
    video = tmp_path / "clip.mp4"
    write_video(video, frames)
    for smooth in (True, False):
        out = tmp_path / f"out-{smooth}"
        args = ["predict", str(video), "--out", str(out), *([] if smooth else ["--no-smooth"])]
        assert main(args) == 0
        lines = [json.loads(x) for x in (out / "clip.jsonl").read_text().splitlines()]
        assert [x["frame"] for x in lines] == list(range(6))
        assert all(len(x["hands"]) == 1 for x in lines)
        assert {x["hands"][0]["track"] for x in lines} == {0}
        wrist = [x["hands"][0]["joints_2d_px"][0][0] for x in lines]
        assert wrist[-1] - wrist[0] == pytest.approx(15, abs=4)  # the hand moved 15 pixels
        reader = cv2.VideoCapture(str(out / "clip_overlay.mp4"))
        assert int(reader.get(cv2.CAP_PROP_FRAME_COUNT)) == 6


def test_a_corrupt_video_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"no video here")
    with pytest.raises(SystemExit, match="1 of 1 inputs failed"):
        main(["predict", str(bad), "--out", str(tmp_path / "out")])
    assert "bad.mp4: not a readable video" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("*"))


@pytest.mark.skipif(not REAL.is_dir(), reason="shared/real_samples is not beside the repository")
def test_every_annotated_hand_of_the_real_samples_is_found(tmp_path: Path) -> None:
    folders = [REAL / "RHD", REAL / "FreiHAND"]
    assert main(["predict", *map(str, folders), "--out", str(tmp_path)]) == 0
    records = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert len(records) == 12  # 3 RHD, 9 FreiHAND images
    assert all(r["hands"] for r in records.values())


def test_inputs_of_one_name_and_boxes_for_videos_are_refused(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(photos / "right.png", other / "right.jpg")
    out = tmp_path / "out"
    assert (
        main(["predict", str(photos / "right.png"), str(other / "right.jpg"), "--out", str(out)])
        == 2
    )
    assert not out.exists() or not list(out.iterdir())
    said = capsys.readouterr().err
    assert str(photos / "right.png") in said and str(other / "right.jpg") in said
    video = tmp_path / "clip.mp4"
    write_video(video, [np.asarray(Image.open(photos / "right.png").convert("RGB"))] * 2)
    assert main(["predict", str(video), "--box", "1,2,3,4", "--out", str(out)]) == 2
    assert "--box is for photographs" in capsys.readouterr().err


def test_a_rerun_with_fewer_hands_leaves_no_stale_mesh(photos: Path, tmp_path: Path) -> None:
    (tmp_path / "right_hand3.ply").write_text("from an earlier run")
    # Another input's meshes (`right_hand.png`, `right_hand0.png`) are not this one's to remove.
    (tmp_path / "right_hand_hand0.ply").write_text("another input's")
    (tmp_path / "right_hand0_hand0.obj").write_text("another input's")
    assert main(["predict", str(photos / "right.png"), "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("right_hand*")) == [
        "right_hand0.ply",
        "right_hand0_hand0.obj",
        "right_hand_hand0.ply",
    ]


def test_predicting_imports_neither_lightning_nor_pyg(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from handshape.cli import main; "
        f"main(['predict', {str(FIXTURES / 'hand_photo.png')!r}, '--out', {str(tmp_path)!r}]); "
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('pytorch_lightning', 'lightning', 'torch_geometric', 'pyrender', 'trimesh', 'wandb')]; "
        "print('HEAVY', heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "HEAVY []" in result.stdout, result.stdout
