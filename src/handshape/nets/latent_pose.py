"""Joints straight from the latent vector, without a mesh: the pose-only networks of Fig. 8.

Ge et al. (CVPR 2019, Sec. 5.2) compare estimating the pose through the mesh (image -> heat-maps
and features -> latent -> mesh -> linear pose regressor) with regressing it directly: "Baseline 1"
maps the latent vector of the same encoder to the 3D joints, and "task transfer" trains such a
regressor on the latent vector of a network trained for the mesh, to see how much of the pose
that latent vector holds. `LatentPoseRegressor` is that map; the network uses it when
``model.pose_from: latent`` (see `handshape.nets.network`).

    (B, L) latent -> Linear(L -> hidden) -> batch norm -> ReLU -> Linear(hidden -> 63) -> (B, 21, 3)

The output is uvd, as every head's and the mesh pose regressor's. The last layer starts at zero
(all joints at the crop centre, at the root's depth) for the reason the Graph CNN head's does:
random output weights make the first losses huge and the early updates erratic.
"""

from __future__ import annotations

import torch
from torch import nn

from handshape.nets.latent_batch_norm import LatentBatchNorm

__all__ = ["LatentPoseRegressor"]


class LatentPoseRegressor(nn.Module):
    """Latent vector (B, latent_dim) -> joints (B, num_joints, 3) in uvd, by two FC layers."""

    def __init__(self, latent_dim: int, num_joints: int = 21, hidden: int = 512) -> None:
        super().__init__()
        for name, value in (("latent_dim", latent_dim), ("num_joints", num_joints)):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if hidden <= 0:
            raise ValueError(f"model.latent_pose.hidden must be positive, got {hidden}")
        self.num_joints = num_joints
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            LatentBatchNorm(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_joints * 3),
        )
        nn.init.zeros_(self.fc[-1].weight)
        nn.init.zeros_(self.fc[-1].bias)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.fc(latent).view(-1, self.num_joints, 3)
