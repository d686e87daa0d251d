"""RHD reader: the Python 2 pickle, hand choice by mask pixels, mirroring, depth, bad files."""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from handshape.data.real import DataFileError, LayoutError, project, to_source_frame
from handshape.data.rhd import RHD_TO_PROJECT, RHDDataset, RHDReader, decode_depth, read_mask_ids
from handshape.safeio.pickles import UnsafePickleError
from real_formats import make_rhd, python2_pickle, write_png


@pytest.fixture
def rhd(tmp_path: Path) -> tuple[Path, dict]:
    truth = make_rhd(tmp_path / "RHD_published_v2", "evaluation", num=4)
    return tmp_path / "RHD_published_v2", truth


def test_pickle_is_python2_style_and_needs_latin1(rhd: tuple[Path, dict]) -> None:
    root, _ = rhd
    blob = (root / "evaluation" / "anno_evaluation.pickle").read_bytes()
    assert blob.startswith(b"\x80\x02") and b"T" in blob  # protocol 2, BINSTRING array data
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(blob)
    assert len(pickle.loads(blob, encoding="latin1")) == 4


def test_rhd_order_reverses_each_finger() -> None:
    assert RHD_TO_PROJECT[:5] == (0, 4, 3, 2, 1)
    assert RHD_TO_PROJECT[-4:] == (20, 19, 18, 17)


def test_hand_with_more_mask_pixels_is_chosen_and_converted(rhd: tuple[Path, dict]) -> None:
    root, truth = rhd
    reader = RHDReader(root, "evaluation")
    assert len(reader) == 4
    for i in range(len(reader)):
        raw = reader.load(i)
        expected = truth[int(raw.sample_id)]
        assert raw.mirrored == expected["left"]
        joints = expected["project_xyz"].copy()
        if expected["left"]:
            joints[:, 0] *= -1
        assert np.allclose(raw.joints_3d, joints, atol=1e-5)
        # Projecting with the converted K lands on the converted 2D joints (incl. mirrored).
        assert np.abs(project(raw.K, raw.joints_3d) - raw.joints_2d).max() < 0.5
        assert raw.mask.sum() > 100  # the chosen hand's own pixels, not the other hand's


def test_mirrored_image_still_shows_the_hand_under_its_joints(rhd: tuple[Path, dict]) -> None:
    root, _ = rhd
    reader = RHDReader(root, "evaluation")
    for i in range(len(reader)):
        raw = reader.load(i)
        u, v = np.rint(raw.joints_2d[[2, 6, 14]]).astype(int).T  # joints inside fingers
        assert np.all(raw.image[v, u, 0] > 150), raw.sample_id
        assert np.all(raw.mask[v, u]) and np.all(raw.depth[v, u] > 0.5)


def test_depth_decoding_matches_the_published_formula() -> None:
    rgb = np.array([[[255, 255, 9], [0, 1, 0], [128, 0, 0]]], np.uint8)
    assert np.allclose(decode_depth(rgb)[0], [5.0, 5.0 / 65535, 128 * 256 * 5.0 / 65535])


def test_dataset_items_match_the_synthetic_layout_and_collate(rhd: tuple[Path, dict]) -> None:
    root, _ = rhd
    dataset = RHDDataset(root, "evaluation", size=128)
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch["image"].shape == (4, 3, 128, 128) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (4, 128, 128) and batch["mask"].dtype == torch.bool
    assert batch["depth"].shape == (4, 128, 128)
    assert batch["joints_2d"].shape == (4, 21, 2) and batch["joints_3d"].shape == (4, 21, 3)
    assert batch["vertices"].shape == (4, 778, 3) and not batch["has_mesh"].any()
    assert batch["has_depth"].all() and batch["has_joints_3d"].all()
    assert len(batch["sample_id"]) == 4
    errors = []
    for b in range(4):
        uv = project(batch["K"][b].double().numpy(), batch["joints_3d"][b].double().numpy())
        errors.append(np.abs(uv - batch["joints_2d"][b].numpy()).max())
    assert max(errors) < 0.5
    # Depth crop aligned with colour crop: the hand's bright pixels are where depth is.
    bright = batch["image"][:, 0] > 0.6
    has_depth = batch["depth"] > 0
    iou = (bright & has_depth).sum() / (bright | has_depth).sum()
    assert iou > 0.9


def test_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    root = tmp_path / "rhd"
    make_rhd(root, "training", num=1)
    marker = tmp_path / "pwned"
    evil = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    (root / "training" / "anno_training.pickle").write_bytes(evil)
    with pytest.raises(UnsafePickleError, match=r"anno_training\.pickle.*os\.system") as info:
        RHDReader(root, "training")
    assert isinstance(info.value, ValueError)
    assert not marker.exists()


def test_pickle_of_other_objects_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "rhd"
    make_rhd(root, "training", num=1)
    blob = pickle.dumps({0: {"xyz": Path("x")}}, protocol=2)
    (root / "training" / "anno_training.pickle").write_bytes(blob)
    with pytest.raises(UnsafePickleError, match="pathlib"):
        RHDReader(root, "training")


def test_malformed_annotations_name_the_file_and_field(tmp_path: Path) -> None:
    root = tmp_path / "rhd"
    make_rhd(root, "training", num=1)
    bad = {3: {"xyz": np.zeros((21, 3), np.float32), "uv_vis": np.zeros((42, 3)), "K": np.eye(3)}}
    (root / "training" / "anno_training.pickle").write_bytes(python2_pickle(bad))
    with pytest.raises(DataFileError, match=r"anno_training\.pickle: sample 3: 'xyz'"):
        RHDReader(root, "training")


@pytest.mark.parametrize(
    ("remove", "named"),
    [
        ("evaluation", "evaluation"),
        ("evaluation/depth", "depth"),
        ("evaluation/anno_evaluation.pickle", "anno_evaluation.pickle"),
    ],
)
def test_layout_errors_name_what_was_expected(
    rhd: tuple[Path, dict], remove: str, named: str
) -> None:
    root, _ = rhd
    target = root / remove
    if target.is_dir():
        import shutil

        shutil.rmtree(target)
    else:
        target.unlink()
    with pytest.raises(LayoutError, match=re.escape(named)):
        RHDReader(root, "evaluation")


def corrupt(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60])


def test_evaluation_refuses_a_corrupt_png_naming_it(rhd: tuple[Path, dict]) -> None:
    root, _ = rhd
    reader = RHDReader(root, "evaluation")
    name = f"{reader.ids[1]:05d}.png"
    corrupt(root / "evaluation" / "color" / name)
    dataset = RHDDataset(root, "evaluation", size=64)
    with pytest.raises(DataFileError, match=re.escape(f"color/{name}")):
        dataset[1]


def test_training_skips_bad_samples_with_a_warning_and_counts_them(
    rhd: tuple[Path, dict], caplog: pytest.LogCaptureFixture
) -> None:
    root, _ = rhd
    reader = RHDReader(root, "evaluation")
    name = f"{reader.ids[1]:05d}.png"
    (root / "evaluation" / "mask" / name).unlink()
    dataset = RHDDataset(root, "evaluation", size=64, train=True, max_bad_fraction=0.3)
    with caplog.at_level(logging.WARNING):
        item = dataset[1]
    assert item["sample_id"] == str(reader.ids[2])  # the next readable one
    assert dataset.skipped == 1
    assert name in caplog.text
    corrupt(root / "evaluation" / "depth" / f"{reader.ids[3]:05d}.png")
    with pytest.raises(DataFileError, match=r"2 of 4 samples were unreadable"):
        dataset[3]


def test_training_augments_the_image_only(rhd: tuple[Path, dict]) -> None:
    root, _ = rhd
    plain = RHDDataset(root, "evaluation", size=64)[0]
    torch.manual_seed(0)
    augmented = RHDDataset(root, "evaluation", size=64, train=True)
    items = [augmented[0] for _ in range(4)]
    assert any(not torch.equal(it["image"], plain["image"]) for it in items)
    for it in items:
        for key in ("joints_2d", "joints_3d", "K", "mask", "depth"):
            assert torch.equal(it[key], plain[key]), key


def test_sizes_that_differ_are_named(rhd: tuple[Path, dict]) -> None:
    root, _ = rhd
    reader = RHDReader(root, "evaluation")
    name = f"{reader.ids[0]:05d}.png"
    write_png(root / "evaluation" / "mask" / name, np.zeros((10, 10), np.uint8))
    with pytest.raises(DataFileError, match="sizes differ"):
        reader.load(0)


def test_items_map_back_to_rhds_own_frame_and_hand(rhd: tuple[Path, dict]) -> None:
    root, truth = rhd
    dataset = RHDDataset(root, "evaluation", size=96)
    anno = dataset.reader.annotations
    for i in range(len(dataset)):
        item = dataset[i]
        key = int(item["sample_id"])
        uv, xyz = to_source_frame(
            item["joints_2d"].double().numpy(),
            item["joints_3d"].double().numpy(),
            item["crop"].numpy(),
            bool(item["mirrored"]),
            int(item["image_size"][0]),
        )
        offset = 0 if truth[key]["left"] else 21
        order = [offset + j for j in RHD_TO_PROJECT]
        assert np.allclose(uv, anno[key]["uv_vis"][order, :2], atol=1e-3)
        assert np.allclose(xyz, anno[key]["xyz"][order], atol=1e-6)


def test_palette_masks_keep_their_ids(tmp_path: Path) -> None:
    from PIL import Image

    ids = np.array([[0, 1, 18], [33, 2, 17]], np.uint8)
    image = Image.fromarray(ids, mode="L").convert("P")
    image.putpalette([255 - (i % 256) for i in range(768)])
    image.save(tmp_path / "m.png")
    assert np.array_equal(read_mask_ids(tmp_path / "m.png"), ids)


def test_without_depth_the_depth_pngs_are_not_read_and_the_rest_is_unchanged(
    rhd: tuple[Path, dict],
) -> None:
    root, _ = rhd
    full, light = RHDReader(root, "evaluation"), RHDReader(root, "evaluation", depth=False)
    corrupt(root / "evaluation" / "depth" / f"{full.ids[0]:05d}.png")  # never opened
    raw = light.load(0)
    assert raw.depth is None
    with pytest.raises(DataFileError):
        full.load(0)
    other = full.load(1)
    same = light.load(1)
    assert other.depth is not None and same.depth is None
    assert np.array_equal(other.image, same.image) and np.array_equal(other.mask, same.mask)
    assert np.array_equal(other.joints_2d, same.joints_2d)
    item = RHDDataset(root, "evaluation", depth=False, size=32)[1]
    assert not item["has_depth"] and not item["depth"].any()
