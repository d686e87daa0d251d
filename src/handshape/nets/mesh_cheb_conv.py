"""Chebyshev graph convolution on one level of a mesh hierarchy (Defferrard et al., NeurIPS 2016).

    f_out = sum_{k<K} T_k(L~) f_in theta_k + b,   L~ = 2 L / lambda_max - I,
    T_0 = I, T_1 = L~, T_k = 2 L~ T_{k-1} - T_{k-2},   L = I - D^-1/2 W D^-1/2,

f_in (S_l, C_in) -> f_out (S_l, C_out) per graph signal, theta_k (C_in, C_out). The parameters,
their initialisation (the same random draws) and L~ (PyG's "sym" normalisation, an isolated
node's L_ii = 1 included) are those of `torch_geometric.nn.ChebConv` (``lins.k.weight`` holds
theta_k transposed, ``bias`` is b), so state dicts of either load into the other; the tests
check values and gradients against ChebConv itself. It is not a subclass of ChebConv: importing
PyG costs about a second (its compile machinery), which inference commands should not pay.

The graph never changes and every signal of a batch lives on it, so the convolution runs as
K - 1 sparse products with a CSR copy of L~ and one dense product with the stacked theta_k, on the
batch folded into the columns (node-major, (S_l, B * C) contiguous). Whichever side has fewer
channels goes through the sparse products: with C_in <= C_out the Chebyshev terms
T_k(L~) f_in are formed by the recursion above and then mixed by theta; with C_out < C_in the
channels are mixed first, y_k = f_in theta_k, and sum_k T_k(L~) y_k is evaluated by Clenshaw's
recurrence (b_k = y_k + 2 L~ b_{k+1} - b_{k+2}, f_out = y_0 + L~ b_1 - b_2). Both are exact.

Tracers and exporters (TorchScript, ONNX, torch.compile) cannot hold a sparse tensor: there
L~ x runs as a gather over each row's neighbours (padded ELL format, the row's own slot with
weight 0 as padding) followed by a weighted sum, which gives the same values.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import partial

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from handshape.geometry.hierarchy import MeshHierarchy

__all__ = ["MeshChebConv", "chebyshev_filter"]


def _spmm(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A @ x for a sparse CSR A. Through addmm with beta = 0: on the CPU (torch 2.13)
    `torch.sparse.mm` takes a path about 4x slower than addmm's for (1280, 1024) operands.
    Elsewhere (cuSPARSE) the plain product, which needs no broadcast input."""
    if a.device.type != "cpu":
        return torch.sparse.mm(a, x)
    zero = x.new_zeros(1, 1).expand(a.shape[0], x.shape[1])
    return torch.addmm(zero, a, x, beta=0)


class _SparseAddmm(torch.autograd.Function):
    """beta * c + alpha * A @ x for a constant sparse A, as one kernel; the gradient
    alpha * A^T @ g uses a stored CSR copy of A^T (no transpose of A at every step)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        x: torch.Tensor,
        c: torch.Tensor | None,
        a: torch.Tensor,
        a_t: torch.Tensor,
        alpha: float,
        beta: float,
    ) -> torch.Tensor:
        ctx.a_t, ctx.alpha, ctx.beta = a_t, alpha, beta
        ctx.has_c = c is not None
        if c is None:
            out = _spmm(a, x)
            return out if alpha == 1 else out.mul_(alpha)
        return torch.addmm(c, a, x, beta=beta, alpha=alpha)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[no-untyped-def, override]
        grad = grad.contiguous()
        grad_x = _spmm(ctx.a_t, grad)
        if ctx.alpha != 1:
            grad_x = grad_x.mul_(ctx.alpha)
        grad_c = grad * ctx.beta if ctx.has_c else None
        return grad_x, grad_c, None, None, None, None


# product(y, c=None, alpha=1, beta=1) = beta * c + alpha * L~ y, for y and c (S, N)
Product = Callable[..., torch.Tensor]


def _sparse_product(
    lap: tuple[torch.Tensor, torch.Tensor],
    y: torch.Tensor,
    c: torch.Tensor | None = None,
    alpha: float = 1.0,
    beta: float = 1.0,
) -> torch.Tensor:
    """beta * c + alpha * L~ y with L~ as (CSR, its transpose in CSR): in L~'s dtype (sparse
    products in half precision are poorly supported), autocast off, back in y's dtype."""
    a, a_t = lap
    dtype = y.dtype
    device = y.device.type
    if dtype == a.dtype and not torch.is_grad_enabled() and not torch.is_autocast_enabled(device):
        # Inference: no autograd Function and no autocast switch (per-call overhead that
        # matters at batch 1, where a product takes a few tens of microseconds).
        if c is None:
            out = _spmm(a, y.contiguous())
            return out if alpha == 1 else out.mul_(alpha)
        return torch.addmm(c.contiguous(), a, y.contiguous(), beta=beta, alpha=alpha)
    with torch.autocast(device_type=device, enabled=False):
        y = y.to(a.dtype).contiguous()
        c = None if c is None else c.to(a.dtype).contiguous()
        out = _SparseAddmm.apply(y, c, a, a_t, alpha, beta)
    return out.to(dtype)


def _gather_product(
    lap: tuple[torch.Tensor, torch.Tensor],
    y: torch.Tensor,
    c: torch.Tensor | None = None,
    alpha: float = 1.0,
    beta: float = 1.0,
) -> torch.Tensor:
    """beta * c + alpha * L~ y with L~ in padded ELL form: index (S, D), weight (S, D)."""
    index, weight = lap
    out = (y[index] * (alpha * weight.to(y.dtype)).unsqueeze(-1)).sum(dim=1)
    return out if c is None else out + beta * c


def chebyshev_filter(
    x: torch.Tensor,
    theta: torch.Tensor,
    product: Product,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """sum_k T_k(L~) x theta_k (+ bias) for a batch of signals in node-major layout.

    Args:
        x: (S, M, C_in) node-major features (M signals, e.g. the batch).
        theta: (K, C_in, C_out) filter weights.
        product: ``product(y, c, alpha, beta)`` = beta * c + alpha * L~ y for y, c (S, N);
            L~ is only ever applied through it.
        bias: (C_out,) or None.

    Returns:
        (S, M, C_out).
    """
    s, m, c_in = x.shape
    k, _, c_out = theta.shape
    if c_out < c_in:
        # Mix channels first (one batched matmul), then Clenshaw on the narrower signals.
        # unbind, not y[i]: each slice's backward would fill a zero tensor of y's whole size.
        y = torch.matmul(x.reshape(1, s * m, c_in), theta).view(k, s, m * c_out).unbind(0)
        out = y[k - 1]
        if k > 1:
            b_next, b_next2 = y[k - 1], None
            for i in range(k - 2, 0, -1):
                b = product(b_next, y[i], alpha=2.0)
                if b_next2 is not None:
                    b = b - b_next2
                b_next, b_next2 = b, b_next
            out = product(b_next, y[0])
            if b_next2 is not None:
                out = out - b_next2
        out = out.view(s, m, c_out)
    else:
        # Chebyshev terms first, stacked along the channels, then one matmul with all theta_k.
        t0 = x.reshape(s, m * c_in)
        terms = [t0]
        if k > 1:
            terms.append(product(t0))
        for _ in range(2, k):
            terms.append(product(terms[-1], terms[-2], alpha=2.0, beta=-1.0))
        stacked = torch.stack([t.view(s, m, c_in) for t in terms], dim=2)  # (S, M, K, C_in)
        flat, weight = stacked.view(s * m, k * c_in), theta.reshape(k * c_in, c_out)
        if bias is not None:
            return torch.addmm(bias.to(flat.dtype), flat, weight.to(flat.dtype)).view(s, m, c_out)
        return torch.matmul(flat, weight).view(s, m, c_out)
    return out + bias if bias is not None else out


def _use_gather() -> bool:
    """Whether L~ must avoid sparse tensors: TorchScript, ONNX export, torch.compile/export."""
    return (
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.compiler.is_compiling()
        or torch.onnx.is_in_onnx_export()
    )


def chebyshev_laplacian(
    edge_index: torch.Tensor, edge_weight: torch.Tensor, num_nodes: int, lambda_max: float
) -> sp.csr_matrix:
    """L~ = 2 L / lambda_max - I with L = I - D^-1/2 W D^-1/2, float64, as PyG's ChebConv
    normalises a graph ("sym"): self loops dropped, degrees summed over edge_index[0], every
    node (an isolated one too) given L_ii = 1. Rows are the messages' targets (edge_index[1])."""
    src, dst = edge_index.numpy()
    weight = edge_weight.to(torch.float64).numpy()
    keep = src != dst
    src, dst, weight = src[keep], dst[keep], weight[keep]
    degree = np.bincount(src, weights=weight, minlength=num_nodes)
    with np.errstate(divide="ignore"):
        inv_sqrt = np.where(degree > 0, degree**-0.5, 0.0)
    off = -inv_sqrt[src] * weight * inv_sqrt[dst] * (2.0 / lambda_max)
    nodes = np.arange(num_nodes)
    diagonal = np.full(num_nodes, 2.0 / lambda_max - 1.0)
    return sp.csr_matrix(
        (
            np.concatenate([off, diagonal]),
            (np.concatenate([dst, nodes]), np.concatenate([src, nodes])),
        ),
        shape=(num_nodes, num_nodes),
    )


def _glorot(weight: torch.Tensor) -> None:
    bound = math.sqrt(6.0 / (weight.shape[-2] + weight.shape[-1]))
    with torch.no_grad():
        weight.uniform_(-bound, bound)


class _Theta(nn.Module):
    """One Chebyshev term's weight (C_out, C_in), where PyG's ChebConv keeps it (lins.k.weight);
    not an nn.Linear, whose own initialisation would take random draws ChebConv does not."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels))


class MeshChebConv(nn.Module):
    """A Chebyshev convolution (K, PyG ChebConv's "sym" normalisation) bound to one hierarchy
    level.

    The graph is the level's padded graph (fake nodes isolated) and lambda_max the hierarchy's
    precomputed one; L~ is computed once, in float64 (`chebyshev_laplacian`), and kept as
    non-persistent buffers (the state dict holds only ``lins.k.weight`` and ``bias``, as
    ChebConv's). Fake nodes are isolated, so they never exchange values with real nodes. (PyG's
    Laplacian gives an isolated node L_ii = 1 where `normalized_laplacian` has 0; this only
    changes the values at fake nodes, which no real node reads.)

    Args:
        hierarchy, level: the graph.
        in_channels, out_channels, K, bias: as ChebConv's.
        node_dim: where the nodes are in the input: -2, (..., S_l, C) (PyG's convention) or 0,
            (S_l, ..., C) (node-major, the layout the graph networks run in: no transposes).
        gather: always use the gather form of L~ x (export); it is also used automatically
            under tracing, scripting, ONNX export and torch.compile.
    """

    def __init__(
        self,
        hierarchy: MeshHierarchy,
        level: int,
        in_channels: int,
        out_channels: int,
        K: int = 3,
        bias: bool = True,
        node_dim: int = -2,
        gather: bool = False,
    ) -> None:
        super().__init__()
        if K <= 0:
            raise ValueError(f"K must be positive, got {K}")
        if not 0 <= level <= hierarchy.levels:
            raise ValueError(f"level must lie in [0, {hierarchy.levels}], got {level}")
        if node_dim not in (0, -2):
            raise ValueError(f"node_dim must be 0 (node-major) or -2, got {node_dim}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.lins = nn.ModuleList(_Theta(in_channels, out_channels) for _ in range(K))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        # ChebConv's random draws: each weight initialised when built, then all again by its
        # reset_parameters, so that one seed gives both modules the same weights.
        for _ in range(2):
            for lin in self.lins:
                _glorot(lin.weight)
        self.level = level
        self.num_nodes = hierarchy.num_slots[level]
        self.node_dim = node_dim
        self.gather = gather
        lap = chebyshev_laplacian(
            hierarchy.edge_index[level],
            hierarchy.edge_weight[level],
            self.num_nodes,
            float(hierarchy.lambda_max[level]),
        )
        lap_t = lap.T.tocsr()
        for name, matrix in (("csr", lap), ("csr_t", lap_t)):
            matrix.sort_indices()
            self.register_buffer(
                f"{name}_rows", torch.from_numpy(matrix.indptr.astype(np.int64)), persistent=False
            )
            self.register_buffer(
                f"{name}_cols", torch.from_numpy(matrix.indices.astype(np.int64)), persistent=False
            )
            self.register_buffer(
                f"{name}_vals", torch.from_numpy(matrix.data.astype(np.float64)), persistent=False
            )
        index, weight = _ell(lap)
        self.register_buffer("ell_index", index, persistent=False)
        self.register_buffer("ell_weight", weight, persistent=False)
        # CSR tensors per (device, dtype), built from the buffers on first use.
        self._lap_cache: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]]
        self._lap_cache = {}

    def laplacian(self, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """L~ and its transpose as sparse CSR (S_l, S_l) tensors of ``dtype`` (cached)."""
        key = (self.csr_vals.device, dtype)
        pair = self._lap_cache.get(key)
        if pair is None:
            # Outside inference mode, so that a matrix first built during evaluation can still
            # be saved for backward by a later training step.
            with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
                # CSR support is called beta by torch; the products used here are long stable.
                warnings.simplefilter("ignore", UserWarning)
                shape = (self.num_nodes, self.num_nodes)
                pair = tuple(
                    torch.sparse_csr_tensor(
                        getattr(self, f"{n}_rows").clone(),
                        getattr(self, f"{n}_cols").clone(),
                        getattr(self, f"{n}_vals").to(dtype),
                        shape,
                        check_invariants=True,
                    )
                    for n in ("csr", "csr_t")
                )
            self._lap_cache[key] = pair  # type: ignore[assignment]
        return pair  # type: ignore[return-value]

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        # .to() / .double() / .cuda() replace the buffers: forget the matrices built from them.
        self._lap_cache = {}
        return super()._apply(fn, recurse)

    def __getstate__(self) -> dict:
        # Sparse tensors cannot be deep-copied or pickled; the cache is rebuilt on first use.
        state = dict(super().__getstate__())
        state["_lap_cache"] = {}
        return state

    def theta(self) -> torch.Tensor:
        """(K, C_in, C_out): the filter weights theta_k stacked."""
        return torch.stack([lin.weight.t() for lin in self.lins])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """(..., S_l, C_in) -> (..., S_l, C_out), or (S_l, ..., C_in) -> (S_l, ..., C_out) with
        ``node_dim=0``."""
        dim = 0 if self.node_dim == 0 else x.dim() - 2
        if x.dim() < 2 or x.shape[dim] != self.num_nodes or x.shape[-1] != self.in_channels:
            layout = "(..., {n}, {c})" if self.node_dim == -2 else "({n}, ..., {c})"
            raise ValueError(
                f"level {self.level} convolution expects "
                f"{layout.format(n=self.num_nodes, c=self.in_channels)}, got {tuple(x.shape)}"
            )
        if self.gather or _use_gather():
            product = partial(_gather_product, (self.ell_index, self.ell_weight))
        else:
            dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
            product = partial(_sparse_product, self.laplacian(dtype))
        if self.node_dim == 0:
            out = chebyshev_filter(
                x.reshape(self.num_nodes, -1, self.in_channels), self.theta(), product, self.bias
            )
            return out.view(self.num_nodes, *x.shape[1:-1], self.out_channels)
        lead = x.shape[:-2]
        nodes_first = x.reshape(-1, self.num_nodes, self.in_channels).transpose(0, 1)
        out = chebyshev_filter(nodes_first, self.theta(), product, self.bias)
        return out.transpose(0, 1).reshape(*lead, self.num_nodes, self.out_channels)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"K={len(self.lins)}, level={self.level}, nodes={self.num_nodes})"
        )


def _ell(matrix: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor]:
    """A CSR matrix as padded rows: column index (S, D) and value (S, D), D the longest row;
    padding points at the row itself with value 0."""
    lengths = np.diff(matrix.indptr)
    width = max(int(lengths.max(initial=0)), 1)
    rows = matrix.shape[0]
    index = np.repeat(np.arange(rows)[:, None], width, axis=1)
    value = np.zeros((rows, width))
    for r in range(rows):
        lo, hi = matrix.indptr[r], matrix.indptr[r + 1]
        index[r, : hi - lo] = matrix.indices[lo:hi]
        value[r, : hi - lo] = matrix.data[lo:hi]
    return torch.from_numpy(index.astype(np.int64)), torch.from_numpy(value)
