"""Batch normalisation of a latent vector that also trains on a batch of one.

    y = (x - mean) / sqrt(var + eps) * gamma + beta,  x (B, C) -> y (B, C)

with the batch's statistics while training, except for B = 1 (a lone sample has no batch
variance), which uses the running statistics, e.g. when fine-tuning one capture at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LatentBatchNorm"]


class LatentBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d that normalises a training batch of one with its running statistics instead
    of failing. (B, C) -> (B, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        return super().forward(x)
