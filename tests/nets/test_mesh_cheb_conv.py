"""Specification of the fast Chebyshev convolution: PyG's ChebConv in values and gradients."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import ChebConv

from handshape.geometry.hierarchy import MeshHierarchy
from handshape.nets.mesh_cheb_conv import MeshChebConv, chebyshev_laplacian
from handshape.nets.node_batch_norm import NodeBatchNorm

pytestmark = pytest.mark.usefixtures("single_thread")


def pyg_reference(
    conv: MeshChebConv, hierarchy: MeshHierarchy, x: torch.Tensor
) -> tuple[ChebConv, torch.Tensor]:
    """Plain PyG ChebConv with conv's weights on the block-diagonal graph of a batch
    (B, S_l, C_in): the textbook way to batch graphs in PyG."""
    reference = ChebConv(conv.in_channels, conv.out_channels, K=len(conv.lins), normalization="sym")
    reference = reference.to(x.dtype)
    reference.load_state_dict(conv.state_dict())
    b, s, c = x.shape
    level = conv.level
    edge_index = hierarchy.edge_index[level]
    blocks = torch.cat([edge_index + i * s for i in range(b)], dim=1)
    weight = hierarchy.edge_weight[level].to(x.dtype).repeat(b)
    lambda_max = torch.full((b,), hierarchy.lambda_max[level], dtype=x.dtype)
    batch = torch.arange(b).repeat_interleave(s)
    out = reference(x.reshape(b * s, c), blocks, weight, batch=batch, lambda_max=lambda_max)
    return reference, out.view(b, s, -1)


def make_conv(
    hierarchy: MeshHierarchy, level: int, c_in: int, c_out: int, **kwargs
) -> MeshChebConv:
    torch.manual_seed(c_in * 10 + c_out)
    conv = MeshChebConv(hierarchy, level, c_in, c_out, **kwargs).double()
    with torch.no_grad():
        if conv.bias is not None:
            conv.bias.normal_()
    return conv


@pytest.mark.parametrize("level", [0, 2, 4])
def test_the_rescaled_laplacian_is_torch_geometrics(hierarchy: MeshHierarchy, level: int) -> None:
    reference = ChebConv(1, 1, K=2, normalization="sym")
    lam = hierarchy.lambda_max[level]
    index, weight = reference.__norm__(
        hierarchy.edge_index[level], hierarchy.num_slots[level],
        hierarchy.edge_weight[level].double(), "sym", torch.tensor(lam, dtype=torch.float64),
        dtype=torch.float64,
    )  # fmt: skip
    ours = chebyshev_laplacian(
        hierarchy.edge_index[level], hierarchy.edge_weight[level], hierarchy.num_slots[level], lam
    ).toarray()
    theirs = torch.zeros(ours.shape, dtype=torch.float64)
    theirs.index_put_((index[1], index[0]), weight, accumulate=True)
    assert torch.allclose(torch.from_numpy(ours), theirs, atol=1e-15, rtol=0)


@pytest.mark.parametrize("c_in,c_out,K", [(3, 32, 3), (64, 3, 2)])
def test_one_seed_gives_the_weights_torch_geometric_would(
    hierarchy: MeshHierarchy, c_in: int, c_out: int, K: int
) -> None:
    torch.manual_seed(7)
    ours = MeshChebConv(hierarchy, 1, c_in, c_out, K=K)
    torch.manual_seed(7)
    theirs = ChebConv(c_in, c_out, K=K, normalization="sym")
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key


# Both evaluation orders: C_in <= C_out runs the Chebyshev recursion on the input, C_out < C_in
# mixes channels first and runs Clenshaw's recurrence on the narrower signals.
SIZES = [(3, 6), (6, 6), (7, 2)]


@pytest.mark.parametrize("c_in,c_out", SIZES)
@pytest.mark.parametrize("K", [1, 2, 3, 4])
@pytest.mark.parametrize("gather", [False, True])
def test_values_and_gradients_equal_torch_geometric(
    hierarchy: MeshHierarchy, c_in: int, c_out: int, K: int, gather: bool
) -> None:
    conv = make_conv(hierarchy, 2, c_in, c_out, K=K, gather=gather)
    x = torch.randn(3, hierarchy.num_slots[2], c_in, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    reference, expected = pyg_reference(conv, hierarchy, x_ref)
    out = conv(x)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)

    upstream = torch.randn_like(out)
    (out * upstream).sum().backward()
    (expected * upstream).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-12, atol=1e-12)
    ours = dict(conv.named_parameters())
    for name, param in reference.named_parameters():
        torch.testing.assert_close(ours[name].grad, param.grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("c_in,c_out", [(64, 64), (64, 32), (32, 3)])
def test_float32_at_paper_sizes_within_1e5(hierarchy: MeshHierarchy, c_in: int, c_out: int) -> None:
    conv = make_conv(hierarchy, 0, c_in, c_out).float()
    x = torch.randn(4, hierarchy.num_slots[0], c_in)
    _, expected = pyg_reference(conv, hierarchy, x)
    torch.testing.assert_close(conv(x), expected, rtol=0, atol=1e-5)


def test_node_major_layout_is_the_transposed_batch(hierarchy: MeshHierarchy) -> None:
    batch_major = make_conv(hierarchy, 1, 4, 5)
    node_major = make_conv(hierarchy, 1, 4, 5, node_dim=0)
    x = torch.randn(2, 3, hierarchy.num_slots[1], 4, dtype=torch.float64)
    expected = batch_major(x)
    out = node_major(x.movedim(-2, 0))
    torch.testing.assert_close(out.movedim(0, -2), expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=f"\\({hierarchy.num_slots[1]}, ..., 4\\)"):
        node_major(x)


@pytest.mark.parametrize("c_in,c_out", SIZES)
def test_inference_path_equals_the_autograd_path(
    hierarchy: MeshHierarchy, c_in: int, c_out: int
) -> None:
    conv = make_conv(hierarchy, 0, c_in, c_out)
    x = torch.randn(2, hierarchy.num_slots[0], c_in, dtype=torch.float64)
    with torch.inference_mode():
        served = conv(x)
    torch.testing.assert_close(served, conv(x), rtol=1e-12, atol=1e-12)


def test_gather_form_is_used_under_tracing(hierarchy: MeshHierarchy) -> None:
    """A traced convolution holds no sparse tensor and still computes the same values."""
    conv = make_conv(hierarchy, 3, 4, 4).float()
    x = torch.randn(2, hierarchy.num_slots[3], 4)
    traced = torch.jit.trace(conv, (x,), check_trace=False)
    assert "sparse" not in traced.inlined_graph.str()
    torch.testing.assert_close(traced(x), conv(x), rtol=0, atol=1e-6)


def test_half_precision_under_autocast(hierarchy: MeshHierarchy) -> None:
    conv = make_conv(hierarchy, 0, 8, 8).float()
    x = torch.randn(2, hierarchy.num_slots[0], 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x)
        with torch.inference_mode():
            served = conv(x)
    torch.testing.assert_close(out.float(), conv(x), rtol=0.05, atol=0.05)
    torch.testing.assert_close(served.float(), conv(x), rtol=0.05, atol=0.05)


def test_moving_the_module_rebuilds_the_matrices(hierarchy: MeshHierarchy) -> None:
    conv = make_conv(hierarchy, 2, 3, 3).float()
    x = torch.randn(1, hierarchy.num_slots[2], 3)
    conv(x)
    conv.double()
    assert conv(x.double()).dtype == torch.float64


# ---- NodeBatchNorm at inference -------------------------------------------------------------


@pytest.mark.parametrize("node_dim", [-2, 0])
def test_node_batch_norm_inference_is_the_running_statistics_affine_map(
    hierarchy: MeshHierarchy, node_dim: int
) -> None:
    norm = NodeBatchNorm(hierarchy, 2, 4, node_dim=node_dim)
    with torch.no_grad():
        norm.norm.running_mean.normal_()
        norm.norm.running_var.uniform_(0.5, 2.0)
        norm.norm.weight.normal_()
        norm.norm.bias.normal_()
    norm.eval()
    x = torch.randn(3, hierarchy.num_slots[2], 4)
    inp = x if node_dim == -2 else x.transpose(0, 1)
    out = norm(inp)
    out = out if node_dim == -2 else out.transpose(0, 1)
    real = torch.from_numpy(hierarchy.is_real[2])
    bn = norm.norm
    expected = (x - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    torch.testing.assert_close(out[:, real], expected[:, real])
    assert torch.count_nonzero(out[:, ~real]) == 0


def test_a_used_convolution_deep_copies(hierarchy: MeshHierarchy) -> None:
    """Sparse matrices cannot be deep-copied: the cache is dropped and rebuilt by the copy."""
    import copy

    conv = make_conv(hierarchy, 2, 3, 3)
    x = torch.randn(1, hierarchy.num_slots[2], 3, dtype=torch.float64)
    expected = conv(x)
    torch.testing.assert_close(copy.deepcopy(conv)(x), expected)
