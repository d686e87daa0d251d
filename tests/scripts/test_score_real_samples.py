"""scripts/score_real_samples.py: a bundle scored on annotated photographs by 2D joint error.

Fixtures are written in the published formats (mmpose's COCO-style RHD and FreiHAND files, PNG
and JPEG photographs); a tiny untrained bundle stands in for a trained one: the scores, not
their values, are what is specified.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from handshape.config import PACKAGE_CONFIGS, load_experiment
from handshape.data.synth.generate import Plan, generate
from handshape.data.synth.scene import SynthConfig
from handshape.geometry.mesh_graph import mesh_hierarchy
from handshape.handmodel.model import HandModel
from handshape.lit.train import write_bundle
from handshape.nets.network import HandNet

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("single_thread")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "score_real_samples", REPO / "scripts" / "score_real_samples.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


score_real = _script()


def _hand_joints(rng: np.random.Generator, centre: tuple[float, float]) -> np.ndarray:
    """(21, 2) a plausible spread of joints around `centre`, project order."""
    return np.asarray(centre) + rng.uniform(-40, 40, size=(21, 2))


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """RHD (a left and a right hand) and FreiHAND (one right hand) folders; the true joints
    (project order, in each file's own unmirrored pixels) by file name."""
    root = tmp_path_factory.mktemp("real")
    rng = np.random.default_rng(3)
    truth = {}
    (root / "RHD").mkdir()
    images, annotations = [], []
    for i, (name, hand) in enumerate((("00111.png", "left"), ("01111.png", "right"))):
        Image.fromarray(rng.integers(0, 255, (320, 320, 3), dtype=np.uint8)).save(
            root / "RHD" / name
        )
        joints = _hand_joints(rng, (150 + 10 * i, 160))
        truth[name] = joints
        rhd = joints[score_real.RHD_TO_PROJECT]  # RHD lists each finger tip first
        images.append({"file_name": name, "height": 320, "width": 320, "id": i + 1})
        annotations.append(
            {
                "id": i + 1,
                "image_id": i + 1,
                "keypoints": [[float(u), float(v), 1] for u, v in rhd],
                "hand_type": hand,
            }
        )
    (root / "RHD" / "test_rhd.json").write_text(
        json.dumps({"images": images, "annotations": annotations})
    )
    (root / "FreiHAND").mkdir()
    Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)).save(
        root / "FreiHAND" / "00000355.jpg"
    )
    joints = _hand_joints(rng, (110, 115))
    truth["00000355.jpg"] = joints
    (root / "FreiHAND" / "test_freihand.json").write_text(
        json.dumps(
            {
                "images": [{"file_name": "00000355.jpg", "height": 224, "width": 224, "id": 355}],
                "annotations": [
                    {"image_id": 355, "keypoints": [x for u, v in joints for x in (u, v, 1.0)]}
                ],
            }
        )
    )
    return root, truth


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained bundle whose config names a tiny synthetic set as its training data."""

    base = tmp_path_factory.mktemp("bundle")
    synth = dataclasses.replace(
        SynthConfig.load(PACKAGE_CONFIGS / "data" / "synthetic.yaml"), size=64, shard_size=8
    )
    generate(Plan(base / "data", "train", 8, 0, synth), progress=False)
    cfg: dict[str, Any] = OmegaConf.to_container(  # type: ignore[assignment]
        load_experiment("tiny", [f"data.root={base / 'data'}"]), resolve=True
    )
    hand = HandModel.default()
    hierarchy = mesh_hierarchy(hand.data.faces, hand.num_vertices, cfg["model"]["graph_levels"])
    torch.manual_seed(0)
    net = HandNet(OmegaConf.create(cfg["model"]), hierarchy, hand)
    return write_bundle(net.state_dict(), cfg, base / "bundle")


def test_rhd_fingers_are_reordered_base_to_tip() -> None:
    order = score_real.RHD_TO_PROJECT
    assert order[0] == 0
    # project thumb CMC, MCP, IP, tip = RHD 4, 3, 2, 1; little finger = RHD 20 ... 17
    assert order[1:5].tolist() == [4, 3, 2, 1]
    assert order[17:21].tolist() == [20, 19, 18, 17]
    assert sorted(order.tolist()) == list(range(21))


def test_annotations_are_read_in_the_project_order(real: tuple[Path, dict]) -> None:
    root, truth = real
    photos = {p.path.name: p for p in score_real.read_photos(root)}
    assert set(photos) == set(truth)
    for name, photo in photos.items():
        np.testing.assert_allclose(photo.joints, truth[name])
    assert photos["00111.png"].left and not photos["01111.png"].left
    assert not photos["00000355.jpg"].left
    assert {p.dataset for p in photos.values()} == {"RHD", "FreiHAND"}


def test_a_left_hand_is_mirrored_with_its_joints(real: tuple[Path, dict]) -> None:
    root, truth = real
    photo = next(p for p in score_real.read_photos(root) if p.left)
    image, joints = score_real.load_image(photo)
    original = np.asarray(Image.open(photo.path).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(image), original[:, ::-1])
    np.testing.assert_allclose(joints[:, 0], 319 - truth[photo.path.name][:, 0])
    np.testing.assert_allclose(joints[:, 1], truth[photo.path.name][:, 1])


def test_scores_have_both_rows_for_each_data_set(real: tuple[Path, dict], bundle: Path) -> None:
    results = score_real.score(bundle, real[0], None)
    assert set(results) == {"network", "constant"}
    for row in results.values():
        assert set(row) == {"RHD", "FreiHAND", "all"}
        assert (row["RHD"]["images"], row["FreiHAND"]["images"], row["all"]["images"]) == (2, 1, 3)
        for s in row.values():
            assert s["mean_error"] > 0
            assert 0 <= s["pck@0.1"] <= s["pck@0.2"] <= 1


def test_a_perfect_prediction_scores_zero_error_and_full_pck(
    real: tuple[Path, dict], bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Predictions are compared in the (mirrored) frame the network saw."""

    def oracle(net: object, image: Image.Image, crop: object) -> np.ndarray:
        for photo in score_real.read_photos(real[0]):
            mirrored_image, joints = score_real.load_image(photo)
            if np.array_equal(np.asarray(mirrored_image), np.asarray(image)):
                return joints
        raise AssertionError("an image that is none of the photographs")

    monkeypatch.setattr(score_real, "predict_in_box", oracle)
    network = score_real.score(bundle, real[0], None)["network"]["all"]
    assert network["mean_error"] == pytest.approx(0.0, abs=1e-9)
    assert network["pck@0.1"] == network["pck@0.2"] == 1.0


def test_the_command_prints_the_table_and_writes_json(
    real: tuple[Path, dict], bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    score_real.main([str(bundle), "--real", str(real[0]), "--json", str(tmp_path / "s.json")])
    table = capsys.readouterr().out
    assert "| network | all | 3 |" in table and "| constant | RHD | 2 |" in table
    assert set(json.loads((tmp_path / "s.json").read_text())) == {"network", "constant"}


def test_a_folder_without_annotations_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
        score_real.read_photos(tmp_path)
    (tmp_path / "RHD").mkdir()
    (tmp_path / "RHD" / "test_rhd.json").write_text("{ not json")
    with pytest.raises(ValueError, match=r"test_rhd\.json"):
        score_real.read_photos(tmp_path)
