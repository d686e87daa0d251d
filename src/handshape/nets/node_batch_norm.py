"""Batch normalisation of per-node features over the batch and the real nodes of one level.

    y[n] = (x[n] - mean) / sqrt(var + eps) * gamma + beta   for real nodes n,  y[n] = 0 for fake

with mean and var taken per channel over the batch and the real nodes only, so that fake slots
(`handshape.geometry.graclus`) cannot influence real nodes through the statistics. Shapes:
(B, S_l, C) -> (B, S_l, C) with ``node_dim=-2``, (S_l, B, C) -> (S_l, B, C) with ``node_dim=0``
(the node-major layout the graph networks run in).
"""

from __future__ import annotations

import torch
from torch import nn

from handshape.geometry.hierarchy import MeshHierarchy

__all__ = ["NodeBatchNorm"]


class NodeBatchNorm(nn.Module):
    """Batch normalisation over real nodes; fake slots are set to 0 (see the module docstring).

    The state dict is that of the wrapped `nn.BatchNorm1d` under ``norm.``.
    """

    def __init__(
        self, hierarchy: MeshHierarchy, level: int, channels: int, node_dim: int = -2
    ) -> None:
        super().__init__()
        if node_dim not in (0, -2):
            raise ValueError(f"node_dim must be 0 (node-major) or -2, got {node_dim}")
        self.norm = nn.BatchNorm1d(channels)
        self.node_dim = node_dim
        real = torch.as_tensor(hierarchy.is_real[level])
        self.register_buffer("real", torch.nonzero(real).flatten(), persistent=False)
        self.register_buffer("real_mask", real.clone(), persistent=False)
        self.num_nodes = int(real.numel())

    def running_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift), each (C,): what normalising with the running statistics does to a
        real node, y = x * scale + shift."""
        norm = self.norm
        assert norm.running_mean is not None and norm.running_var is not None
        scale = torch.rsqrt(norm.running_var + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight
        shift = -norm.running_mean * scale
        if norm.bias is not None:
            shift = shift + norm.bias
        return scale, shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[-1]
        dim = 0 if self.node_dim == 0 else x.dim() - 2
        if not self.training and self.norm.running_var is not None:
            # Running statistics: a per-channel affine map, applied to every slot at once and
            # the fake slots zeroed after (no gather/scatter: this is the inference path).
            scale, shift = self.running_affine()
            mask = self.real_mask.view(-1, *([1] * (x.dim() - dim - 1)))
            return torch.where(mask, x * scale + shift, 0.0)
        real = x.index_select(dim, self.real)
        normed = self.norm(real.reshape(-1, c)).view(real.shape)
        return x.new_zeros(x.shape).index_copy(dim, self.real, normed)
