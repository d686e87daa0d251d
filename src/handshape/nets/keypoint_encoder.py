"""The keypoint network's encoder: 2D keypoints (with confidences and relative depths) -> the
latent vector that every mesh head decodes.

It replaces the image network's stacked hourglass and residual encoder (``model.input:
keypoints``); heads, pose regressor, uvd output and losses stay as they are. Input: the flat
features of `handshape.data.keypoint_inputs` (B, 21 * 4 + 3). A stack of fully connected
residual blocks, as in Martinez et al.'s 2D-to-3D lifting baseline (ICCV 2017):

    Linear(F -> hidden) -> BN -> ReLU -> blocks x [Linear -> BN -> ReLU -> Linear -> BN, + skip,
    ReLU] -> Linear(hidden -> latent_dim)

with `LatentBatchNorm` (a batch of one allowed at inference; folded away by the inference copy)
and, as the image encoder's, no activation on the latent: each head applies its own.
"""

from __future__ import annotations

import torch
from torch import nn

from handshape.nets.latent_batch_norm import LatentBatchNorm

__all__ = ["KeypointEncoder"]


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(width, width),
            LatentBatchNorm(width),
            nn.ReLU(inplace=True),
            nn.Linear(width, width),
            LatentBatchNorm(width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.layers(x))


class KeypointEncoder(nn.Module):
    """Keypoint features (B, in_features) -> latent (B, latent_dim)."""

    def __init__(self, in_features: int, latent_dim: int, hidden: int = 1024, blocks: int = 2):
        super().__init__()
        if min(in_features, latent_dim, hidden) <= 0 or blocks < 0:
            raise ValueError(
                "model.keypoint_encoder: hidden and latent_dim must be positive and blocks at "
                f"least 0, got hidden={hidden}, latent_dim={latent_dim}, blocks={blocks}"
            )
        self.in_features = in_features
        self.stem = nn.Sequential(
            nn.Linear(in_features, hidden), LatentBatchNorm(hidden), nn.ReLU(inplace=True)
        )
        self.blocks = nn.Sequential(*(_Block(hidden) for _ in range(blocks)))
        self.out = nn.Linear(hidden, latent_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] != self.in_features:
            raise ValueError(
                f"keypoint features have {features.shape[-1]} values, the encoder takes "
                f"{self.in_features}"
            )
        return self.out(self.blocks(self.stem(features)))
