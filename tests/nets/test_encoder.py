"""Specification tests for the residual encoder (Ge et al. 2019, Fig. 3)."""

import pytest
import torch
from torch import nn

from handshape.nets.encoder import ResidualEncoder
from handshape.nets.hourglass import Residual, StackedHourglass


@pytest.mark.parametrize("resolution", [32, 64])
def test_latent_shape_for_both_resolutions(resolution: int) -> None:
    enc = ResidualEncoder(21 + 16, channels=16, latent_dim=128, input_resolution=resolution)
    z = enc(torch.rand(2, 21 + 16, resolution, resolution))
    assert z.shape == (2, 128)


def test_paper_layout_has_eight_residual_layers_and_four_pools() -> None:
    enc = ResidualEncoder(21 + 256)
    mods = list(enc.features)
    assert sum(isinstance(m, Residual) for m in mods) == 8
    assert sum(isinstance(m, nn.MaxPool2d) for m in mods) == 4
    # Default S/4 = 64 -> 4x4 after four pools, 256 channels flattened.
    assert enc.fc.in_features == 256 * 4 * 4
    assert enc.fc.out_features == 2048


def test_channel_list_and_global_pool() -> None:
    enc = ResidualEncoder(10, channels=[8, 16, 32], latent_dim=7, input_resolution=24)
    assert enc(torch.rand(2, 10, 24, 24)).shape == (2, 7)
    pooled = ResidualEncoder(10, channels=8, latent_dim=5, global_pool=True)
    # Global pooling makes the encoder independent of the input size.
    assert pooled(torch.rand(2, 10, 32, 32)).shape == (2, 5)
    assert pooled(torch.rand(2, 10, 48, 48)).shape == (2, 5)


def test_wrong_input_is_rejected_clearly() -> None:
    enc = ResidualEncoder(37, channels=8, latent_dim=4, input_resolution=32)
    with pytest.raises(ValueError, match="input channels"):
        enc(torch.rand(1, 36, 32, 32))
    with pytest.raises(ValueError, match="32x32"):
        enc(torch.rand(1, 37, 64, 64))
    with pytest.raises(ValueError):
        ResidualEncoder(37, channels=8, input_resolution=40)


def test_gradients_flow_from_latent_to_first_hourglass_conv() -> None:
    torch.manual_seed(0)
    hg = StackedHourglass(num_stacks=2, channels=16)
    enc = ResidualEncoder(21 + 16, channels=16, latent_dim=32, input_resolution=32)
    heatmaps, features = hg(torch.rand(2, 3, 128, 128))
    z = enc(torch.cat([heatmaps[-1], features], dim=1))
    z.square().sum().backward()
    grad = hg.stem[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0
    # Both stacks receive gradient from the latent alone (stack 1 through the re-injection path).
    for hourglass in hg.hourglasses:
        g = hourglass.up[0].body[2].weight.grad
        assert g is not None and g.abs().sum() > 0


def test_eval_mode_deterministic_and_batch_of_one() -> None:
    torch.manual_seed(0)
    enc = ResidualEncoder(21 + 16, channels=16, latent_dim=64, input_resolution=32)
    enc(torch.rand(4, 37, 32, 32))  # update BatchNorm running statistics
    enc.eval()
    x = torch.rand(3, 37, 32, 32)
    with torch.no_grad():
        z1 = enc(x)
        z2 = enc(x)
        z_single = enc(x[2:3])
    assert torch.equal(z1, z2)
    assert z_single.shape == (1, 64)
    assert torch.allclose(z_single, z1[2:3], atol=1e-5)


def test_batch_of_one_in_training_mode_works() -> None:
    # BatchNorm needs more than one value per channel in training; with a batch of 1 the spatial
    # positions supply them (the smallest map is 4x4 here), so a batch of 1 still trains.
    enc = ResidualEncoder(21 + 16, channels=16, latent_dim=8, input_resolution=64)
    assert enc(torch.rand(1, 37, 64, 64)).shape == (1, 8)
