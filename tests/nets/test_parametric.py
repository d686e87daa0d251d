"""Specification of the baseline heads of Table 2: MANO-parameter regression and direct LBS."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from handshape.config import PACKAGE_CONFIGS, load_experiment
from handshape.geometry.mesh_graph import mesh_hierarchy
from handshape.geometry.rotations import axis_angle_to_matrix
from handshape.handmodel.ik import PALM_JOINTS, inverse_kinematics
from handshape.handmodel.mano_io import read_mano, write_mano
from handshape.handmodel.model import HandModel
from handshape.joints import JOINT_PARENTS
from handshape.nets.heads import HEADS, build_head
from handshape.nets.heads.parametric import (
    SIGMA0,
    DirectLBSHead,
    ManoHead,
    weak_perspective_uvd,
)
from handshape.nets.network import HandNet

CONFIGS = PACKAGE_CONFIGS
LATENT = 16


pytestmark = pytest.mark.usefixtures("single_thread")


def posed_target(hand: HandModel, batch: int, seed: int = 0) -> torch.Tensor:
    """uvd of random plausible hands seen from random directions, (B, N, 3)."""
    gen = torch.Generator().manual_seed(seed)
    pose = hand.limits.sample(batch, generator=gen, spread=0.3).float()
    pose[:, 0] = 0.6 * torch.randn(batch, 3, generator=gen)
    out = hand(pose=pose)
    camera = 0.1 * torch.randn(batch, 3, generator=gen)
    return weak_perspective_uvd(out.vertices, out.joints, camera)


def test_weak_perspective_uvd_by_hand() -> None:
    """Root at (1, 2, 3), scale bone of length 2 along x: u, v = sigma * rel / 2 + t."""
    joints = torch.zeros(1, 21, 3)
    joints[0, :] = torch.tensor([1.0, 2.0, 3.0])
    joints[0, 10] = torch.tensor([3.0, 2.0, 3.0])  # |J9 - J10| = 2
    points = torch.tensor([[[1.0, 2.0, 3.0], [3.0, 4.0, 7.0]]])
    camera = torch.tensor([[math.log(2.0), 0.1, -0.2]])  # sigma = 2 SIGMA0
    uvd = weak_perspective_uvd(points, joints, camera)
    s = 2 * SIGMA0
    expected = torch.tensor([[[0.1, -0.2, 0.0], [s * 1.0 + 0.1, s * 1.0 - 0.2, 2.0]]])
    torch.testing.assert_close(uvd, expected)


def test_both_heads_are_registered() -> None:
    assert HEADS["mano"] is ManoHead
    assert HEADS["lbs"] is DirectLBSHead


@pytest.mark.parametrize("name", ["mano", "lbs"])
def test_heads_start_from_the_upright_rest_hand(hand: HandModel, name: str) -> None:
    head = build_head(name, {"hand": hand}, latent_dim=LATENT, hidden=32)
    uvd = head(torch.randn(3, LATENT))
    assert uvd.shape == (3, hand.num_vertices, 3) and uvd.dtype == torch.float32
    flip = axis_angle_to_matrix(torch.tensor([math.pi, 0.0, 0.0])).float()
    rest = hand()
    expected = weak_perspective_uvd(
        rest.vertices.float() @ flip.T, rest.joints.float() @ flip.T, torch.zeros(1, 3)
    )
    torch.testing.assert_close(uvd, expected.expand(3, -1, -1), atol=2e-4, rtol=0)
    # upright in the image: fingertips above the wrist (v grows downwards)
    tips = uvd[0, hand.tip_vertex_ids, 1]
    assert (tips < 0).all()


def test_both_heads_start_from_the_same_turned_hand(hand: HandModel) -> None:
    """start_rotation (axis-angle, camera frame) turns the rest hand both heads start from."""
    turn = (0.1, 0.5, -1.4)
    latent = torch.randn(2, LATENT)
    mano = build_head("mano", {"hand": hand}, latent_dim=LATENT, hidden=32, start_rotation=turn)
    lbs = build_head("lbs", {"hand": hand}, latent_dim=LATENT, hidden=32, start_rotation=turn)
    rotation = axis_angle_to_matrix(torch.tensor(turn)).float()
    rest = hand()
    expected = weak_perspective_uvd(
        rest.vertices.float() @ rotation.T, rest.joints.float() @ rotation.T, torch.zeros(1, 3)
    )
    for head in (mano, lbs):
        torch.testing.assert_close(head(latent), expected.expand(2, -1, -1), atol=5e-4, rtol=0)
    upright = build_head("mano", {"hand": hand}, latent_dim=LATENT, hidden=32)
    assert (upright(latent) - expected).abs().max() > 0.1
    with pytest.raises(ValueError, match=r"start_rotation must be 3 numbers"):
        build_head("lbs", {"hand": hand}, latent_dim=LATENT, start_rotation=(1.0, 2.0))


@pytest.mark.parametrize("name", ["mano", "lbs"])
def test_head_fits_posed_hands_from_fixed_latents(hand: HandModel, name: str) -> None:
    """Each baseline learns: 150 Adam steps on 4 posed hands cut the vertex error 3x."""
    torch.manual_seed(0)
    head = build_head(name, {"hand": hand}, latent_dim=LATENT, hidden=64)
    latent = torch.randn(4, LATENT)
    target = posed_target(hand, 4)
    optimiser = torch.optim.Adam(head.parameters(), lr=3e-3)

    def error() -> float:
        with torch.no_grad():
            return (head(latent) - target).norm(dim=-1).mean().item()

    before = error()
    for _ in range(150):
        optimiser.zero_grad()
        (head(latent) - target).square().sum(-1).mean().backward()
        optimiser.step()
    assert error() < before / 3, f"{name}: {before:.3f} -> {error():.3f}"


def test_lbs_head_poses_the_template_along_its_regressed_bones(hand: HandModel) -> None:
    """IK of the regressed joints: the skinned template's bones point where the regressed
    joints' bones point (their lengths stay the template's)."""
    head = DirectLBSHead(LATENT, hand, hidden=32)
    with torch.no_grad():
        head.fc[-1].bias.normal_(0, 0.05)
    latent = torch.randn(2, LATENT)
    joints, _ = head.joints_and_camera(latent)
    pose, translation = inverse_kinematics(hand, joints.double())
    posed = hand(pose=pose, translation=translation).joints.float()
    child = [j for j, p in enumerate(JOINT_PARENTS) if p >= 0 and j not in PALM_JOINTS]
    parent = [JOINT_PARENTS[j] for j in child]
    want = torch.nn.functional.normalize(joints[:, child] - joints[:, parent], dim=-1)
    got = torch.nn.functional.normalize(posed[:, child] - posed[:, parent], dim=-1)
    assert (want * got).sum(-1).min() > 0.99
    assert torch.isfinite(head(latent)).all()


def test_mano_head_outputs_the_model_forward_of_its_parameters(hand: HandModel) -> None:
    head = ManoHead(LATENT, hand, hidden=32)
    with torch.no_grad():
        head.fc[-1].bias.normal_(0, 0.1)
    latent = torch.randn(2, LATENT)
    p = head.parameters_of(latent)
    assert p["shape"].shape == (2, hand.num_shapes) and p["pose"].shape == (2, 16, 3)
    posed = hand(shape=p["shape"], pose=p["pose"])
    torch.testing.assert_close(
        head(latent), weak_perspective_uvd(posed.vertices, posed.joints, p["camera"])
    )


def test_the_hand_model_is_not_in_the_state_dict(hand: HandModel) -> None:
    for head in (ManoHead(LATENT, hand), DirectLBSHead(LATENT, hand)):
        assert all(k.startswith("fc.") for k in head.state_dict())


def test_a_mano_layout_file_round_trips_through_the_mano_head(
    hand: HandModel, tmp_path: Path
) -> None:
    """The head on a model read back from a MANO_RIGHT.pkl-layout file equals the head on the
    model that wrote it (same weights)."""
    path = tmp_path / "MANO_RIGHT.pkl"
    write_mano(hand.data, path)
    reread = HandModel(read_mano(path))
    torch.manual_seed(0)
    a = ManoHead(LATENT, hand, hidden=32)
    b = ManoHead(LATENT, reread, hidden=32)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        a.fc[-1].bias.normal_(0, 0.1)
        b.fc[-1].bias.copy_(a.fc[-1].bias)
        latent = torch.randn(2, LATENT)
        torch.testing.assert_close(a(latent), b(latent), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["graphcnn", "mano", "lbs"])
def test_swapping_heads_is_a_config_change(hand: HandModel, name: str) -> None:
    cfg = load_experiment("tiny", [f"model.head.name={name}"], CONFIGS).model
    hierarchy = mesh_hierarchy(hand.data.faces, hand.num_vertices, levels=cfg.graph_levels)
    net = HandNet(cfg, hierarchy, hand)
    assert isinstance(net.head, HEADS[name])
    out = net(torch.rand(2, 3, cfg.input_size, cfg.input_size))
    assert out.vertices.shape == (2, hand.num_vertices, 3) and out.joints.shape == (2, 21, 3)


def test_a_parametric_head_without_a_hand_model_is_a_clear_error(hand: HandModel) -> None:
    cfg = load_experiment("tiny", ["model.head.name=mano"], CONFIGS).model
    hierarchy = mesh_hierarchy(hand.data.faces, hand.num_vertices, levels=cfg.graph_levels)
    with pytest.raises(TypeError, match="hand"):
        HandNet(cfg, hierarchy)
