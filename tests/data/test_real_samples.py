"""The real files in shared/real_samples go through the readers (skipped only where absent).

shared/ sits beside the repository (../shared from the repository root, as in CI). Nothing from it
is committed: the RHD photographs are rebuilt into the RHD layout in a temporary folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handshape.data.freihand import FreiHANDDataset, FreiHANDReader
from handshape.data.real import project
from handshape.data.rhd import RHDDataset, RHDReader
from handshape.data.stb import load_boxes
from handshape.joints import SCALE_BONE
from real_formats import rebuild_rhd_from_json

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "real_samples"
pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"{SAMPLES} absent")


def test_rhd_photographs_rebuilt_into_the_layout_read_back(tmp_path: Path) -> None:
    kinds = rebuild_rhd_from_json(SAMPLES / "RHD", tmp_path / "RHD")
    reader = RHDReader(tmp_path / "RHD", "training")
    assert reader.ids == [111, 1111, 11111]
    scales = []
    for i, key in enumerate(reader.ids):
        raw = reader.load(i)
        assert raw.mirrored == (kinds[key] == "left")
        original = np.asarray(Image.open(SAMPLES / "RHD" / f"{key:05d}.png").convert("RGB"))
        assert np.array_equal(raw.image, original[:, ::-1] if raw.mirrored else original)
        assert np.abs(project(raw.K, raw.joints_3d) - raw.joints_2d).max() < 0.5
        a, b = SCALE_BONE
        scales.append(np.linalg.norm(raw.joints_3d[a] - raw.joints_3d[b]) * 1000)
    # SOURCE.txt: middle MCP-PIP bones of 34.63 / 36.86 / 36.85 mm (so metres in the pickle).
    assert np.allclose(scales, [34.63, 36.86, 36.85], atol=0.01)
    item = RHDDataset(tmp_path / "RHD", "training", size=256)[2]
    assert item["visibility"].sum() >= 15
    uv = project(item["K"].double().numpy(), item["joints_3d"].double().numpy())
    assert np.abs(uv - item["joints_2d"].numpy()).max() < 0.5


def test_real_stb_eval_boxes_read() -> None:
    boxes = load_boxes(SAMPLES / "STB" / "STB_eval_bboxes.mat", 3000)
    assert np.array_equal(boxes[:, 2], boxes[:, 3])  # square, as Ge et al. made them
    assert boxes[:, 0].min() >= 0 and (boxes[:, 0] + boxes[:, 2]).max() <= 640
    assert boxes[:, 1].min() >= 0 and (boxes[:, 1] + boxes[:, 3]).max() <= 480


def test_real_freihand_evaluation_k_read(tmp_path: Path) -> None:
    root = tmp_path / "FreiHAND"
    (root / "evaluation" / "rgb").mkdir(parents=True)
    shutil.copyfile(SAMPLES / "FreiHAND" / "evaluation_K.json", root / "evaluation_K.json")
    shutil.copyfile(
        SAMPLES / "FreiHAND" / "mobilehand_freihand_00000000.jpg",
        root / "evaluation" / "rgb" / "00000000.jpg",
    )
    reader = FreiHANDReader(root, "evaluation")
    assert len(reader) == 3960
    assert np.allclose(reader.K[:, :2, 2], 112.0) and np.all(reader.K[:, 0, 0] > 100)
    item = FreiHANDDataset(root, "evaluation", size=224)[0]
    assert item["image"].shape == (3, 224, 224) and not item["has_joints_3d"]
    assert np.allclose(item["K"].numpy(), reader.K[0], atol=1e-3)  # the whole image, unscaled


def test_real_freihand_versions_share_one_annotation() -> None:
    coco = json.loads((SAMPLES / "FreiHAND" / "test_freihand.json").read_text())
    by_image = {a["image_id"]: a["keypoints"] for a in coco["annotations"]}
    for idx in (355, 17620):
        versions = [by_image[idx + 32560 * v] for v in range(4)]
        assert all(np.allclose(versions[0], k) for k in versions[1:])
        for v in range(4):
            image = Image.open(SAMPLES / "FreiHAND" / f"{idx + 32560 * v:08d}.jpg")
            assert image.size == (224, 224)
