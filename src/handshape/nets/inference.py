"""A copy of a network prepared for inference: batch norms folded into the convolutions.

Use it under ``torch.inference_mode()``; `handshape predict` and `make bench` do.

Every ``Conv2d`` directly followed by a ``BatchNorm2d`` in the same ``nn.Sequential`` (the stem,
the second and third convolutions of each residual block, the post-hourglass 1x1) becomes one
convolution with the normalisation's running statistics folded in:

    W' = W * gamma / sqrt(var + eps),  b' = (b - mean) * gamma / sqrt(var + eps) + beta.

The pre-activation normalisations (BN -> ReLU -> conv) cannot be folded that way and stay. The
original network is left untouched: training keeps its layers, state dicts keep their keys.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fold_batch_norms", "for_inference"]


def fold_batch_norms(module: nn.Module) -> int:
    """Fold, in place, every eval-mode Conv2d -> BatchNorm2d pair inside a Sequential of
    ``module``; returns how many were folded."""
    folded = 0
    for child in module.modules():
        if not isinstance(child, nn.Sequential):
            continue
        layers = list(child)
        for i in range(len(layers) - 1):
            conv, norm = layers[i], layers[i + 1]
            if (
                isinstance(conv, nn.Conv2d)
                and type(norm) is nn.BatchNorm2d
                and norm.track_running_stats
                and not conv.training
                and not norm.training
            ):
                child[i] = fuse_conv_bn_eval(conv, norm)
                child[i + 1] = nn.Identity()
                folded += 1
    return folded


def for_inference(net: nn.Module, channels_last: bool = True) -> nn.Module:
    """An eval-mode copy of ``net`` with its batch norms folded (same outputs up to rounding)
    and, with ``channels_last``, its convolution weights in NHWC, which oneDNN's CPU kernels
    prefer (the input follows: convolutions keep the layout of their weights)."""
    fast = copy.deepcopy(net).eval()
    fold_batch_norms(fast)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    return fast
