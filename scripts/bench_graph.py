"""The Graph CNN decoder against the same decoder built from plain PyG `ChebConv`.

The reference batches graphs the textbook PyG way (one block-diagonal graph of B copies, the
Laplacian normalised at every call) and copies every weight from handshape's decoder, so the
two compute the same function; both run forward + backward in training mode (batch statistics).
Used by scripts/bench_net.py (`make bench`) and scripts/gpu_check.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn
from torch_geometric.nn import ChebConv

from handshape.geometry.hierarchy import MeshHierarchy
from handshape.nets.heads.graphcnn import GraphCNNHead
from handshape.nets.mesh_cheb_conv import MeshChebConv
from handshape.nets.node_batch_norm import NodeBatchNorm


class _PygConv(nn.Module):
    """ChebConv on the block-diagonal graph of a batch: (B, S, C_in) -> (B, S, C_out)."""

    def __init__(self, conv: MeshChebConv, hierarchy: MeshHierarchy, batch: int) -> None:
        super().__init__()
        bias = conv.bias is not None
        self.conv = ChebConv(conv.in_channels, conv.out_channels, K=len(conv.lins), bias=bias)
        self.conv.load_state_dict(conv.state_dict())
        s, level = conv.num_nodes, conv.level
        edges = hierarchy.edge_index[level]
        self.register_buffer("edge_index", torch.cat([edges + i * s for i in range(batch)], 1))
        self.register_buffer("edge_weight", hierarchy.edge_weight[level].repeat(batch))
        self.register_buffer("batch", torch.arange(batch).repeat_interleave(s))
        self.lambda_max = float(hierarchy.lambda_max[level])  # in the signal's dtype at each call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, c = x.shape
        out = self.conv(
            x.reshape(b * s, c),
            self.edge_index,
            self.edge_weight.to(x.dtype),
            batch=self.batch,
            lambda_max=torch.full((b,), self.lambda_max, dtype=x.dtype, device=x.device),
        )
        return out.view(b, s, -1)


class _Repeat(nn.Module):
    def __init__(self, times: int) -> None:
        super().__init__()
        self.times = times

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(2**self.times, dim=1)


def pyg_decoder(head: GraphCNNHead, batch: int) -> nn.Sequential:
    """The head's decoder, (B, S_coarse, C) -> (B, S_0, 3), from plain PyG layers."""
    layers: list[nn.Module] = []
    for module in head.decoder:
        if isinstance(module, MeshChebConv):
            layers.append(_PygConv(module, head.hierarchy, batch))
        elif isinstance(module, NodeBatchNorm):
            norm = NodeBatchNorm(head.hierarchy, 0, module.norm.num_features)
            norm.real, norm.real_mask = module.real, module.real_mask
            norm.norm.load_state_dict(module.norm.state_dict())
            layers.append(norm)
        elif hasattr(module, "times"):
            layers.append(_Repeat(module.times))
        else:
            layers.append(module)
    return nn.Sequential(*layers)


# The clock of every timing here: wall time by default; `use_thread_clock` switches to the CPU
# time of the calling thread, which a machine shared with other jobs does not inflate (with one
# torch thread all the work runs on that thread).
CLOCK: list[Callable[[], float]] = [time.perf_counter]


def use_thread_clock() -> None:
    """One torch thread and CPU-time timing (see CLOCK)."""
    torch.set_num_threads(1)
    CLOCK[0] = time.thread_time


def _best_ms(fn: Callable[[], object], repeat: int, sync: Callable[[], None]) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeat):
        start = CLOCK[0]()
        fn()
        sync()
        times.append(CLOCK[0]() - start)
    return 1000 * sorted(times)[len(times) // 2]


def decoder_vs_pyg(
    hierarchy: MeshHierarchy,
    device: str = "cpu",
    batch: int = 32,
    repeat: int = 5,
    coarse_features: int = 64,
) -> dict[str, float]:
    """Median forward + backward ms of the paper's decoder (batch ``batch``): handshape's and
    plain PyG's, their ratio, and the largest output difference."""
    torch.manual_seed(0)
    head = GraphCNNHead(2048, hierarchy, coarse_features=coarse_features).to(device)
    for lin in head.convs[-1].lins:  # the zero-initialised output conv would compare zeros
        nn.init.normal_(lin.weight, std=0.1)
    reference = pyg_decoder(head, batch).to(device)
    coarse = torch.randn(batch, head.num_coarse, coarse_features, device=device)
    with torch.no_grad():
        out = head.decode(coarse)
        diff = (out - reference(coarse)).abs().max().item()
        scale = out.abs().max().item()
        # The same comparison in float64 tells rounding from a real difference.
        wide = coarse.double()
        diff64 = (head.double().decode(wide) - reference.double()(wide)).abs().max().item()
        head.float(), reference.float()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def step(decoder: Callable[[torch.Tensor], torch.Tensor], params: nn.Module) -> None:
        params.zero_grad(set_to_none=True)
        decoder(coarse.requires_grad_()).square().mean().backward()

    # Interleaved, so that a change of machine load hits both alike.
    ours, theirs = [], []
    for _ in range(max(1, repeat)):
        ours.append(_best_ms(lambda: step(head.decode, head), 1, sync))
        theirs.append(_best_ms(lambda: step(reference, reference), 1, sync))
    ours_ms, pyg_ms = sorted(ours)[len(ours) // 2], sorted(theirs)[len(theirs) // 2]
    return {
        "handshape_ms": ours_ms,
        "pyg_ms": pyg_ms,
        "speedup": pyg_ms / ours_ms,
        "max_diff": diff,
        "max_abs_output": scale,
        "max_diff_float64": diff64,
    }
