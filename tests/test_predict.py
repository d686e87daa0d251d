"""Specification of `handshape predict` on photographs: what it writes for a mesh network and for
a pose-only one, and how it treats bad input. Tiny untrained networks: the files, not accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import trimesh
from omegaconf import OmegaConf
from PIL import Image

from handshape.config import PACKAGE_CONFIGS, load_experiment
from handshape.handmodel.model import HandModel
from handshape.nets.network import HandNet
from handshape.predict import Crop, predict_image

CONFIGS = PACKAGE_CONFIGS


def tiny(*overrides: str) -> tuple[HandNet, dict[str, Any]]:
    cfg = OmegaConf.to_container(load_experiment("tiny", list(overrides), CONFIGS), resolve=True)
    assert isinstance(cfg, dict)
    torch.manual_seed(0)
    return HandNet.from_config(cfg).eval(), cfg


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "hand.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(path)
    return path


def test_a_mesh_network_writes_the_mesh_the_joints_and_an_overlay(
    photo: Path, tmp_path: Path
) -> None:
    net, cfg = tiny()
    paths = predict_image(net, cfg, photo, tmp_path, box=(40, 20, 120, 100), root_depth=0.6)
    assert set(paths) == {"mesh", "joints", "overlay"}
    mesh = trimesh.load(paths["mesh"], process=False)
    assert len(mesh.vertices) == HandModel.default().num_vertices
    record = json.loads(paths["joints"].read_text())
    assert np.asarray(record["joints_3d_m"]).shape == (21, 3)
    assert record["assumed"]["root_depth_m"] == 0.6
    # the root sits near the given depth (its predicted relative depth is not exactly zero)
    assert np.asarray(record["joints_3d_m"])[0, 2] == pytest.approx(0.6, abs=0.01)
    assert Image.open(paths["overlay"]).size == (160, 120)  # drawn on the whole photograph


def test_a_pose_only_network_writes_joints_and_a_skeleton_only(photo: Path, tmp_path: Path) -> None:
    net, cfg = tiny("model.head.name=none", "model.pose_from=latent")
    paths = predict_image(net, cfg, photo, tmp_path)
    assert set(paths) == {"joints", "overlay"}
    assert not list(tmp_path.glob("*.ply"))
    overlay = np.asarray(Image.open(paths["overlay"]))
    assert (overlay != np.asarray(Image.open(photo).convert("RGB"))).any()


def test_an_unreadable_image_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    net, cfg = tiny()
    with pytest.raises(ValueError, match=r"broken.png: not a readable image"):
        predict_image(net, cfg, bad, tmp_path / "out")


def test_the_crop_is_a_square_around_the_box_or_the_centred_square() -> None:
    crop = Crop.around((40, 20, 120, 100), 160, 120, margin=1.5)
    assert (crop.x0, crop.y0, crop.side) == (20.0, 0.0, 120.0)
    assert Crop.around(None, 160, 120) == Crop(20.0, 0.0, 120.0)
    with pytest.raises(ValueError, match=r"need x0 < x1"):
        Crop.around((50, 20, 40, 100), 160, 120)


# ---- bad arguments to the command ------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained network saved as an inference bundle."""
    from safetensors.torch import save_file

    from handshape.atomic import atomic_write_text

    net, cfg = tiny()
    folder = tmp_path_factory.mktemp("bundle")
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()}, folder / "model.safetensors"
    )
    atomic_write_text(folder / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(cfg)))
    return folder


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from handshape.cli import main

    try:
        code = main(argv)
    except SystemExit as err:  # argparse refuses an argument
        code = int(err.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("box", ["nan,1,2,3", "1,2,inf,4", "1,2,3", "a,b,c,d", "5,5,5,9"])
def test_a_malformed_box_is_refused_naming_the_argument(
    box: str, photo: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(
        ["predict", "--checkpoint", str(bundle), "--box", box, "--out", str(tmp_path), str(photo)],
        capsys,
    )
    assert code == 2
    assert "--box" in err and box in err
    assert not list(tmp_path.iterdir())


def test_a_box_outside_the_image_is_refused_naming_the_image(
    photo: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["predict", "--checkpoint", str(bundle), "--box", "500,500,600,600"]
    code, err = run([*argv, "--out", str(tmp_path), str(photo)], capsys)
    assert code == 2
    assert str(photo) in err and "outside the 160x120 image" in err
    assert not list(tmp_path.iterdir())


def test_a_bundles_weights_file_works_like_its_folder(
    photo: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = bundle / "model.safetensors"
    code, err = run(
        ["predict", "--checkpoint", str(weights), "--out", str(tmp_path), str(photo)], capsys
    )
    assert code == 0, err
    assert (tmp_path / "hand_joints.json").is_file()


@pytest.mark.parametrize("content", [b"random bytes, not a checkpoint", b"PK\x03\x04broken zip"])
def test_a_file_that_is_no_checkpoint_gets_a_clear_message(
    content: bytes, photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "model.ckpt"
    fake.write_bytes(content)
    code, err = run(
        ["predict", "--checkpoint", str(fake), "--out", str(tmp_path / "o"), str(photo)], capsys
    )
    assert code == 2
    assert "--checkpoint" in err and str(fake) in err
    assert "not a PyTorch checkpoint" in err
    assert not (tmp_path / "o").exists()
