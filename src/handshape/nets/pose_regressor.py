"""The 3D pose regressor of Ge et al. (CVPR 2019, Sec. 4.2): mesh vertices -> 21 joints, linearly.

"Considering that 3D joint locations can be estimated directly from the 3D mesh vertices using a
linear regressor, we adopt a simplified Graph CNN with two pooling layers and without nonlinear
activation to linearly regress the scale-invariant and root-relative 3D hand joint locations
from 3D coordinates of hand mesh vertices."

Layout, as per-stage ``(pool_times, conv_channels)`` pairs: each stage applies one Chebyshev
convolution (K = 3, no activation) per entry of ``conv_channels`` at the current level, then
pools ``pool_times`` levels towards the coarsest, averaging the real children of every slot
(`MeshHierarchy.pool` with ``reduce="mean"``); one linear layer maps the flattened pooled
features to the joints. `PAPER_POSE_STAGES` (the default) follows the authors' released code:

    (B, 1280, 3) at level 0 -> Cheb(3 -> 32) -> Cheb(32 -> 32) -> pool x4 (level 2, 320 slots)
    -> Cheb(32 -> 64) -> Cheb(64 -> 64) -> pool x4 (level 4, 80 slots) -> Linear(80 * 64 -> 63)

Two deliberate differences from that code keep the map linear, as the paper states: pooling is
a mean (the code used max pooling), and the two bias-free FC layers (5120 -> 512 -> 63) are one
linear layer. With ``bias=True`` the regressor is affine; with ``bias=False`` linear.

Inputs and outputs use the uvd convention of `handshape.nets` (u, v in [-1, 1], d root-relative
and scale-normalised).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from handshape.geometry.hierarchy import MeshHierarchy
from handshape.nets.mesh_cheb_conv import MeshChebConv
from handshape.nets.stages import Stage, validate_stages

__all__ = ["PAPER_POSE_STAGES", "PoseRegressor"]

PAPER_POSE_STAGES: tuple[Stage, ...] = ((2, (32, 32)), (2, (64, 64)))


class _Pool(nn.Module):
    """Mean of the real children of every slot, ``times`` levels up (no parameters).

    Node-major: (S_l, B, C) -> (S_{l + times}, B, C).
    """

    def __init__(self, hierarchy: MeshHierarchy, level_from: int, times: int) -> None:
        super().__init__()
        self.hierarchy = hierarchy
        self.level_from = level_from
        self.times = times

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.times:
            return x
        out = self.hierarchy.pool(x.flatten(1), self.level_from, self.times, reduce="mean")
        return out.view(out.shape[0], *x.shape[1:])

    def extra_repr(self) -> str:
        return f"level_from={self.level_from}, times={self.times} (/{2**self.times}), mean"


class PoseRegressor(nn.Module):
    """Linear (or affine) Graph CNN regressing joints from mesh vertices.

    Args:
        hierarchy: the coarsening hierarchy of the input mesh (`mesh_hierarchy`).
        num_joints: J, the joints to regress (21).
        stages: per-stage ``(pool_times, conv_channels)``; see the module docstring.
        in_channels: features per vertex (3: u, v, d).
        K: Chebyshev order of every convolution.
        bias: learn additive biases (then the map is affine rather than linear).

    Attributes:
        out_level: the level after the last pooling (4 for the paper).
    """

    def __init__(
        self,
        hierarchy: MeshHierarchy,
        num_joints: int = 21,
        stages: Sequence[Stage] = PAPER_POSE_STAGES,
        in_channels: int = 3,
        K: int = 3,
        bias: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("num_joints", num_joints), ("in_channels", in_channels), ("K", K)):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        self.hierarchy = hierarchy
        self.stages = validate_stages(stages, hierarchy.levels)
        self.num_joints = num_joints
        self.in_channels = in_channels

        layers: list[nn.Module] = []
        level, channels = 0, in_channels
        for times, conv_channels in self.stages:
            for c in conv_channels:
                layers.append(
                    MeshChebConv(hierarchy, level, channels, c, K=K, bias=bias, node_dim=0)
                )
                channels = c
            layers.append(_Pool(hierarchy, level, times))
            level += times
        # Node-major inside, (S_l, B, C), as in the Graph CNN head.
        self.graph = nn.Sequential(*layers)
        self.out_level = level
        self.out_features = channels
        self.fc = nn.Linear(hierarchy.num_slots[level] * channels, num_joints * 3, bias=bias)

    @property
    def convs(self) -> list[MeshChebConv]:
        """The graph convolutions in order."""
        return [m for m in self.graph if isinstance(m, MeshChebConv)]

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S_0, in_channels) vertices in finest-slot order -> (B, J, 3) joints.

        Values at fake slots do not matter: fake nodes are isolated and pooling skips them.
        """
        expected = (self.hierarchy.num_slots[0], self.in_channels)
        if x.dim() != 3 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"expected (B, {expected[0]}, {expected[1]}), got {tuple(x.shape)}")
        return self._regress(x.transpose(0, 1))

    def forward(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, N, in_channels) vertices in the mesh's vertex order (uvd) -> (B, J, 3) joints."""
        if vertices.dim() != 3 or vertices.shape[2] != self.in_channels:
            raise ValueError(
                f"expected (B, {self.hierarchy.num_vertices}, {self.in_channels}), "
                f"got {tuple(vertices.shape)}"
            )
        b = vertices.shape[0]
        # Pad straight into the node-major layout: (N, B * C) -> (S_0, B * C).
        padded = self.hierarchy.pad_signal(
            vertices.transpose(0, 1).reshape(-1, b * self.in_channels)
        )
        return self._regress(padded.view(-1, b, self.in_channels))

    def _regress(self, x: torch.Tensor) -> torch.Tensor:
        """(S_0, B, in_channels) node-major -> (B, J, 3)."""
        features = self.graph(x)  # (S_out, B, C)
        return self.fc(features.transpose(0, 1).flatten(1)).view(-1, self.num_joints, 3)
