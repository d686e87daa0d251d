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
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import ChebConv

from handshape.geometry.graclus import MeshHierarchy

__all__ = [
    "ONE_LEVEL_STAGES",
    "PAPER_STAGES",
    "GraphCNNHead",
    "LatentBatchNorm",
    "MeshChebConv",
    "NodeBatchNorm",
    "Stage",
    "validate_stages",
]

# (levels to upsample (head) or pool (pose regressor) by, output channels of each convolution)
Stage = tuple[int, tuple[int, ...]]

PAPER_STAGES: tuple[Stage, ...] = ((2, (64, 32)), (2, (32,)))
ONE_LEVEL_STAGES: tuple[Stage, ...] = ((1, (64,)), (1, (32,)), (1, (16,)), (1, (8,)))


def validate_stages(stages: Sequence[Stage], levels: int) -> tuple[Stage, ...]:
    """Normalise ``stages`` to tuples and check them against a hierarchy of ``levels`` levels.

    Returns:
        The stages as a tuple of ``(int, tuple[int, ...])``.

    Raises:
        ValueError: a negative level count, a non-positive channel count, no stage at all, or
            more levels in total than the hierarchy has.
    """
    out: list[Stage] = []
    for stage in stages:
        try:
            times, channels = stage
            times = int(times)
            channels = tuple(int(c) for c in channels)
        except (TypeError, ValueError):
            raise ValueError(f"a stage must be (levels, (channels, ...)), got {stage!r}") from None
        if times < 0:
            raise ValueError(f"a stage must move a non-negative number of levels, got {times}")
        if any(c <= 0 for c in channels):
            raise ValueError(f"channel counts must be positive, got {channels}")
        out.append((times, channels))
    if not out:
        raise ValueError("at least one stage is needed")
    total = sum(times for times, _ in out)
    if total > levels:
        raise ValueError(f"the stages span {total} levels but the hierarchy has only {levels}")
    return tuple(out)


class MeshChebConv(ChebConv):
    """`torch_geometric.nn.ChebConv` bound to one level of a `MeshHierarchy`.

    The graph is the level's padded graph (fake nodes isolated), the normalisation "sym" and the
    scale the hierarchy's precomputed lambda_max, passed to ChebConv as a tensor. ChebConv's
    recursion, weights and initialisation are used unchanged; two things are specialised for a
    graph that never changes and a batch of signals that all live on it:

    - the rescaled Laplacian L~ = 2 L / lambda_max - I is computed once, by ChebConv's own
      normalisation, and kept as (non-persistent) buffers that follow ``.to(device)``; ChebConv
      would otherwise recompute it at every call (about as costly as the convolution on CPU);
    - L~ x is one sparse-dense product (PyG's fused ``message_and_aggregate`` hook) with the
      batch folded into the columns, x of shape (B, S_l, C) -> (S_l, B * C), instead of gathering
      and scattering B * E messages. No block-diagonal edge_index is ever built.

    Fake nodes are isolated, so they never exchange values with real nodes. (PyG's Laplacian
    gives an isolated node L_ii = 1 where `normalized_laplacian` has 0; this only changes the
    values at fake nodes, which no real node reads.)
    """

    def __init__(
        self,
        hierarchy: MeshHierarchy,
        level: int,
        in_channels: int,
        out_channels: int,
        K: int = 3,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, K, normalization="sym", bias=bias)
        if not 0 <= level <= hierarchy.levels:
            raise ValueError(f"level must lie in [0, {hierarchy.levels}], got {level}")
        self.level = level
        self.num_nodes = hierarchy.num_slots[level]
        with torch.no_grad():
            lap_index, lap_weight = super().__norm__(
                hierarchy.edge_index[level],
                self.num_nodes,
                hierarchy.edge_weight[level].to(torch.float64),
                "sym",
                torch.tensor(hierarchy.lambda_max[level], dtype=torch.float64),
                dtype=torch.float64,
            )
        self.register_buffer("lap_index", lap_index.contiguous(), persistent=False)
        self.register_buffer("lap_weight", lap_weight.contiguous(), persistent=False)
        # Sparse (S_l, S_l) copies of L~ per (device, dtype), built from the buffers on first use.
        self._lap_cache: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def laplacian(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The rescaled Laplacian as a coalesced sparse COO (S_l, S_l) tensor (symmetric)."""
        key = (self.lap_weight.device, dtype)
        lap = self._lap_cache.get(key)
        if lap is None:
            # Outside inference mode, so that a matrix first built during evaluation can still
            # be saved for backward by a later training step.
            with torch.inference_mode(False), torch.no_grad():
                lap = torch.sparse_coo_tensor(
                    self.lap_index.clone(),
                    self.lap_weight.to(dtype),
                    (self.num_nodes, self.num_nodes),
                    check_invariants=True,
                ).coalesce()
            self._lap_cache[key] = lap
        return lap

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        # .to() / .double() / .cuda() replace the buffers: forget the matrices built from them.
        self._lap_cache = {}
        return super()._apply(fn, recurse)

    def __norm__(
        self,
        edge_index: torch.Tensor,
        num_nodes: int | None,
        edge_weight: torch.Tensor | None,
        normalization: str | None,
        lambda_max: torch.Tensor | None = None,
        dtype: torch.dtype | None = None,
        batch: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Called by ChebConv.forward: hand it the precomputed L~ as a sparse matrix, which makes
        # `propagate` take the fused path below. The weights are returned in the matrix's own
        # entry order, so PyG's unfused message path (e.g. under explain) stays consistent.
        lap = self.laplacian(_sparse_dtype(dtype))
        return lap, lap._values()

    def message_and_aggregate(self, adj_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """L~ x for x of shape (B, S_l, C), as one sparse-dense matrix product."""
        b, s, c = x.shape
        cols = x.transpose(0, 1).reshape(s, b * c).to(adj_t.dtype)
        # Half-precision sparse products are poorly supported: keep L~ x in the matrix's dtype.
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = torch.sparse.mm(adj_t, cols)
        return out.view(s, b, c).transpose(0, 1).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """(..., S_l, C_in) -> (..., S_l, C_out)."""
        if x.dim() < 2 or x.shape[-2] != self.num_nodes or x.shape[-1] != self.in_channels:
            raise ValueError(
                f"level {self.level} convolution expects (..., {self.num_nodes}, "
                f"{self.in_channels}), got {tuple(x.shape)}"
            )
        lead = x.shape[:-2]
        flat = x.reshape(-1, self.num_nodes, self.in_channels)
        out = super().forward(flat, self.lap_index)
        return out.reshape(*lead, self.num_nodes, self.out_channels)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"K={len(self.lins)}, level={self.level}, nodes={self.num_nodes})"
        )


def _sparse_dtype(dtype: torch.dtype | None) -> torch.dtype:
    """float64 stays float64; everything else (float32, half types under autocast) uses float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


class _Upsample(nn.Module):
    """Copy every node's features to its children ``times`` levels down (no parameters)."""

    def __init__(self, hierarchy: MeshHierarchy, times: int) -> None:
        super().__init__()
        self.hierarchy = hierarchy
        self.times = times

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hierarchy.upsample(x, self.times) if self.times else x

    def extra_repr(self) -> str:
        return f"times={self.times} (x{2**self.times})"


class LatentBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d that normalises a training batch of one with its running statistics instead
    of failing (a lone sample has no batch variance), e.g. when fine-tuning one capture at a
    time. (B, C) -> (B, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        return super().forward(x)


class NodeBatchNorm(nn.Module):
    """Batch normalisation of per-node features over the batch and the real nodes of one level.

    Fake slots are set to 0 and excluded from the statistics, so that they cannot influence real
    nodes through the batch mean and variance. (B, S_l, C) -> (B, S_l, C).
    """

    def __init__(self, hierarchy: MeshHierarchy, level: int, channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(channels)
        real = torch.as_tensor(hierarchy.is_real[level])
        self.register_buffer("real", torch.nonzero(real).flatten(), persistent=False)
        self.num_nodes = int(real.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, c = x.shape
        real = x[:, self.real].reshape(-1, c)
        out = x.new_zeros(b, s, c)
        out[:, self.real] = self.norm(real).view(b, -1, c)
        return out


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
                layers.append(MeshChebConv(hierarchy, level, channels, c, K=K, bias=not batch_norm))
                if batch_norm:
                    layers.append(NodeBatchNorm(hierarchy, level, c))
                layers.append(nn.ReLU(inplace=True))
                channels = c
        assert level == 0
        output = MeshChebConv(hierarchy, 0, channels, out_channels, K=K)
        # Start from a point mesh at the crop centre rather than from noise: with random output
        # weights the quartic edge loss and the normal loss explode and drown the vertex term.
        for lin in output.lins:
            nn.init.zeros_(lin.weight)
        layers.append(output)
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
        return self.decoder(coarse)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, L) latent -> (B, N, out_channels) vertices in the mesh's vertex order (uvd)."""
        return self.hierarchy.unpad_signal(self.decode(self.coarse(latent)))
