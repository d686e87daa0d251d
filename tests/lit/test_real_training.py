"""Training on a real set from a pretrained bundle: the labels a batch has decide the terms, a
stage without labels is refused before training, train.init sets the starting weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from handshape.cli import main
from handshape.config import load_experiment
from handshape.data.batches import prepare_batch
from handshape.lit.pretrain import PretrainModule, labelled
from handshape.lit.train import run_pretraining, write_bundle
from handshape.nets.network import HandNet
from real_formats import make_rhd


def tiny_cfg(*overrides: str) -> dict:
    cfg = OmegaConf.to_container(load_experiment("tiny", list(overrides)), resolve=True)
    assert isinstance(cfg, dict)
    return cfg


@pytest.fixture(scope="module")
def rhd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rhd")
    make_rhd(root, "training", 41)
    return root


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny network's weights as an inference bundle, standing in for a pretrained one."""
    cfg = tiny_cfg()
    torch.manual_seed(123)
    net = HandNet.from_config(cfg)
    folder = tmp_path_factory.mktemp("bundle")
    return write_bundle(net.state_dict(), cfg, folder)


def test_terms_use_only_the_samples_that_carry_their_label() -> None:
    cfg = tiny_cfg()
    module = PretrainModule(cfg, "full")
    torch.manual_seed(0)
    batch = {
        "image": torch.rand(3, 3, 64, 64),
        "K": torch.tensor([[60.0, 0, 31.5], [0, 60.0, 31.5], [0, 0, 1]]).expand(3, 3, 3),
        "joints_3d": torch.randn(3, 21, 3) * 0.03 + torch.tensor([0, 0, 0.5]),
        "vertices": torch.randn(3, 1050, 3) * 0.03 + torch.tensor([0, 0, 0.5]),
        "joints_2d": torch.rand(3, 21, 2) * 63,
        "has_joints_2d": torch.tensor([True, True, True]),
        "has_joints_3d": torch.tensor([True, True, True]),
        "has_mesh": torch.tensor([False, False, False]),
    }
    gt = prepare_batch(batch, 64, 2.0)
    terms, _ = module.compute_losses(gt)
    assert set(terms) == {"heatmap", "pose", "total"}  # no mesh label: no mesh terms
    batch["has_mesh"] = torch.tensor([True, False, True])
    gt = prepare_batch(batch, 64, 2.0)
    terms, _ = module.compute_losses(gt)
    assert {"vertex", "normal", "edge", "laplacian"} <= set(terms)
    assert labelled(gt, "mesh").tolist() == [True, False, True]
    # The mesh terms of the labelled samples alone equal those of a batch of just them.
    only = {k: v[[0, 2]] if torch.is_tensor(v) and len(v) == 3 else v for k, v in batch.items()}
    alone, _ = module.compute_losses(prepare_batch(only, 64, 2.0))
    torch.testing.assert_close(terms["vertex"], alone["vertex"])


def test_a_stage_whose_loss_has_no_label_is_refused_before_training(
    rhd: Path, tmp_path: Path
) -> None:
    cfg = load_experiment("tiny", ["data.name=rhd", f"data.root={rhd}", f"output={tmp_path}"])
    with pytest.raises(ValueError, match=r"stage 'pose_regressor' needs mesh and joints_3d") as err:
        run_pretraining(cfg, progress=False)
    assert "train.stages.pose_regressor.steps=0" in str(err.value)
    assert not list(tmp_path.iterdir())  # nothing trained, nothing written


def test_train_continues_a_bundle_on_rhd_and_writes_a_bundle(
    rhd: Path, bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    code = main([
        "train", "--experiment", "tiny", "data.name=rhd", f"data.root={rhd}",
        f"train.init={bundle}", "train.stages.pose_regressor.steps=0", f"output={out}",
    ])  # fmt: skip
    assert code == 0
    for stage in ("hourglass", "full"):
        assert (out / stage / "DONE").is_file() and (
            out / stage / "checkpoints" / "best.ckpt"
        ).is_file()
    assert not (out / "pose_regressor").exists()
    assert (out / "bundle" / "model.safetensors").is_file()
    assert torch.load(out / "full" / "checkpoints" / "best.ckpt", weights_only=True)[
        "callbacks"
    ]  # picked by the validation pose error: RHD has no meshes to give a mesh error


def test_train_init_gives_the_starting_weights_of_every_part(
    rhd: Path, bundle: Path, tmp_path: Path
) -> None:
    """Only the hourglass trains: every other part of the bundle is the init's, unchanged."""
    cfg = load_experiment("tiny", [
        "data.name=rhd", f"data.root={rhd}", f"train.init={bundle}",
        "train.stages.pose_regressor.steps=0", "train.stages.full.steps=0", f"output={tmp_path}",
    ])  # fmt: skip
    run_pretraining(cfg, progress=False)
    trained = load_file(str(tmp_path / "bundle" / "model.safetensors"))
    start = load_file(str(bundle / "model.safetensors"))
    assert trained.keys() == start.keys()
    for key in start:
        if key.startswith("hourglass."):
            continue
        torch.testing.assert_close(trained[key], start[key], msg=key)
    assert any(not torch.equal(trained[k], start[k]) for k in start if k.startswith("hourglass."))


def test_train_init_that_is_no_bundle_is_a_clear_error(rhd: Path, tmp_path: Path) -> None:
    cfg = load_experiment(
        "tiny", ["data.name=rhd", f"data.root={rhd}", f"train.init={tmp_path / 'nope'}",
                 "train.stages.pose_regressor.steps=0", f"output={tmp_path / 'o'}"],
    )  # fmt: skip
    with pytest.raises(FileNotFoundError, match=r"nope.*train.init names no bundle"):
        run_pretraining(cfg, progress=False)


def test_pretrain_on_a_real_set_points_to_train_and_eval(
    rhd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["pretrain", "--experiment", "tiny", "data.name=rhd", f"data.root={rhd}",
                 f"output={tmp_path / 'o'}"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "handshape train" in err and "handshape eval --data rhd:ROOT" in err
    assert not (tmp_path / "o").exists()
