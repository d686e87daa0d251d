"""Specification tests for the stacked hourglass (Newell et al. 2016 as used by Ge et al. 2019)."""

import pytest
import torch
from torch import nn

from handshape.nets.hourglass import Hourglass, Residual, StackedHourglass


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("size", "stacks", "channels"),
    [(128, 1, 32), (128, 2, 32), (256, 2, 16)],
)
def test_output_shapes_and_one_heatmap_per_stack(size: int, stacks: int, channels: int) -> None:
    torch.manual_seed(0)
    net = StackedHourglass(num_stacks=stacks, channels=channels)
    heatmaps, features = net(torch.rand(2, 3, size, size))
    assert isinstance(heatmaps, list)
    assert len(heatmaps) == stacks
    for h in heatmaps:
        assert h.shape == (2, 21, size // 4, size // 4)
    assert features.shape == (2, channels, size // 4, size // 4)


def test_num_joints_and_depth_are_respected() -> None:
    net = StackedHourglass(num_stacks=1, channels=16, num_joints=5, depth=2, blocks_per_level=2)
    heatmaps, features = net(torch.rand(1, 3, 64, 64))
    assert heatmaps[0].shape == (1, 5, 16, 16)
    assert features.shape == (1, 16, 16, 16)


def test_residual_and_hourglass_keep_spatial_size() -> None:
    block = Residual(8, 12)
    assert block(torch.rand(2, 8, 10, 10)).shape == (2, 12, 10, 10)
    hg = Hourglass(8, depth=3)
    assert hg(torch.rand(2, 8, 16, 16)).shape == (2, 8, 16, 16)


def test_residual_with_identity_norm_does_not_corrupt_its_input() -> None:
    # A parameter-free norm must not let an in-place ReLU overwrite the skip branch.
    block = Residual(4, 4, norm=lambda c: nn.Identity())
    x = torch.randn(1, 4, 6, 6)
    x_copy = x.clone()
    y = block(x)
    assert torch.equal(x, x_copy)
    assert torch.allclose(y, x + block.body(x_copy))


def test_gradients_reach_the_stem_from_every_stack() -> None:
    torch.manual_seed(0)
    net = StackedHourglass(num_stacks=2, channels=16)
    heatmaps, _ = net(torch.rand(2, 3, 64, 64))
    first_conv = net.stem[0]
    for h in heatmaps:
        net.zero_grad()
        h.square().mean().backward(retain_graph=True)
        assert first_conv.weight.grad is not None
        assert first_conv.weight.grad.abs().sum() > 0


def test_eval_mode_is_deterministic_and_batch_independent() -> None:
    torch.manual_seed(0)
    net = StackedHourglass(num_stacks=2, channels=16)
    # One training step so BatchNorm running statistics are not the trivial initial ones.
    net(torch.rand(4, 3, 64, 64))
    net.eval()
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        h1, f1 = net(x)
        h2, f2 = net(x)
        h_single, f_single = net(x[1:2])  # batch of 1 in eval mode
    for a, b in zip(h1, h2, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(f1, f2)
    assert torch.allclose(h_single[-1], h1[-1][1:2], atol=1e-5)
    assert torch.allclose(f_single, f1[1:2], atol=1e-5)


def test_paper_sized_parameter_count_is_plausible() -> None:
    # Newell et al.'s 8-stack, 256-channel network has ~25 M parameters, ~3.1 M per stack plus a
    # small stem; two stacks therefore land around 6.5 M (measured: 6,565,994).
    net = StackedHourglass(num_stacks=2, channels=256)
    n = _n_params(net)
    assert 5_500_000 < n < 8_000_000, n
    one_stack = _n_params(StackedHourglass(num_stacks=1, channels=256))
    per_stack = n - one_stack
    assert 2_500_000 < per_stack < 4_000_000, per_stack


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        StackedHourglass(num_stacks=0)
    with pytest.raises(ValueError):
        StackedHourglass(channels=30)
    with pytest.raises(ValueError):
        Hourglass(16, depth=0)
