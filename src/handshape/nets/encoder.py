"""Residual encoder of Ge et al. (CVPR 2019, Fig. 3): heat-maps + features -> latent vector.

The last hourglass stack's heat-maps (B, J, R, R) and feature map (B, C, R, R), R = S/4, are
concatenated along channels and encoded by "a residual network that contains eight residual layers
and four max pooling layers" into the latent vector (B, L) that every head (Graph CNN, MANO, ...)
consumes. The paper gives neither the widths nor L; the defaults here (256 channels per stage,
L = 2048) are our choice and configurable.

Layout with the defaults: [res, res, max-pool] x 4 -> (B, 256, R/16, R/16) (4x4 for S = 256),
then flatten -> linear -> (B, L).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from handshape.nets.hourglass import NormFactory, Residual


class ResidualEncoder(nn.Module):
    """Encode concatenated heat-maps and features into a latent vector.

    Args:
        in_channels: channels of the concatenated input, J + C (21 + 256 for the paper).
        channels: output width of each stage; an int means 4 stages of that width (the paper's
            8 residual layers / 4 pools). A sequence gives one stage per entry.
        latent_dim: size L of the latent vector.
        input_resolution: spatial size R (= S/4) of the input; fixes the flatten size. Must be
            divisible by 2 ** number of stages. Ignored when ``global_pool`` is True.
        blocks_per_stage: residual blocks before each pooling (2 in the paper).
        global_pool: average the final map over space instead of flattening it. Flattening (the
            default) keeps where things are, which matters for regressing image-aligned vertices;
            global pooling makes the encoder resolution-agnostic and much smaller.
        norm: normalisation layer factory (BatchNorm2d default).

    Forward: (B, in_channels, R, R) -> (B, latent_dim).
    """

    def __init__(
        self,
        in_channels: int,
        channels: int | Sequence[int] = 256,
        latent_dim: int = 2048,
        input_resolution: int = 64,
        blocks_per_stage: int = 2,
        global_pool: bool = False,
        norm: NormFactory = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        widths = [channels] * 4 if isinstance(channels, int) else list(channels)
        if not widths or blocks_per_stage < 1:
            raise ValueError("need at least one stage and one block per stage")
        num_pools = len(widths)
        out_res = input_resolution // 2**num_pools
        if not global_pool and (out_res < 1 or input_resolution % 2**num_pools):
            raise ValueError(
                f"input_resolution {input_resolution} must be a positive multiple of "
                f"2**{num_pools} = {2**num_pools} when flattening"
            )
        self.in_channels = in_channels
        self.latent_dim = latent_dim
        self.input_resolution = input_resolution
        self.global_pool = global_pool

        layers: list[nn.Module] = []
        prev = in_channels
        for width in widths:
            # The first block of a stage changes the width (its skip is a 1x1 projection); the
            # rest keep it. Pooling comes after the blocks so they see the finer resolution.
            for b in range(blocks_per_stage):
                layers.append(Residual(prev if b == 0 else width, width, norm))
            layers.append(nn.MaxPool2d(2))
            prev = width
        # Pre-activation blocks leave their sum un-normalised; a final BN-ReLU (as in pre-act
        # ResNets) normalises it before the linear read-out.
        layers += [norm(prev), nn.ReLU(inplace=True)]
        if global_pool:
            layers.append(nn.AdaptiveAvgPool2d(1))
            flat = prev
        else:
            flat = prev * out_res * out_res
        layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        # No activation on the latent: each head applies its own first layer + non-linearity.
        self.fc = nn.Linear(flat, latent_dim)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, R, R) -> (B, latent_dim)."""
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape[1]}")
        if not self.global_pool and tuple(x.shape[-2:]) != (self.input_resolution,) * 2:
            # The linear layer's size was fixed by input_resolution; fail with a clear message.
            raise ValueError(
                f"expected {self.input_resolution}x{self.input_resolution} input, "
                f"got {tuple(x.shape[-2:])}"
            )
        return self.fc(self.features(x))
