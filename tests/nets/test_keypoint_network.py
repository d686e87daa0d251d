"""The keypoint network: keypoint features in, the same heads, pose regressor and uvd out."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from handshape.config import load_experiment
from handshape.data.keypoint_inputs import num_features
from handshape.lit.pretrain import stages_for
from handshape.nets.inference import for_inference
from handshape.nets.network import HandNet

SMALL = ["model.keypoint_encoder.hidden=64", "model.encoder.latent_dim=32"]


def lift_config(*overrides: str) -> dict:
    cfg = OmegaConf.to_container(load_experiment("lift", [*SMALL, *overrides]), resolve=True)
    assert isinstance(cfg, dict)
    return cfg


@pytest.mark.parametrize("head", ["graphcnn", "mano", "lbs"])
def test_every_head_decodes_keypoints(head: str) -> None:
    net = HandNet.from_config(lift_config(f"model.head.name={head}")).eval()
    assert net.hourglass is None and net.encoder is None
    out = net(torch.randn(3, num_features()))
    assert out.heatmaps == [] and out.latent.shape == (3, 32)
    assert out.vertices is not None and out.vertices.shape == (3, 1050, 3)
    assert out.joints.shape == (3, 21, 3)


def test_a_keypoint_network_has_no_hourglass_stage() -> None:
    cfg = lift_config()
    assert stages_for(cfg["model"]) == ("pose_regressor", "full")
    assert "hourglass" in stages_for(load_experiment("quick").model)


def test_the_inference_copy_gives_the_networks_answer() -> None:
    torch.manual_seed(0)
    net = HandNet.from_config(lift_config()).eval()
    x = torch.randn(2, num_features())
    with torch.no_grad():
        expected = net(x)
    with torch.inference_mode():
        fast = for_inference(net)(x)
    assert torch.allclose(fast.vertices, expected.vertices, atol=1e-5)
    assert torch.allclose(fast.joints, expected.joints, atol=1e-5)


def test_features_of_the_wrong_size_are_refused() -> None:
    net = HandNet.from_config(lift_config()).eval()
    with pytest.raises(ValueError, match="keypoint features have 10 values"):
        net(torch.randn(1, 10))


def test_an_unknown_input_is_refused() -> None:
    with pytest.raises(ValueError, match=r"model\.input must be one of"):
        HandNet.from_config(lift_config("model.input=depth"))
