"""Specification of the linear Graph CNN pose regressor (Sec. 4.2 of the paper)."""

from __future__ import annotations

import pytest
import torch

from handshape.geometry.hierarchy import MeshHierarchy
from handshape.nets.mesh_cheb_conv import MeshChebConv
from handshape.nets.pose_regressor import PAPER_POSE_STAGES, PoseRegressor

pytestmark = pytest.mark.usefixtures("single_thread")


def make(hierarchy: MeshHierarchy, seed: int = 0, dtype=torch.float32, **kwargs) -> PoseRegressor:
    torch.manual_seed(seed)
    regressor = PoseRegressor(hierarchy, **kwargs).to(dtype)
    if kwargs.get("bias", True):
        # ChebConv biases start at zero; make them matter for the affine tests.
        with torch.no_grad():
            for conv in regressor.convs:
                conv.bias.normal_()
    return regressor


def random_vertices(batch: int, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1050, 3, generator=generator, dtype=dtype)


def test_default_is_the_paper_arrangement(hierarchy: MeshHierarchy) -> None:
    regressor = PoseRegressor(hierarchy)
    assert regressor.stages == PAPER_POSE_STAGES
    layout = [(c.level, c.in_channels, c.out_channels, len(c.lins)) for c in regressor.convs]
    assert layout == [(0, 3, 32, 3), (0, 32, 32, 3), (2, 32, 64, 3), (2, 64, 64, 3)]
    pools = [(m.level_from, m.times) for m in regressor.graph if type(m).__name__ == "_Pool"]
    assert pools == [(0, 2), (2, 2)]  # two pooling layers: 1280 -> 320 -> 80 slots
    assert regressor.out_level == 4
    assert (regressor.fc.in_features, regressor.fc.out_features) == (80 * 64, 63)
    # "without nonlinear activation" (linearity itself is tested below)
    activations = (
        torch.nn.ReLU, torch.nn.LeakyReLU, torch.nn.PReLU, torch.nn.ELU, torch.nn.GELU,
        torch.nn.SiLU, torch.nn.Sigmoid, torch.nn.Tanh, torch.nn.Softplus, torch.nn.BatchNorm1d,
    )  # fmt: skip
    assert not any(isinstance(m, activations) for m in regressor.modules())


@pytest.mark.parametrize("batch", [1, 4])
def test_shapes(hierarchy: MeshHierarchy, batch: int) -> None:
    regressor = make(hierarchy)
    joints = regressor(random_vertices(batch, torch.float32))
    assert joints.shape == (batch, 21, 3)
    assert joints.dtype == torch.float32
    assert torch.isfinite(joints).all()
    assert make(hierarchy, num_joints=16)(random_vertices(batch, torch.float32)).shape == (
        batch,
        16,
        3,
    )


def test_bias_free_regressor_is_linear(hierarchy: MeshHierarchy) -> None:
    f = make(hierarchy, dtype=torch.float64, bias=False)
    assert all(conv.bias is None for conv in f.convs) and f.fc.bias is None
    x, y = random_vertices(2, seed=1), random_vertices(2, seed=2)
    a, b = 0.7, -2.3
    torch.testing.assert_close(f(a * x + b * y), a * f(x) + b * f(y), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(f(torch.zeros_like(x)), torch.zeros(2, 21, 3, dtype=torch.float64))


def test_regressor_with_bias_is_affine(hierarchy: MeshHierarchy) -> None:
    f = make(hierarchy, dtype=torch.float64, bias=True)
    x, y = random_vertices(2, seed=3), random_vertices(2, seed=4)
    zero = torch.zeros_like(x)
    assert f(zero).abs().max() > 1e-3  # the bias is really there...
    # ...and nothing else breaks linearity: f(x + y) - f(y) = f(x) - f(0)
    torch.testing.assert_close(f(x + y) - f(y), f(x) - f(zero), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(f(2.5 * x) - f(zero), 2.5 * (f(x) - f(zero)), rtol=1e-10, atol=1e-10)


def test_values_at_fake_slots_are_ignored(hierarchy: MeshHierarchy) -> None:
    f = make(hierarchy, dtype=torch.float64)
    padded = hierarchy.pad_signal(random_vertices(3, seed=5))
    fake = torch.from_numpy(~hierarchy.is_real[0]).view(1, -1, 1)
    assert fake.any()
    noisy = torch.where(fake, 1e3 * torch.randn_like(padded), padded)
    torch.testing.assert_close(f.forward_padded(noisy), f.forward_padded(padded), rtol=0, atol=0)


def test_pooling_is_a_mean_over_real_children(hierarchy: MeshHierarchy) -> None:
    """A constant signal on the real vertices stays constant through every (mean) pooling."""
    regressor = make(hierarchy, dtype=torch.float64, stages=[(4, ())], bias=False)
    captured: list[torch.Tensor] = []
    regressor.graph.register_forward_hook(lambda m, args, out: captured.append(out))
    regressor(torch.ones(1, 1050, 3, dtype=torch.float64))
    (pooled,) = captured
    assert pooled.shape == (80, 1, 3)  # node-major inside the regressor
    torch.testing.assert_close(pooled, torch.ones_like(pooled))


def test_gradients_reach_parameters_and_vertices(hierarchy: MeshHierarchy) -> None:
    regressor = make(hierarchy)
    vertices = random_vertices(2, torch.float32).requires_grad_()
    regressor(vertices).square().mean().backward()
    for name, param in regressor.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
    assert vertices.grad is not None and vertices.grad.abs().sum() > 0


def test_regressor_composes_with_the_head(hierarchy: MeshHierarchy) -> None:
    from handshape.nets.heads import build_head

    torch.manual_seed(0)
    head = build_head("graphcnn", latent_dim=16, hierarchy=hierarchy, fc_hidden=32)
    regressor = PoseRegressor(hierarchy)
    latent = torch.randn(2, 16)
    joints = regressor(head(latent))
    assert joints.shape == (2, 21, 3)
    joints.sum().backward()
    assert head.fc[0].weight.grad is not None


def test_invalid_arguments_are_rejected(hierarchy: MeshHierarchy) -> None:
    with pytest.raises(ValueError):
        PoseRegressor(hierarchy, stages=[(3, (8,)), (3, (8,))])
    with pytest.raises(ValueError):
        PoseRegressor(hierarchy, num_joints=0)
    regressor = PoseRegressor(hierarchy)
    with pytest.raises(ValueError):
        regressor(torch.randn(2, 1000, 3))
    with pytest.raises(ValueError):
        regressor.forward_padded(torch.randn(2, 1280, 4))


def test_convolutions_are_mesh_cheb_convs(hierarchy: MeshHierarchy) -> None:
    regressor = PoseRegressor(hierarchy, K=2)
    assert all(isinstance(c, MeshChebConv) and len(c.lins) == 2 for c in regressor.convs)
