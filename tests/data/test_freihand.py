"""FreiHAND reader: four versions, held-out validation ids, meshes, evaluation without labels."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from handshape.data.freihand import (
    VERSIONS,
    FreiHANDDataset,
    FreiHANDReader,
    validation_ids,
)
from handshape.data.real import DataFileError, LayoutError, project
from real_formats import make_freihand

NUM = 6


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("frei") / "FreiHAND_pub_v2"
    return root, make_freihand(root, NUM)


@pytest.fixture
def frei(template: tuple[Path, dict], tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "FreiHAND_pub_v2"
    shutil.copytree(template[0], root)
    return root, template[1]


def test_validation_is_the_last_five_percent_of_the_ids() -> None:
    held_out = validation_ids(32560)
    assert (held_out.start, held_out.stop) == (30932, 32560)
    assert list(validation_ids(6)) == [5]


def test_train_and_val_split_all_versions_without_overlap(frei: tuple[Path, dict]) -> None:
    root, _ = frei
    train = FreiHANDReader(root, "train")
    val = FreiHANDReader(root, "val")
    assert len(train) == 5 * 4 and len(val) == 4
    train_ids = {train.load(i).sample_id.split("/")[0] for i in range(len(train))}
    val_ids = {val.load(i).sample_id for i in range(len(val))}
    assert train_ids == {"0", "1", "2", "3", "4"}
    assert val_ids == {f"5/{v}" for v in VERSIONS}
    gs_only = FreiHANDReader(root, "train", versions=("gs",))
    assert len(gs_only) == 5


def test_image_id_is_idx_plus_num_times_version(frei: tuple[Path, dict]) -> None:
    root, _ = frei
    reader = FreiHANDReader(root, "val")
    means = {}
    for i in range(len(reader)):
        raw = reader.load(i)
        means[raw.sample_id] = raw.image[:5, :5].mean()  # background grey is 40 * version
    for v, name in enumerate(VERSIONS):
        assert means[f"5/{name}"] == pytest.approx(40 * v, abs=3)


def test_labels_project_onto_2d_and_meshes_come_along(frei: tuple[Path, dict]) -> None:
    root, arrays = frei
    reader = FreiHANDReader(root, "train")
    raw = reader.load(2 + 5)  # idx 2, version hom
    assert raw.sample_id == "2/hom" and not raw.mirrored
    assert np.allclose(raw.joints_3d, arrays["xyz"][2])
    assert np.allclose(raw.vertices, arrays["verts"][2]) and raw.vertices.shape == (778, 3)
    assert np.abs(project(raw.K, raw.joints_3d) - raw.joints_2d).max() < 0.5
    u, v = np.rint(raw.joints_2d[[2, 6, 10]]).astype(int).T
    assert raw.mask[v, u].all() and (raw.image[v, u, 0] > 150).all()


def test_items_collate_with_flags(frei: tuple[Path, dict]) -> None:
    root, _ = frei
    batch = next(iter(DataLoader(FreiHANDDataset(root, "train", size=96), batch_size=8)))
    assert batch["has_mesh"].all() and not batch["has_depth"].any() and batch["has_mask"].all()
    assert batch["vertices"].shape == (8, 778, 3)
    for b in range(8):
        K, xyz = batch["K"][b].double().numpy(), batch["joints_3d"][b].double().numpy()
        assert np.abs(project(K, xyz) - batch["joints_2d"][b].numpy()).max() < 0.5


def test_without_meshes_vertices_are_zero_and_flagged(frei: tuple[Path, dict]) -> None:
    root, _ = frei
    item = FreiHANDDataset(root, "train", load_mesh=False, num_vertices=1050, size=64)[0]
    assert not item["has_mesh"] and item["vertices"].shape == (1050, 3)
    assert not item["vertices"].any()


def test_evaluation_without_labels_uses_the_whole_image(frei: tuple[Path, dict]) -> None:
    root, arrays = frei
    dataset = FreiHANDDataset(root, "evaluation", size=112)
    assert len(dataset) == 2
    item = dataset[1]
    assert item["sample_id"] == "1"
    assert not item["has_joints_3d"] and not item["has_joints_2d"] and not item["has_mesh"]
    assert not item["visibility"].any()
    # The whole 224 px image halved: K scaled by 0.5 about the pixel-centre convention.
    K = arrays["K"][1]
    assert np.isclose(item["K"][0, 0].item(), K[0, 0] / 2, rtol=1e-5)
    assert np.isclose(item["K"][0, 2].item(), (K[0, 2] + 0.5) / 2 - 0.5, rtol=1e-5)


def test_evaluation_labels_are_read_when_released(frei: tuple[Path, dict]) -> None:
    root, arrays = frei
    (root / "evaluation_xyz.json").write_text(json.dumps(arrays["xyz"][:2].tolist()))
    raw = FreiHANDReader(root, "evaluation").load(0)
    assert np.allclose(raw.joints_3d, arrays["xyz"][0]) and raw.vertices is None


@pytest.mark.parametrize(
    ("remove", "named"),
    [
        ("training/rgb", "training/rgb"),
        ("training_K.json", "training_K.json"),
        ("training_xyz.json", "training_xyz.json"),
        ("training/mask", "training/mask"),
    ],
)
def test_layout_errors_name_what_was_expected(
    frei: tuple[Path, dict], remove: str, named: str
) -> None:
    root, _ = frei
    target = root / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(LayoutError, match=re.escape(named)):
        FreiHANDReader(root, "train")


def test_bad_json_is_named(frei: tuple[Path, dict]) -> None:
    root, arrays = frei
    (root / "training_xyz.json").write_text(json.dumps(arrays["xyz"][:3].tolist()))
    with pytest.raises(DataFileError, match=r"training_xyz\.json: 3 entries, expected 6"):
        FreiHANDReader(root, "train")
    (root / "training_K.json").write_text("[[[1, 0, 0], [0, 1")
    with pytest.raises(DataFileError, match=r"training_K\.json"):
        FreiHANDReader(root, "train")


def test_corrupt_jpeg_refused_in_evaluation_skipped_in_training(frei: tuple[Path, dict]) -> None:
    root, _ = frei
    path = root / "training" / "rgb" / f"{0 + NUM * 1:08d}.jpg"  # idx 0, hom
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    evaluation = FreiHANDDataset(root, "train", versions=("hom",), size=64)
    with pytest.raises(DataFileError, match=re.escape(path.name)):
        evaluation[0]
    training = FreiHANDDataset(
        root, "train", versions=("hom",), size=64, train=True, max_bad_fraction=0.5
    )
    assert training[0]["sample_id"] == "1/hom" and training.skipped == 1
