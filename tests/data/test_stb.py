"""STB reader: wrist from palm, depth frame to colour frame, registered depth, mirroring, boxes."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from torch.utils.data import DataLoader

from handshape.data.real import DataFileError, LayoutError
from handshape.data.stb import (
    SEQUENCES,
    STB_TO_PROJECT,
    STBDataset,
    STBReader,
    depth_to_color_frame,
    load_boxes,
    palm_to_wrist,
    register_depth,
)
from real_formats import SK_COLOR_K, SK_DEPTH_K, make_stb, project

TEST = {"B1Counting": 2, "B1Random": 2}


@pytest.fixture(scope="module")
def stb_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("stb") / "STB"
    return root, make_stb(root, TEST)


@pytest.fixture
def stb(stb_template: tuple[Path, dict], tmp_path: Path) -> tuple[Path, dict]:
    """A fresh copy per test (tests break files)."""
    root = tmp_path / "STB"
    shutil.copytree(stb_template[0], root)
    return root, stb_template[1]


def test_standard_split() -> None:
    assert SEQUENCES["test"] == ("B1Counting", "B1Random")
    assert len(SEQUENCES["train"]) == 10 and all(not s.startswith("B1") for s in SEQUENCES["train"])


def test_joint_order_from_stb_labels() -> None:
    # STB: palm, little MCP..tip (1-4), ring (5-8), middle (9-12), index (13-16), thumb (17-20).
    assert STB_TO_PROJECT[1:5] == (17, 18, 19, 20)  # thumb
    assert STB_TO_PROJECT[5:9] == (13, 14, 15, 16)  # index
    assert STB_TO_PROJECT[17:21] == (1, 2, 3, 4)  # little


def test_wrist_is_the_palm_centre_pushed_away_from_the_ring_mcp() -> None:
    joints = np.zeros((21, 3))
    joints[0] = [10.0, 4.0, 500.0]  # palm centre
    joints[13] = [16.0, -20.0, 506.0]  # ring MCP (project order)
    wrist = palm_to_wrist(joints)[0]
    # ring + 2 (palm - ring) = (16, -20, 506) + 2 (-6, 24, -6), by hand:
    assert np.allclose(wrist, [4.0, 28.0, 494.0])
    assert np.array_equal(palm_to_wrist(joints)[1:], joints[1:])


def test_colour_frame_conversion_against_rodrigues_by_hand() -> None:
    r = np.array([0.00531, -0.01196, 0.00301])
    theta = np.linalg.norm(r)
    k = r / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    R = np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx
    T = np.array([-24.0381, -0.4563, -1.2326]) / 1000
    X = np.array([0.05, -0.02, 0.48])
    assert np.allclose(depth_to_color_frame(X), R.T @ (X - T), atol=1e-12)
    # A point at the depth camera's origin sits 24 mm to the colour camera's right (+x).
    assert depth_to_color_frame(np.zeros(3))[0] == pytest.approx(0.02404, abs=2e-4)


def test_labels_converted_and_mirrored(stb: tuple[Path, dict]) -> None:
    root, colour_mm = stb
    reader = STBReader(root, "test")
    assert len(reader) == 4
    assert [reader.load(i).sample_id for i in range(4)] == [
        "B1Counting/0", "B1Counting/1", "B1Random/0", "B1Random/1",
    ]  # fmt: skip
    raw = reader.load(3)
    expected = palm_to_wrist(colour_mm["B1Random"][1][list(STB_TO_PROJECT)] / 1000.0)
    expected[:, 0] *= -1  # mirrored left -> right
    assert raw.mirrored
    assert np.allclose(raw.joints_3d, expected, atol=1e-9)
    assert np.abs(project(raw.K, raw.joints_3d) - raw.joints_2d).max() < 0.5
    unmirrored = project(SK_COLOR_K, expected * [-1, 1, 1])
    assert np.allclose(raw.joints_2d[:, 0], 639 - unmirrored[:, 0])


def test_registered_depth_crop_lines_up_with_the_colour_crop(stb: tuple[Path, dict]) -> None:
    root, _ = stb
    dataset = STBDataset(root, "test", size=128, box_margin=1.3)
    for i in range(len(dataset)):
        raw = dataset.reader.load(i)
        # Crop around the bright patch (the fixture's joints are elsewhere).
        ys, xs = np.nonzero(raw.image[..., 0] > 100)
        box = np.array([xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1], float)
        item = dataset.item(replace(raw, box=box))
        bright = item["image"][0].numpy() > 0.5
        has_depth = item["depth"].numpy() > 0
        iou = (bright & has_depth).sum() / (bright | has_depth).sum()
        assert iou > 0.9, (i, iou)
        assert item["has_depth"] and not item["has_mask"] and not item["has_mesh"]
        # Registered depth is the patch's depth in the colour frame (mm rounding, 1 px splat).
        depth = item["depth"].numpy()[bright & has_depth]
        assert np.ptp(depth) < 0.01 and 0.44 < depth.mean() < 0.61


def test_eval_boxes_are_mirrored_with_the_image(stb: tuple[Path, dict]) -> None:
    root, _ = stb
    plain = STBReader(root, "test")
    boxes = []
    for i in range(len(plain)):
        raw = plain.load(i)
        u = 639 - raw.joints_2d[:, 0]  # back to the original image
        v = raw.joints_2d[:, 1]
        side = max(np.ptp(u), np.ptp(v)) + 20
        cu, cv = (u.min() + u.max()) / 2, (v.min() + v.max()) / 2
        boxes.append([cu - (side - 1) / 2, cv - (side - 1) / 2, side, side])
    scipy.io.savemat(root / "STB_eval_bboxes.mat", {"bboxes": np.float32(boxes)})
    dataset = STBDataset(root, "test", boxes=root / "STB_eval_bboxes.mat", size=64)
    for i in range(len(dataset)):
        item = dataset[i]
        uv = item["joints_2d"].numpy()
        centre = (uv.min(axis=0) + uv.max(axis=0)) / 2
        assert np.allclose(centre, 31.5, atol=0.1), centre
        assert item["visibility"].all()


def test_eval_boxes_need_one_row_per_test_frame(stb: tuple[Path, dict]) -> None:
    root, _ = stb
    scipy.io.savemat(root / "boxes.mat", {"bboxes": np.ones((3, 4), np.float32)})
    with pytest.raises(DataFileError, match=r"boxes\.mat: 'bboxes' must be \(4, 4\)"):
        STBReader(root, "test", boxes=root / "boxes.mat")
    with pytest.raises(ValueError, match="test split"):
        STBReader(root, "test", camera="BB_left", boxes=root / "boxes.mat")


def test_bumblebee_right_camera_is_shifted_by_the_baseline(stb: tuple[Path, dict]) -> None:
    root, _ = stb
    left, right = STBReader(root, "test", "BB_left"), STBReader(root, "test", "BB_right")
    a, b = left.load(1), right.load(1)
    assert a.depth is None
    # Mirrored: x -> -x, so the right camera's -(x - 0.120054) is the left's + 0.120054.
    assert np.allclose(b.joints_3d - a.joints_3d, [0.120054, 0, 0])


def test_batches_collate(stb: tuple[Path, dict]) -> None:
    root, _ = stb
    batch = next(iter(DataLoader(STBDataset(root, "test", size=64), batch_size=4)))
    assert batch["depth"].shape == (4, 64, 64) and batch["mirrored"].all()
    assert batch["sample_id"][2] == "B1Random/0"


@pytest.mark.parametrize(
    ("remove", "named"),
    [("B1Random", "B1Random"), ("labels/B1Counting_SK.mat", "B1Counting_SK.mat")],
)
def test_layout_errors_name_what_was_expected(
    stb: tuple[Path, dict], remove: str, named: str
) -> None:
    root, _ = stb
    target = root / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(LayoutError, match=re.escape(named)):
        STBReader(root, "test")


def test_corrupt_label_file_and_png_are_named(stb: tuple[Path, dict]) -> None:
    root, _ = stb
    depth = root / "B1Random" / "SK_depth_1.png"
    depth.write_bytes(depth.read_bytes()[:100])
    with pytest.raises(DataFileError, match=re.escape("SK_depth_1.png")):
        STBDataset(root, "test")[3]
    (root / "labels" / "B1Random_SK.mat").write_bytes(b"MATLAB 5.0 MAT-file, garbage")
    with pytest.raises(DataFileError, match=re.escape("B1Random_SK.mat")):
        STBReader(root, "test")


def test_real_label_layout_variable_is_checked(stb: tuple[Path, dict]) -> None:
    root, _ = stb
    scipy.io.savemat(root / "labels" / "B1Random_SK.mat", {"handPara": np.zeros((3, 20, 2))})
    with pytest.raises(DataFileError, match=r"'handPara' must be finite \(3, 21, frames\)"):
        STBReader(root, "test")


def test_load_boxes_reads_the_matlab_variable(tmp_path: Path) -> None:
    boxes = np.float32([[10, 20, 100, 100], [30, 40, 90, 90]])
    scipy.io.savemat(tmp_path / "b.mat", {"bboxes": boxes})
    assert np.array_equal(load_boxes(tmp_path / "b.mat", 2), boxes)


def test_depth_registration_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(3)
    depth = np.zeros((480, 640), np.float32)
    v, u = rng.integers(0, 480, 400), rng.integers(0, 640, 400)
    depth[v, u] = rng.uniform(0.3, 1.2, 400)
    expected = np.zeros((480, 640))
    K_inv = np.linalg.inv(SK_DEPTH_K)
    for row, col in zip(*np.nonzero(depth), strict=True):
        X = K_inv @ [col, row, 1.0] * depth[row, col]
        Xc = depth_to_color_frame(X)
        uc, vc = np.floor(project(SK_COLOR_K, Xc[None])[0]).astype(int)
        for du in (0, 1):
            for dv in (0, 1):
                if 0 <= vc + dv < 480 and 0 <= uc + du < 640:
                    old = expected[vc + dv, uc + du]
                    expected[vc + dv, uc + du] = Xc[2] if old == 0 else min(old, Xc[2])
    got = register_depth(depth, (480, 640))
    # float32 may put a point on the other side of a pixel boundary now and then.
    assert (got > 0).sum() == pytest.approx((expected > 0).sum(), rel=0.01)
    both = (got > 0) & (expected > 0)
    assert both.sum() > 0.98 * (expected > 0).sum()
    assert np.allclose(got[both], expected[both], atol=1e-5)


def test_depth_registered_in_a_region_equals_the_whole_frame_there() -> None:
    rng = np.random.default_rng(4)
    depth = rng.uniform(0.25, 1.5, (480, 640)).astype(np.float32)
    depth[rng.random((480, 640)) < 0.1] = 0.0  # holes, as real frames have
    full = register_depth(depth, (480, 640))
    for region in [(200.0, 100.0, 400.0, 300.0), (-50.0, 300.0, 120.0, 470.0)]:
        part = register_depth(depth, (480, 640), region)
        u0, v0, u1, v1 = (max(int(c), 0) for c in region)
        assert np.array_equal(part[v0:v1, u0:u1], full[v0:v1, u0:u1])
        assert (part > 0).sum() < 0.5 * (full > 0).sum()


def test_without_depth_the_sk_depth_is_neither_read_nor_registered(
    stb: tuple[Path, dict],
) -> None:
    root, _ = stb
    full, light = STBReader(root, "test"), STBReader(root, "test", depth=False)
    (root / "B1Counting" / "SK_depth_0.png").write_bytes(b"not a png")  # never opened
    raw = light.load(0)
    assert raw.depth is None
    with pytest.raises(DataFileError):
        full.load(0)
    other, same = full.load(1), light.load(1)
    assert other.depth is not None and same.depth is None
    assert np.array_equal(other.image, same.image)
    assert np.array_equal(other.joints_3d, same.joints_3d)
    item = STBDataset(root, "test", depth=False, size=32)[1]
    assert not item["has_depth"] and not item["depth"].any()
