"""A copy of a network prepared for inference: normalisations folded, the joint regressor collapsed.

Build it anywhere (also under ``torch.inference_mode()``) and run it under
``torch.inference_mode()``; `handshape predict`, `handshape export` and `make bench` do. The
original network is left untouched: training keeps its layers, state dicts keep their keys.
Three rewrites, each exact up to rounding (tested):

- Every ``Conv2d`` directly followed by a ``BatchNorm2d`` in the same ``nn.Sequential`` (the stem,
  the second and third convolutions of each residual block, the post-hourglass 1x1) becomes one
  convolution with the normalisation's running statistics folded in:
  W' = W * gamma / sqrt(var + eps), b' = (b - mean) * gamma / sqrt(var + eps) + beta.
  The pre-activation normalisations (BN -> ReLU -> conv) cannot be folded that way and stay.
- The same for the Graph CNN head: a ``Linear`` followed by a ``LatentBatchNorm`` and a
  ``MeshChebConv`` followed by a ``NodeBatchNorm`` become one layer. The folded convolution leaves
  the per-channel shift at the fake slots where the normalisation wrote 0: fake slots are
  isolated, upsample only into fake slots and are dropped from the output, so no real vertex
  reads them.
- The 3D pose regressor is linear by construction (Chebyshev convolutions without activation,
  mean pooling, one linear layer: `handshape.nets.pose_regressor`), so it is one affine map from
  the N x 3 vertex coordinates to the J x 3 joints. It is replaced by that map's matrix: one
  matrix-vector product instead of about 60 small operations (at batch 1 on a CPU, where the
  regressor's time is per-operation overhead). The matrix comes from one backward pass over a
  batch of J x 3 zero meshes, and is checked against the regressor on a random mesh.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from handshape.nets.latent_batch_norm import LatentBatchNorm
from handshape.nets.mesh_cheb_conv import MeshChebConv
from handshape.nets.node_batch_norm import NodeBatchNorm
from handshape.nets.pose_regressor import PoseRegressor

__all__ = [
    "AffineJointRegressor",
    "collapse_pose_regressor",
    "fold_batch_norms",
    "for_inference",
]


def _foldable(norm: nn.Module) -> bool:
    return not norm.training and getattr(norm, "track_running_stats", False)


def fold_batch_norms(module: nn.Module) -> int:
    """Fold, in place, every eval-mode Conv2d -> BatchNorm2d, Linear -> LatentBatchNorm and
    MeshChebConv -> NodeBatchNorm pair inside a Sequential of ``module``; returns how many were
    folded."""
    folded = 0
    for child in module.modules():
        if not isinstance(child, nn.Sequential):
            continue
        layers = list(child)
        for i in range(len(layers) - 1):
            layer, norm = layers[i], layers[i + 1]
            if layer.training:
                continue
            if isinstance(layer, nn.Conv2d) and type(norm) is nn.BatchNorm2d and _foldable(norm):
                child[i] = fuse_conv_bn_eval(layer, norm)
            elif type(layer) is nn.Linear and isinstance(norm, LatentBatchNorm) and _foldable(norm):
                child[i] = fuse_linear_bn_eval(layer, norm)
            elif (
                isinstance(layer, MeshChebConv)
                and isinstance(norm, NodeBatchNorm)
                and _foldable(norm.norm)
            ):
                child[i] = _fold_node_norm(layer, norm)
            else:
                continue
            child[i + 1] = nn.Identity()
            folded += 1
    return folded


def _fold_node_norm(conv: MeshChebConv, norm: NodeBatchNorm) -> MeshChebConv:
    """A copy of ``conv`` that applies ``norm``'s running-statistics affine map to its output."""
    scale, shift = norm.running_affine()
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        for lin in fused.lins:  # lin.weight (C_out, C_in): scale the output channels
            lin.weight.mul_(scale[:, None])
        bias = shift if conv.bias is None else conv.bias * scale + shift
        fused.bias = nn.Parameter(bias.detach().clone())
    return fused


class AffineJointRegressor(nn.Module):
    """joints = A vec(vertices) + c: a linear `PoseRegressor` as one matrix.

    (B, N, C) vertices in the mesh's vertex order -> (B, J, 3) joints.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, num_joints: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)  # (J * 3, N * C)
        self.bias = nn.Parameter(bias, requires_grad=False)  # (J * 3,)
        self.num_joints = num_joints

    def forward(self, vertices: torch.Tensor) -> torch.Tensor:
        if vertices.dim() != 3 or vertices.shape[1] * vertices.shape[2] != self.weight.shape[1]:
            raise ValueError(
                f"expected (B, N, C) vertices with N * C = {self.weight.shape[1]}, "
                f"got {tuple(vertices.shape)}"
            )
        joints = torch.addmm(self.bias, vertices.flatten(1), self.weight.t())
        return joints.view(-1, self.num_joints, 3)


def collapse_pose_regressor(
    regressor: PoseRegressor, tolerance: float = 1e-4
) -> AffineJointRegressor:
    """The affine map a `PoseRegressor` computes, as an `AffineJointRegressor`.

    Raises:
        RuntimeError: the regressor is not affine (its output on a random mesh differs from the
            collapsed map's by more than ``tolerance`` relative to its magnitude).
    """
    param = next(regressor.parameters())
    n, c, j = regressor.hierarchy.num_vertices, regressor.in_channels, regressor.num_joints
    outputs = j * 3
    with torch.inference_mode(False), torch.enable_grad():
        # Row r of the Jacobian is the gradient of output r; one batch item per output.
        zeros = torch.zeros(outputs, n, c, dtype=param.dtype, device=param.device)
        zeros.requires_grad_(True)
        out = regressor(zeros).reshape(outputs, outputs)
        (weight,) = torch.autograd.grad(out.diagonal().sum(), zeros)
        weight, bias = weight.reshape(outputs, n * c), out[0].detach().clone()
        affine = AffineJointRegressor(weight, bias, j)
        with torch.no_grad():
            gen = torch.Generator(device=param.device).manual_seed(0)  # leave the global RNG
            probe = torch.randn(2, n, c, generator=gen, dtype=param.dtype, device=param.device)
            expected, got = regressor(probe), affine(probe)
    error = float((got - expected).abs().max())
    if error > tolerance * max(1.0, float(expected.abs().max())):
        raise RuntimeError(
            f"the pose regressor is not affine: collapsing it changes its output by {error:.2e}"
        )
    return affine


def for_inference(net: nn.Module, channels_last: bool = True) -> nn.Module:
    """An eval-mode copy of ``net`` with its batch norms folded and its pose regressor collapsed
    (same outputs up to rounding) and, with ``channels_last``, its convolution weights in NHWC,
    which oneDNN's CPU kernels prefer (the input follows: convolutions keep the layout of their
    weights)."""
    # Copies made under inference_mode would be inference tensors, which the collapse's
    # backward pass cannot use: build the copy outside it, wherever this is called from.
    with torch.inference_mode(False):
        fast = copy.deepcopy(net).eval()
        fold_batch_norms(fast)
        regressor = getattr(fast, "pose_regressor", None)
        if isinstance(regressor, PoseRegressor):
            fast.pose_regressor = collapse_pose_regressor(regressor)
        if channels_last:
            fast = fast.to(memory_format=torch.channels_last)
    return fast
