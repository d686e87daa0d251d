"""Specification of the Graph CNN mesh head (paper Fig. 4), its convolution and the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.nn import ChebConv

from handshape.geometry.hierarchy import MeshHierarchy
from handshape.handmodel.model import HandModel
from handshape.nets.heads import HEADS, build_head, register_head
from handshape.nets.heads.graphcnn import ONE_LEVEL_STAGES, PAPER_STAGES, GraphCNNHead
from handshape.nets.mesh_cheb_conv import MeshChebConv
from handshape.nets.node_batch_norm import NodeBatchNorm

LATENT = 32


pytestmark = pytest.mark.usefixtures("single_thread")


def make_head(hierarchy: MeshHierarchy, seed: int = 0, **kwargs) -> GraphCNNHead:
    torch.manual_seed(seed)
    kwargs.setdefault("fc_hidden", 64)
    return GraphCNNHead(LATENT, hierarchy, **kwargs)


def chebyshev_dense(x: np.ndarray, L_tilde: np.ndarray, thetas: list[np.ndarray]) -> np.ndarray:
    """Eq. 1 of the paper: sum_k T_k(L~) x theta_k for one graph signal x (S, C_in)."""
    T = [x, L_tilde @ x]
    while len(T) < len(thetas):
        T.append(2 * L_tilde @ T[-1] - T[-2])
    return sum(t @ theta for t, theta in zip(T, thetas, strict=False))


# ---- the hierarchy the head is designed for -------------------------------------------------


def test_hand_hierarchy_matches_the_paper_sizes(hierarchy: MeshHierarchy) -> None:
    assert hierarchy.levels == 4
    assert hierarchy.num_slots[4] == 80
    assert hierarchy.num_slots[0] == 1280
    assert hierarchy.num_vertices == 1050


# ---- MeshChebConv ---------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0, 2, 4])
def test_mesh_cheb_conv_matches_torch_geometric_cheb_conv(
    hierarchy: MeshHierarchy, level: int
) -> None:
    torch.manual_seed(level)
    conv = MeshChebConv(hierarchy, level, 5, 4, K=3).double()
    reference = ChebConv(5, 4, K=3, normalization="sym").double()
    reference.load_state_dict(conv.state_dict())
    with torch.no_grad():
        conv.bias.normal_()
        reference.bias.copy_(conv.bias)
    x = torch.randn(3, hierarchy.num_slots[level], 5, dtype=torch.float64)
    lambda_max = torch.tensor(hierarchy.lambda_max[level], dtype=torch.float64)
    expected = torch.stack(
        [
            reference(
                xi,
                hierarchy.edge_index[level],
                hierarchy.edge_weight[level].double(),
                lambda_max=lambda_max,
            )
            for xi in x
        ]
    )
    torch.testing.assert_close(conv(x), expected, rtol=1e-12, atol=1e-12)


def test_mesh_cheb_conv_is_equation_1_on_real_nodes(hierarchy: MeshHierarchy) -> None:
    level = 1
    torch.manual_seed(1)
    conv = MeshChebConv(hierarchy, level, 3, 2, K=3, bias=False).double()
    x = torch.randn(hierarchy.num_slots[level], 3, dtype=torch.float64)
    thetas = [lin.weight.detach().numpy().T for lin in conv.lins]
    L_tilde = hierarchy.rescaled_laplacian(level).toarray()
    expected = chebyshev_dense(x.numpy(), L_tilde, thetas)
    real = hierarchy.is_real[level]
    out = conv(x).detach().numpy()
    np.testing.assert_allclose(out[real], expected[real], rtol=1e-10, atol=1e-10)


def test_mesh_cheb_conv_accepts_unbatched_and_rejects_wrong_sizes(
    hierarchy: MeshHierarchy,
) -> None:
    conv = MeshChebConv(hierarchy, 3, 4, 6)
    x = torch.randn(2, 160, 4)
    torch.testing.assert_close(conv(x[1]), conv(x)[1])
    with pytest.raises(ValueError, match="160"):
        conv(torch.randn(2, 320, 4))
    with pytest.raises(ValueError, match="level"):
        MeshChebConv(hierarchy, 5, 4, 6)


def test_mesh_cheb_conv_state_dict_holds_only_weights(hierarchy: MeshHierarchy) -> None:
    keys = set(MeshChebConv(hierarchy, 0, 3, 4).state_dict())
    assert keys == {"bias", "lins.0.weight", "lins.1.weight", "lins.2.weight"}


def test_laplacian_built_in_inference_mode_still_trains(hierarchy: MeshHierarchy) -> None:
    conv = MeshChebConv(hierarchy, 2, 3, 3)
    x = torch.randn(2, 320, 3)
    with torch.inference_mode():
        conv(x)
    conv(x).square().sum().backward()
    assert all(p.grad is not None for p in conv.parameters())


# ---- GraphCNNHead: arrangement and shapes ---------------------------------------------------


def test_default_head_is_the_paper_arrangement(hierarchy: MeshHierarchy) -> None:
    head = GraphCNNHead(512, hierarchy)
    assert head.stages == PAPER_STAGES
    assert head.coarse_level == 4
    assert head.num_coarse == 80
    fc = [m for m in head.fc if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in fc] == [(512, 512), (512, 80 * 64)]
    upsamples = [m.times for m in head.decoder if type(m).__name__ == "_Upsample"]
    assert upsamples == [2, 2]  # two upsampling layers, x4 each: 80 -> 320 -> 1280
    layout = [(c.level, c.in_channels, c.out_channels, len(c.lins)) for c in head.convs]
    assert layout == [(2, 64, 64, 3), (2, 64, 32, 3), (0, 32, 32, 3), (0, 32, 3, 3)]
    relus = sum(isinstance(m, torch.nn.ReLU) for m in head.decoder)
    assert relus == 3  # between the convolutions, none after the output


@pytest.mark.parametrize("batch", [1, 4])
def test_head_shapes(hierarchy: MeshHierarchy, batch: int) -> None:
    head = make_head(hierarchy)
    latent = torch.randn(batch, LATENT)
    coarse = head.coarse(latent)
    assert coarse.shape == (batch, 80, 64)
    padded = head.decode(coarse)
    assert padded.shape == (batch, 1280, 3)
    vertices = head(latent)
    assert vertices.shape == (batch, 1050, 3)
    assert vertices.dtype == torch.float32
    assert torch.isfinite(vertices).all()
    torch.testing.assert_close(vertices, hierarchy.unpad_signal(padded))


def test_head_batch_items_are_independent_at_inference(hierarchy: MeshHierarchy) -> None:
    """Batch normalisation couples the items of a training batch; in eval mode it must not."""
    head = make_head(hierarchy)
    _randomise_output(head)
    head.train()
    head(torch.randn(8, LATENT))  # running statistics that differ from the initial ones
    head.eval()
    latent = torch.randn(4, LATENT)
    batched = head(latent)
    single = torch.cat([head(latent[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)


def test_one_level_per_stage_arrangement(hierarchy: MeshHierarchy) -> None:
    head = make_head(hierarchy, stages=ONE_LEVEL_STAGES)
    assert head.coarse_level == 4
    layout = [(c.level, c.in_channels, c.out_channels) for c in head.convs]
    assert layout == [(3, 64, 64), (2, 64, 32), (1, 32, 16), (0, 16, 8), (0, 8, 3)]
    assert head(torch.randn(2, LATENT)).shape == (2, 1050, 3)


def test_shorter_stages_start_from_a_finer_coarse_level(hierarchy: MeshHierarchy) -> None:
    head = make_head(hierarchy, stages=[(1, [16]), (2, [8])])
    assert head.coarse_level == 3
    assert head.num_coarse == 160
    assert head(torch.randn(2, LATENT)).shape == (2, 1050, 3)


@pytest.mark.parametrize(
    "stages",
    [
        [],
        [(3, (8,)), (2, (8,))],  # five levels, the hierarchy has four
        [(-1, (8,))],
        [(2, (0,))],
        [(2,)],
    ],
)
def test_invalid_stages_are_rejected(hierarchy: MeshHierarchy, stages) -> None:
    with pytest.raises(ValueError):
        make_head(hierarchy, stages=stages)


def test_wrong_latent_size_is_rejected(hierarchy: MeshHierarchy) -> None:
    head = make_head(hierarchy)
    with pytest.raises(ValueError, match=str(LATENT)):
        head(torch.randn(2, LATENT + 1))


def test_head_runs_in_float64(hierarchy: MeshHierarchy) -> None:
    head = make_head(hierarchy).double()
    out = head(torch.randn(2, LATENT, dtype=torch.float64))
    assert out.dtype == torch.float64
    out32 = make_head(hierarchy)(torch.randn(2, LATENT))
    assert out32.dtype == torch.float32


# ---- fake nodes -----------------------------------------------------------------------------


def _fake_mask(hierarchy: MeshHierarchy, level: int, node_dim: int = -2) -> torch.Tensor:
    """True at fake slots, shaped to broadcast against (B, S_l, C), or (S_l, B, C) if node_dim=0."""
    fake = torch.from_numpy(~hierarchy.is_real[level])
    return fake.view(-1, 1, 1) if node_dim == 0 else fake.view(1, -1, 1)


def test_fake_nodes_never_reach_real_outputs(hierarchy: MeshHierarchy) -> None:
    """Overwriting every intermediate signal at fake slots leaves the vertices unchanged."""
    head = make_head(hierarchy)
    _randomise_output(head)
    latent = torch.randn(3, LATENT)
    clean = head(latent)

    def corrupt(module: MeshChebConv, args, output: torch.Tensor) -> torch.Tensor:
        fake = _fake_mask(hierarchy, module.level, module.node_dim)
        assert fake.any()  # levels 0-3 of the hand hierarchy all have fake slots
        return torch.where(fake, 1e6 * torch.randn_like(output), output)

    handles = [conv.register_forward_hook(corrupt) for conv in head.convs]
    try:
        corrupted = head(latent)
    finally:
        for handle in handles:
            handle.remove()
    torch.testing.assert_close(corrupted, clean, rtol=0, atol=0)


def test_real_outputs_have_no_gradient_at_fake_nodes(hierarchy: MeshHierarchy) -> None:
    """d(real vertices)/d(features) is exactly 0 at fake slots of every level, not at real ones."""
    head = make_head(hierarchy)
    _randomise_output(head)
    captured: list[tuple[int, torch.Tensor]] = []

    def capture(module: MeshChebConv, args) -> None:
        assert module.node_dim == 0  # the head runs node-major: (S_l, B, C)
        captured.append((module.level, args[0]))

    handles = [conv.register_forward_pre_hook(capture) for conv in head.convs]
    try:
        vertices = head(torch.randn(2, LATENT))
    finally:
        for handle in handles:
            handle.remove()
    grads = torch.autograd.grad(vertices.square().sum(), [x for _, x in captured])
    assert sorted({level for level, _ in captured}) == [0, 2]
    for (level, _), grad in zip(captured, grads, strict=True):
        fake = _fake_mask(hierarchy, level, node_dim=0).expand_as(grad)
        assert torch.count_nonzero(grad[fake]) == 0
        assert torch.count_nonzero(grad[~fake]) > 0


# ---- training -------------------------------------------------------------------------------


def test_output_starts_as_a_point_at_the_crop_centre(hierarchy: MeshHierarchy) -> None:
    """The output convolution starts with zero weights and bias: every vertex at uvd = 0, so the
    mesh losses start small instead of from random noise."""
    head = make_head(hierarchy)
    out = head(torch.randn(4, LATENT))
    assert torch.count_nonzero(out) == 0


def test_batch_norm_follows_every_hidden_convolution(hierarchy: MeshHierarchy) -> None:
    norms = [m for m in make_head(hierarchy).decoder if isinstance(m, NodeBatchNorm)]
    assert len(norms) == len(make_head(hierarchy).convs) - 1
    plain = make_head(hierarchy, batch_norm=False)
    assert not any(isinstance(m, NodeBatchNorm) for m in plain.decoder)


def test_node_batch_norm_uses_real_nodes_only(hierarchy: MeshHierarchy) -> None:
    norm = NodeBatchNorm(hierarchy, 2, 5)
    x = torch.randn(3, hierarchy.num_slots[2], 5)
    fake = _fake_mask(hierarchy, 2)
    out = norm(torch.where(fake, 1e6, x))
    real = out[:, ~fake[0, :, 0]]
    torch.testing.assert_close(real.mean(dim=(0, 1)), torch.zeros(5), atol=1e-5, rtol=0)
    std = real.std(dim=(0, 1), unbiased=False)
    torch.testing.assert_close(std, torch.ones(5), atol=1e-3, rtol=0)
    assert torch.count_nonzero(out[:, fake[0, :, 0]]) == 0


def test_a_batch_of_one_trains(hierarchy: MeshHierarchy) -> None:
    """A lone sample has no batch variance: the FC normalisation falls back to running stats."""
    head = make_head(hierarchy)
    _randomise_output(head)
    head(torch.randn(1, LATENT)).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())


def _randomise_output(head: GraphCNNHead) -> None:
    """Give the zero-initialised output convolution random weights (for tests that need the
    output to depend on the input)."""
    with torch.no_grad():
        for lin in head.convs[-1].lins:
            lin.weight.normal_(0, 0.1)


def test_gradients_reach_every_parameter(hierarchy: MeshHierarchy) -> None:
    head = make_head(hierarchy)
    _randomise_output(head)
    latent = torch.randn(2, LATENT, requires_grad=True)
    head(latent).square().mean().backward()
    for name, param in head.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
    assert latent.grad is not None and latent.grad.abs().sum() > 0


def test_head_overfits_a_fixed_mesh(hand: HandModel, hierarchy: MeshHierarchy) -> None:
    """From a fixed latent, 200 Adam steps fit the template mesh in uvd-like coordinates."""
    template = torch.as_tensor(hand.data.v_template, dtype=torch.float32)
    centred = template - template.mean(dim=0)
    target = (centred / centred.abs().max()).unsqueeze(0)  # coordinates in [-1, 1]
    head = make_head(hierarchy, seed=0)  # the paper's arrangement, a narrower first FC
    latent = torch.randn(1, LATENT, generator=torch.Generator().manual_seed(0))
    optimiser = torch.optim.Adam(head.parameters(), lr=3e-3)
    initial = (head(latent) - target).norm(dim=-1).mean().item()
    for _ in range(200):
        optimiser.zero_grad()
        loss = (head(latent) - target).square().sum(dim=-1).mean()
        loss.backward()
        optimiser.step()
    error = (head(latent) - target).norm(dim=-1).mean().item()
    assert initial > 0.5
    # about 0.04 (2 % of the hand's extent) with these seeds
    assert error < 0.06, f"mean vertex error {error:.4f} after 200 steps (from {initial:.3f})"


# ---- registry -------------------------------------------------------------------------------


def test_build_head_graphcnn(hierarchy: MeshHierarchy) -> None:
    assert HEADS["graphcnn"] is GraphCNNHead
    head = build_head("graphcnn", latent_dim=LATENT, hierarchy=hierarchy, fc_hidden=64)
    assert isinstance(head, GraphCNNHead)
    assert head(torch.randn(1, LATENT)).shape == (1, 1050, 3)


def test_unknown_head_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown head 'nope'.*graphcnn"):
        build_head("nope", latent_dim=LATENT)


def test_register_head_refuses_to_rebind_a_name() -> None:
    with pytest.raises(ValueError, match="graphcnn"):
        register_head("graphcnn")(torch.nn.Identity)
    assert register_head("graphcnn")(GraphCNNHead) is GraphCNNHead  # idempotent
    assert HEADS["graphcnn"] is GraphCNNHead


def test_register_head_adds_a_buildable_head() -> None:
    name = "test-identity-head"
    try:

        @register_head(name)
        class Dummy(torch.nn.Module):
            def __init__(self, latent_dim: int) -> None:
                super().__init__()
                self.latent_dim = latent_dim

        head = build_head(name, latent_dim=7)
        assert isinstance(head, Dummy) and head.latent_dim == 7
    finally:
        HEADS.pop(name, None)
