"""The Graph CNN mesh head of Ge et al. (CVPR 2019, Sec. 4.2, Fig. 4) and its graph convolution.

Fig. 4 of the paper: two fully connected layers turn the latent vector into the 80 nodes of the
coarsest graph with 64 features each; "with two upsampling layers and four graph convolutional
layers, the network outputs 3D coordinates of the 1280 mesh vertices". The hierarchy of
`handshape.geometry.graclus` has 80 slots at level 4 and 1280 at level 0, so each of the paper's
two upsampling layers crosses two coarsening levels (x4 nodes), as in the authors' released code.
Every convolution is a Chebyshev filter with K = 3 (Defferrard et al., NeurIPS 2016):

    f_out = sum_{k<K} T_k(L~) f_in theta_k,  L~ = 2 L / lambda_max - I,  L = I - D^-1/2 W D^-1/2.

The layout is given as per-stage ``(upsample_times, conv_channels)`` pairs: each stage copies
features ``upsample_times`` levels down the coarsening tree, then applies one Chebyshev
convolution per entry of ``conv_channels`` (each followed by a ReLU); a final Chebyshev
convolution at the finest level maps to the 3 outputs (u, v, d) without activation.
`PAPER_STAGES` (the default) is the paper's arrangement:

    FC(512) + ReLU -> FC(80 * 64) -> (B, 80, 64) at level 4
    upsample x4 (level 2, 320 slots) -> Cheb(64 -> 64) + ReLU -> Cheb(64 -> 32) + ReLU
    upsample x4 (level 0, 1280 slots) -> Cheb(32 -> 32) + ReLU -> Cheb(32 -> 3)

`ONE_LEVEL_STAGES` is the alternative with one level (x2) per stage and one convolution per
level. As in the authors' released code (the paper does not say), the first FC layer and every
hidden convolution are followed by batch normalisation (``batch_norm=True``, the default):
without it the decoder's activations shrink layer by layer, its ReLUs die within a few dozen
steps and the head outputs one mean mesh for every image (measured on the quick preset: the
output's spread across images fell to exactly 0 while the latent kept varying). Normalisation
statistics are taken over real nodes only, so fake slots still never influence real vertices.

Shapes: B batch, L latent size, N real mesh vertices, S_l slots of level l (real + fake nodes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from handshape.geometry.hierarchy import MeshHierarchy
from handshape.nets.latent_batch_norm import LatentBatchNorm
from handshape.nets.mesh_cheb_conv import MeshChebConv
from handshape.nets.node_batch_norm import NodeBatchNorm
from handshape.nets.stages import Stage, validate_stages

__all__ = ["ONE_LEVEL_STAGES", "PAPER_STAGES", "GraphCNNHead"]

PAPER_STAGES: tuple[Stage, ...] = ((2, (64, 32)), (2, (32,)))
ONE_LEVEL_STAGES: tuple[Stage, ...] = ((1, (64,)), (1, (32,)), (1, (16,)), (1, (8,)))


class _Upsample(nn.Module):
    """Copy every node's features to its children ``times`` levels down (no parameters).

    Node-major: (S_l, B, C) -> (S_{l - times}, B, C).
    """

    def __init__(self, hierarchy: MeshHierarchy, times: int) -> None:
        super().__init__()
        self.hierarchy = hierarchy
        self.times = times

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.times:
            return x
        out = self.hierarchy.upsample(x.flatten(1), self.times)
        return out.view(out.shape[0], *x.shape[1:])

    def extra_repr(self) -> str:
        return f"times={self.times} (x{2**self.times})"


class GraphCNNHead(nn.Module):
    """Latent vector -> mesh vertices in uvd, by Chebyshev graph convolutions coarse to fine.

    Args:
        latent_dim: L, the size of the latent vector.
        hierarchy: the coarsening hierarchy of the output mesh (`mesh_hierarchy`).
        coarse_features: features per node of the coarse graph produced by the FC layers.
        stages: per-stage ``(upsample_times, conv_channels)``; see the module docstring. The
            coarse graph is level ``sum(upsample_times)``, so the stages always end at level 0.
        fc_hidden: width of the first FC layer (512 in the authors' code).
        out_channels: outputs per vertex (3: u, v, d).
        K: Chebyshev order of every convolution (the paper's support K = 3).
        batch_norm: batch normalisation after the first FC layer and every hidden convolution.

    Attributes:
        coarse_level: the hierarchy level the FC layers write to (4 for the paper).
        num_coarse: S_coarse, the slots of that level (80 for the paper).
    """

    def __init__(
        self,
        latent_dim: int,
        hierarchy: MeshHierarchy,
        coarse_features: int = 64,
        stages: Sequence[Stage] = PAPER_STAGES,
        fc_hidden: int = 512,
        out_channels: int = 3,
        K: int = 3,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (
            ("latent_dim", latent_dim),
            ("coarse_features", coarse_features),
            ("fc_hidden", fc_hidden),
            ("out_channels", out_channels),
            ("K", K),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        self.hierarchy = hierarchy
        self.stages = validate_stages(stages, hierarchy.levels)
        self.latent_dim = latent_dim
        self.coarse_features = coarse_features
        self.coarse_level = sum(times for times, _ in self.stages)
        self.num_coarse = hierarchy.num_slots[self.coarse_level]

        self.fc = nn.Sequential(
            nn.Linear(latent_dim, fc_hidden, bias=not batch_norm),
            LatentBatchNorm(fc_hidden) if batch_norm else nn.Identity(),
            nn.ReLU(inplace=True),
            nn.Linear(fc_hidden, self.num_coarse * coarse_features),
        )
        layers: list[nn.Module] = []
        level, channels = self.coarse_level, coarse_features
        for times, conv_channels in self.stages:
            level -= times
            layers.append(_Upsample(hierarchy, times))
            for c in conv_channels:
                layers.append(
                    MeshChebConv(
                        hierarchy, level, channels, c, K=K, bias=not batch_norm, node_dim=0
                    )
                )
                if batch_norm:
                    layers.append(NodeBatchNorm(hierarchy, level, c, node_dim=0))
                layers.append(nn.ReLU(inplace=True))
                channels = c
        assert level == 0
        output = MeshChebConv(hierarchy, 0, channels, out_channels, K=K, node_dim=0)
        # Start from a point mesh at the crop centre rather than from noise: with random output
        # weights the quartic edge loss and the normal loss explode and drown the vertex term.
        for lin in output.lins:
            nn.init.zeros_(lin.weight)
        layers.append(output)
        # Node-major inside: (S_l, B, C), so that every sparse product reads and writes
        # contiguous (S_l, B * C) blocks and no layer transposes.
        self.decoder = nn.Sequential(*layers)

    @property
    def convs(self) -> list[MeshChebConv]:
        """The graph convolutions in order, the output convolution last."""
        return [m for m in self.decoder if isinstance(m, MeshChebConv)]

    def coarse(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, L) latent -> (B, S_coarse, coarse_features) features of the coarse graph."""
        if latent.dim() != 2 or latent.shape[1] != self.latent_dim:
            raise ValueError(
                f"expected a latent of shape (B, {self.latent_dim}), got {tuple(latent.shape)}"
            )
        return self.fc(latent).view(-1, self.num_coarse, self.coarse_features)

    def decode(self, coarse: torch.Tensor) -> torch.Tensor:
        """(B, S_coarse, coarse_features) -> (B, S_0, out_channels) in finest-slot order.

        Fake slots carry values too; `MeshHierarchy.unpad_signal` drops them.
        """
        return self.decoder(coarse.transpose(0, 1)).transpose(0, 1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, L) latent -> (B, N, out_channels) vertices in the mesh's vertex order (uvd)."""
        slots = self.decoder(self.coarse(latent).transpose(0, 1))  # (S_0, B, out_channels)
        vertices = self.hierarchy.unpad_signal(slots.flatten(1))  # (N, B * out_channels)
        return vertices.view(vertices.shape[0], -1, slots.shape[-1]).transpose(0, 1).contiguous()
