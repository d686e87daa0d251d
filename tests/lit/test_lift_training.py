"""The keypoint network trains on posed hands drawn on the fly: on tiny settings it beats a
constant hand on its validation hands, and two trainings from one seed give one network."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from handshape.config import load_experiment
from handshape.data.batches import prepare_batch
from handshape.data.keypoint_data import KeypointDataModule
from handshape.geometry.camera import from_uvd
from handshape.lit.train import run_pretraining
from handshape.nets.bundle import load_network

pytestmark = [
    pytest.mark.usefixtures("single_thread"),
    pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning"),
]

TINY = [
    "model.keypoint_encoder.hidden=96",
    "model.encoder.latent_dim=64",
    "model.head.graphcnn.coarse_features=8",
    "train.batch_size=32",
    "train.stages.pose_regressor.steps=40",
    "train.stages.full.steps=160",
    "train.val_every=80",
    "train.val_batches=1",
    "train.logging.wandb=disabled",
    "data.keypoints.val_samples=256",
]


def train(out: Path) -> Path:
    cfg = load_experiment("lift", [*TINY, f"output={out}"])
    return run_pretraining(cfg, progress=False)


def validation_errors(bundle: Path) -> tuple[float, float]:
    """(the network's, a constant hand's) mean joint error in mm on the validation hands; the
    constant is the mean uvd answer of the training hands."""
    net, cfg = load_network(bundle)
    data = KeypointDataModule(cfg)
    data.setup()
    assert data.train_set is not None and data.val_set is not None
    size = net.input_size
    train_uvd = torch.cat(
        [prepare_batch(data.train_set[i], size, 1.0)["joints_uvd"] for i in range(8)]
    )
    constant = train_uvd.mean(0)
    errors: dict[str, list[torch.Tensor]] = {"net": [], "constant": []}
    with torch.no_grad():
        for i in range(len(data.val_set)):
            gt = prepare_batch(data.val_set[i], size, 1.0)
            root, scale = gt["root"][:, 2], gt["scale"]
            for name, uvd in (
                ("net", net(gt["keypoints"]).joints),
                ("constant", constant.expand_as(gt["joints_uvd"])),
            ):
                joints = from_uvd(uvd, gt["K"], root, scale, size)
                errors[name].append((joints - gt["joints_3d"]).norm(dim=-1).mean(-1) * 1000)
    return tuple(float(torch.cat(errors[k]).mean()) for k in ("net", "constant"))  # type: ignore[return-value]


@pytest.mark.slow
def test_a_tiny_keypoint_network_beats_a_constant_hand(tmp_path: Path) -> None:
    bundle = train(tmp_path / "lift")
    net_error, constant_error = validation_errors(bundle)
    assert net_error < 0.8 * constant_error, (net_error, constant_error)
    cfg = OmegaConf.load(bundle / "config.yaml")
    assert cfg.model.input == "keypoints" and cfg.data.name == "keypoints"
