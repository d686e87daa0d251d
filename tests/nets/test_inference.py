"""Specification of the inference copy: same outputs, fewer layers, the original untouched."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from handshape.config import load_experiment
from handshape.geometry.hierarchy import MeshHierarchy
from handshape.nets.inference import (
    AffineJointRegressor,
    collapse_pose_regressor,
    fold_batch_norms,
    for_inference,
)
from handshape.nets.latent_batch_norm import LatentBatchNorm
from handshape.nets.network import HandNet
from handshape.nets.node_batch_norm import NodeBatchNorm

pytestmark = pytest.mark.usefixtures("single_thread")


def trained_looking(hierarchy: MeshHierarchy) -> HandNet:
    """A tiny network whose batch norms have non-trivial statistics and whose outputs vary."""
    cfg = load_experiment("tiny")
    torch.manual_seed(0)
    net = HandNet(OmegaConf.create(OmegaConf.to_container(cfg.model)), hierarchy)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.normal_(1, 0.2)
                module.bias.normal_(0, 0.2)
        for param in net.parameters():
            if torch.count_nonzero(param) == 0:
                param.normal_(0, 0.05)
    return net.eval()


@pytest.mark.parametrize("channels_last", [False, True])
def test_inference_copy_gives_the_same_outputs(
    hierarchy: MeshHierarchy, channels_last: bool
) -> None:
    net = trained_looking(hierarchy)
    fast = for_inference(net, channels_last=channels_last)
    image = torch.rand(3, 3, net.input_size, net.input_size)
    with torch.inference_mode():
        expected, got = net(image), fast(image)
    assert expected.vertices.abs().max() > 1e-2
    torch.testing.assert_close(got.vertices, expected.vertices, rtol=0, atol=1e-5)
    torch.testing.assert_close(got.joints, expected.joints, rtol=0, atol=1e-5)
    for a, b in zip(got.heatmaps, expected.heatmaps, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_folding_removes_the_batch_norms_after_convolutions(hierarchy: MeshHierarchy) -> None:
    net = trained_looking(hierarchy)
    before = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    fast = for_inference(net)
    after = sum(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    folded = before - after
    assert folded > before // 2  # two of each residual block's three, the stem's, the post's
    # the original keeps every layer and its state dict keys
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == before
    assert set(HandNet.state_dict(net)) == set(trained_looking(hierarchy).state_dict())


def test_training_mode_layers_are_not_folded() -> None:
    block = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    assert fold_batch_norms(block) == 0
    assert fold_batch_norms(block.eval()) == 1
    assert isinstance(block[1], nn.Identity)


def test_graph_head_normalisations_are_folded_into_their_layers(hierarchy: MeshHierarchy) -> None:
    net = trained_looking(hierarchy)
    fast = for_inference(net)
    for kind in (NodeBatchNorm, LatentBatchNorm):
        assert any(isinstance(m, kind) for m in net.head.modules())
        assert not any(isinstance(m, kind) for m in fast.head.modules())
    latent = torch.randn(4, net.encoder.latent_dim)
    with torch.inference_mode():
        torch.testing.assert_close(fast.head(latent), net.head(latent), rtol=0, atol=1e-5)


def test_the_pose_regressor_becomes_one_affine_map(hierarchy: MeshHierarchy) -> None:
    net = trained_looking(hierarchy).double()
    affine = collapse_pose_regressor(net.pose_regressor)
    assert isinstance(affine, AffineJointRegressor)
    n = hierarchy.num_vertices
    assert tuple(affine.weight.shape) == (21 * 3, n * 3)
    vertices = torch.randn(5, n, 3, dtype=torch.float64)
    with torch.no_grad():
        expected = net.pose_regressor(vertices)
    assert expected.abs().max() > 1e-2
    torch.testing.assert_close(affine(vertices), expected, rtol=0, atol=1e-10)
    assert isinstance(for_inference(net).pose_regressor, AffineJointRegressor)


def test_a_regressor_that_is_not_affine_is_refused(hierarchy: MeshHierarchy) -> None:
    regressor = trained_looking(hierarchy).pose_regressor
    regressor.graph.insert(1, nn.Tanh())
    with pytest.raises(RuntimeError, match="not affine"):
        collapse_pose_regressor(regressor)


def test_the_affine_regressor_refuses_a_mesh_of_another_size(hierarchy: MeshHierarchy) -> None:
    affine = collapse_pose_regressor(trained_looking(hierarchy).pose_regressor)
    with pytest.raises(ValueError, match="N \\* C"):
        affine(torch.zeros(1, 10, 3))


def test_the_copy_can_be_made_under_inference_mode_and_leaves_the_global_rng(
    hierarchy: MeshHierarchy,
) -> None:
    net = trained_looking(hierarchy)
    image = torch.rand(2, 3, net.input_size, net.input_size)
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    with torch.inference_mode():
        fast = for_inference(net)
        got, expected = fast(image), net(image)
    torch.testing.assert_close(torch.rand(3), expected_draw)
    torch.testing.assert_close(got.joints, expected.joints, rtol=0, atol=1e-5)
