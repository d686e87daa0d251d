"""Specification of HandNet (Fig. 3): image -> heat-maps per stack, latent, mesh and joints."""

from __future__ import annotations

import pytest
import torch
from omegaconf import DictConfig

from handshape.config import PACKAGE_CONFIGS, load_experiment
from handshape.geometry.hierarchy import MeshHierarchy
from handshape.geometry.mesh_graph import mesh_hierarchy
from handshape.handmodel.model import HandModel
from handshape.nets.network import HandNet, NetOutput

CONFIGS = PACKAGE_CONFIGS


def model_config(*overrides: str, experiment: str = "quick") -> DictConfig:
    return load_experiment(experiment, list(overrides), CONFIGS).model


@pytest.fixture(scope="module")
def hierarchy(hand: HandModel) -> MeshHierarchy:
    levels = model_config().graph_levels
    return mesh_hierarchy(hand.data.faces, hand.num_vertices, levels=levels)


def build(
    hierarchy: MeshHierarchy, *overrides: str, seed: int = 0, experiment: str = "quick"
) -> HandNet:
    torch.manual_seed(seed)
    return HandNet(model_config(*overrides, experiment=experiment), hierarchy)


def check_shapes(out: NetOutput, batch: int, size: int, stacks: int, latent: int, n: int) -> None:
    assert isinstance(out, NetOutput)
    assert len(out.heatmaps) == stacks
    for maps in out.heatmaps:
        assert maps.shape == (batch, 21, size // 4, size // 4)
    assert out.latent.shape == (batch, latent)
    assert out.vertices.shape == (batch, n, 3)
    assert out.joints.shape == (batch, 21, 3)
    for t in (*out.heatmaps, out.latent, out.vertices, out.joints):
        assert torch.isfinite(t).all()


@pytest.mark.parametrize("size", [64, 128])
def test_quick_network_output_shapes(hierarchy: MeshHierarchy, hand: HandModel, size: int) -> None:
    cfg = model_config(f"model.input_size={size}")
    net = build(hierarchy, f"model.input_size={size}").eval()
    assert net.input_size == size
    with torch.no_grad():
        out = net(torch.rand(2, 3, size, size))
    check_shapes(out, 2, size, cfg.hourglass.num_stacks, cfg.encoder.latent_dim, hand.num_vertices)


def test_tiny_network_keeps_the_full_hand_mesh(hierarchy: MeshHierarchy, hand: HandModel) -> None:
    """The graph head and the pose regressor work on the hand-mesh hierarchy whatever the image
    size and channel counts: a 64-pixel network with 8 channels still outputs every vertex."""
    net = build(hierarchy, experiment="tiny").eval()
    with torch.no_grad():
        out = net(torch.rand(3, 3, 64, 64))
    check_shapes(out, 3, 64, 1, 32, hand.num_vertices)


def test_every_hourglass_stack_emits_heatmaps(hierarchy: MeshHierarchy, hand: HandModel) -> None:
    net = build(hierarchy, "model.hourglass.num_stacks=2", experiment="tiny").eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 64, 64))
    check_shapes(out, 2, 64, 2, 32, hand.num_vertices)
    assert not torch.equal(out.heatmaps[0], out.heatmaps[1])


def test_joints_are_regressed_from_the_predicted_vertices(hierarchy: MeshHierarchy) -> None:
    net = build(hierarchy, experiment="tiny").eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 64, 64))
        again = net.pose_regressor(out.vertices)
    torch.testing.assert_close(out.joints, again)


def test_samples_of_a_batch_are_independent_in_eval_mode(hierarchy: MeshHierarchy) -> None:
    net = build(hierarchy, experiment="tiny").eval()
    with torch.no_grad():  # the output convolution starts at zero: give it weights
        for lin in net.head.convs[-1].lins:
            lin.weight.normal_(0, 0.1)
    images = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        together = net(images)
        alone = net(images[1:2])
    torch.testing.assert_close(together.vertices[1:2], alone.vertices, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(together.joints[1:2], alone.joints, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(together.latent[1:2], alone.latent, atol=1e-5, rtol=1e-4)
    # ... and the prediction depends on the image.
    assert not torch.allclose(together.vertices[0], together.vertices[1])


def test_forward_is_the_composition_of_the_parts(hierarchy: MeshHierarchy) -> None:
    """Fig. 3: the encoder sees the last stack's heat-maps concatenated with its features."""
    net = build(hierarchy, experiment="tiny").eval()
    image = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        maps, features = net.hourglass(image)
        latent = net.encoder(torch.cat([maps[-1], features], dim=1))
        vertices = net.head(latent)
        out = net(image)
    torch.testing.assert_close(out.latent, latent)
    torch.testing.assert_close(out.vertices, vertices)


# ---- where the joints come from (model.pose_from; Fig. 8) --------------------------------------


def test_a_pose_only_network_has_no_mesh_and_regresses_joints_from_the_latent(
    hierarchy: MeshHierarchy,
) -> None:
    net = build(hierarchy, "model.head.name=none", "model.pose_from=latent", experiment="tiny")
    net.eval()
    assert not net.has_mesh and net.head is None and net.pose_regressor is None
    assert net.latent_pose is not None
    with torch.no_grad():  # the output layer starts at zero: give it weights
        net.latent_pose.fc[-1].weight.normal_(0, 0.1)
        out = net(torch.rand(2, 3, 64, 64))
        again = net.latent_pose(out.latent)
    assert out.vertices is None and out.mesh_joints is None
    assert out.joints.shape == (2, 21, 3)
    torch.testing.assert_close(out.joints, again)
    assert not torch.allclose(out.joints[0], out.joints[1])


def test_a_task_transfer_network_is_the_papers_plus_a_latent_regressor(
    hierarchy: MeshHierarchy,
) -> None:
    """Built last, the latent regressor leaves every other starting weight as the paper's
    network has them; the network answers with the latent's joints, the mesh's ride along."""
    papers = build(hierarchy, experiment="tiny").eval()
    transfer = build(hierarchy, "model.pose_from=latent", experiment="tiny").eval()
    mine = transfer.state_dict()
    for k, v in papers.state_dict().items():
        torch.testing.assert_close(mine[k], v, msg=k)
    assert {k.split(".")[0] for k in set(mine) - set(papers.state_dict())} == {"latent_pose"}
    image = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out, reference = transfer(image), papers(image)
        from_latent = transfer.latent_pose(out.latent)
    torch.testing.assert_close(out.vertices, reference.vertices)
    torch.testing.assert_close(out.mesh_joints, reference.joints)
    torch.testing.assert_close(out.joints, from_latent)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("model.head.name=none",), r"model.head.name=none \(no mesh\) needs model.pose_from"),
        (("model.pose_from=heatmaps",), r"model.pose_from must be one of .*'heatmaps'"),
        (("model.pose_from=latent", "model.latent_pose.hidden=0"), r"hidden must be positive"),
    ],
)
def test_impossible_joint_sources_are_clear_errors(
    hierarchy: MeshHierarchy, overrides: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build(hierarchy, *overrides, experiment="tiny")
