"""The operators of a ported TFLite graph as PyTorch modules, and `TfliteNet`, which runs them in
a precomputed plan of reused activation slots (layouts: see the package docstring)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from handshape.inference.tflite_graph.schema import ACT_NONE, ACT_RELU, ACT_RELU6, ACT_RELU_N1_TO_1


def _activate_(x: torch.Tensor, code: int) -> torch.Tensor:
    """A fused activation applied in place to a freshly computed `x` (any shape)."""
    if code == ACT_RELU:
        return x.clamp_(min=0.0)
    if code == ACT_RELU6:
        return x.clamp_(0.0, 6.0)
    if code == ACT_RELU_N1_TO_1:
        return x.clamp_(-1.0, 1.0)
    return x


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF 'SAME' padding of one spatial axis: (before, after), the odd pixel after.

    The output has ceil(size / stride) positions; e.g. size 192, kernel 5, stride 2 -> (1, 2)."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class Op(nn.Module):
    """One operator of the plan: reads the slots `reads`, writes the slot `writes`.

    `reuse` names the input positions the planner lets the operator overwrite (their value has
    no other reader and is no view of a live one); operators that cannot use it ignore it, and
    none overwrites a tensor that autograd records (its producer may have saved it)."""

    reads: tuple[int, ...] = ()
    writes: int = 0
    reuse: frozenset[int] = frozenset()
    makes_view = False  # the output may share memory with input 0 (RESHAPE)

    def constant(self, name: str, value: np.ndarray | torch.Tensor) -> None:
        tensor = torch.as_tensor(value, dtype=torch.float32)
        self.register_buffer(name, tensor.contiguous(), persistent=False)


class Conv(Op):
    """CONV_2D and DEPTHWISE_CONV_2D: (B, Cin, H, W) -> (B, Cout, H', W')."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: tuple[int, int],
        dilation: tuple[int, int],
        pads: tuple[int, int, int, int],
        groups: int,
        activation: int,
    ) -> None:
        super().__init__()
        self.constant("weight", weight)
        self.weight = self.weight.contiguous(memory_format=torch.channels_last)
        if bias is not None:
            self.constant("bias", bias)
        else:
            self.bias = None
        (top, bottom), (left, right) = pads[:2], pads[2:]
        self.pad: tuple[int, int, int, int] | None = None
        if top == bottom and left == right:  # inside the convolution, at no cost
            self.padding = (top, left)
        elif groups > 1 and dilation == (1, 1):
            # TF's odd pixel after (SAME, stride 2): pad max(before, after) on both sides and
            # give the kernel zero taps in front (or behind), which shifts every window back
            # onto TF's grid. For depthwise kernels, whose arithmetic is cheap, that beats a
            # padded copy of the input by ~2x; the zero taps add exact zeros.
            self.padding = (max(top, bottom), max(left, right))
            extend = (
                self.padding[1] - left,
                self.padding[1] - right,
                self.padding[0] - top,
                self.padding[0] - bottom,
            )
            self.weight = F.pad(self.weight, extend).contiguous(memory_format=torch.channels_last)
        else:  # a dense convolution's taps cost more than copying its input once
            self.padding, self.pad = (0, 0), (left, right, top, bottom)
        self.stride, self.dilation, self.groups = stride, dilation, groups
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad)
        y = F.conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )
        return _activate_(y, self.activation)


class Pointwise(Op):
    """A 1x1 CONV_2D of stride 1 without padding: (B, Cin, H, W) -> (B, Cout, H, W), and with
    `residual` set, the ADD of a same-shape tensor that reads it: forward(x, residual).

    On channels_last memory the activation already is a (B * H * W, Cin) matrix, so the layer
    is one GEMM, without the copies of PyTorch's CPU 1x1 convolution path. The bias is added
    after a plain product (cheaper than addmm's broadcast copy); a residual takes the bias
    first and then the product accumulates into it (``addmm_``), which saves the ADD's pass
    over memory. That only reassociates the float sums, as any GEMM blocking does. ONNX
    export writes Conv and Add, which the runtimes lay out and fuse themselves."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        activation: int,
        size: tuple[int, int],
    ) -> None:
        super().__init__()
        # (Cin, Cout): the GEMM runs ~10 % faster on a contiguous right-hand matrix
        self.constant("weight_t", weight.reshape(weight.shape[0], weight.shape[1]).t())
        if bias is not None:
            self.constant("bias", bias)
        else:
            self.bias = None
        self.activation, self.size = activation, size
        self.residual = False
        self.residual_activation = ACT_NONE

    def fuse_residual(self, activation: int) -> None:
        """Take over the ADD (with its fused `activation`) of this layer's output and a second
        input; only valid when the layer itself has no activation."""
        assert self.activation == ACT_NONE
        self.residual, self.residual_activation = True, activation

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():
            y = F.conv2d(x, self.weight_t.t()[:, :, None, None], self.bias)
            y = _activate_(y, self.activation)
            if residual is None:
                return y
            return _activate_(y + residual, self.residual_activation)
        height, width = self.size
        rows = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
        if residual is None:
            y = torch.mm(rows, self.weight_t)
            if self.bias is not None:
                y.add_(self.bias)
            y = _activate_(y, self.activation)
        else:
            # reshape is a view of channels_last memory (else a copy, used alike)
            y = residual.permute(0, 2, 3, 1).reshape(rows.shape[0], -1)
            if 1 not in self.reuse or residual.requires_grad:
                y = y + self.bias if self.bias is not None else y.clone()
            elif self.bias is not None:
                y.add_(self.bias)
            y = _activate_(y.addmm_(rows, self.weight_t), self.residual_activation)
        return y.reshape(-1, height, width, y.shape[1]).permute(0, 3, 1, 2)


class Add(Op):
    """ADD of two activations of one shape, or of an activation and a broadcast constant."""

    def __init__(self, constant: np.ndarray | None, activation: int) -> None:
        super().__init__()
        if constant is not None:
            self.constant("other", constant)
        else:
            self.other = None
        self.activation = activation

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        if b is None:
            b = self.other
        # IEEE addition commutes exactly, so either operand may take the sum.
        if 0 in self.reuse and not a.requires_grad:
            y = a.add_(b)
        elif 1 in self.reuse and b is not None and not b.requires_grad:
            y = b.add_(a)
        else:
            y = a + b
        return _activate_(y, self.activation)


class PRelu(Op):
    """PRELU with a constant alpha: x if x >= 0 else alpha * x."""

    def __init__(self, alpha: np.ndarray, channels: int | None) -> None:
        super().__init__()
        # A per-channel alpha (the usual case) takes F.prelu's single fused kernel.
        self.per_channel = channels is not None
        self.constant("alpha", alpha.reshape(channels) if channels is not None else alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.per_channel:
            return F.prelu(x, self.alpha)
        return torch.where(x >= 0, x, x * self.alpha)


class MaxPool(Op):
    """MAX_POOL_2D: (B, C, H, W) -> (B, C, H', W')."""

    def __init__(
        self,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        pads: tuple[int, int, int, int],
        activation: int,
    ) -> None:
        super().__init__()
        top, bottom, left, right = pads
        self.kernel, self.stride, self.activation = kernel, stride, activation
        self.pad = (left, right, top, bottom) if any(pads) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            # TFLite's SAME windows skip padded pixels; -inf never wins a max.
            x = F.pad(x, self.pad, value=-math.inf)
        y = F.max_pool2d(x, self.kernel, self.stride)
        return _activate_(y, self.activation)


class Pad(Op):
    """PAD with zeros; `pads` in F.pad's order (last axis first) for the stored layout."""

    def __init__(self, pads: tuple[int, ...]) -> None:
        super().__init__()
        self.pads = pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads)


class Resize(Op):
    """RESIZE_BILINEAR: (B, C, H, W) -> (B, C, h, w).

    TF's align_corners and half_pixel_centers modes are PyTorch's align_corners=True / False
    (both clamp source coordinates at the border the same way). TF's legacy mode (neither)
    samples at out * in / out without the half-pixel shift, which F.interpolate lacks: there
    the port interpolates with precomputed source rows / columns and weights."""

    def __init__(
        self, size: tuple[int, int], in_size: tuple[int, int], align_corners: bool, half_pixel: bool
    ) -> None:
        super().__init__()
        self.size, self.align_corners = size, align_corners
        self.legacy = not align_corners and not half_pixel
        if self.legacy:
            for axis, (n_out, n_in) in zip("hw", zip(size, in_size, strict=True), strict=True):
                source = np.arange(n_out, dtype=np.float64) * (n_in / n_out)
                low = np.floor(source).astype(np.int64)
                high = np.minimum(low + 1, n_in - 1)
                self.register_buffer(f"low_{axis}", torch.from_numpy(low), persistent=False)
                self.register_buffer(f"high_{axis}", torch.from_numpy(high), persistent=False)
                self.constant(f"weight_{axis}", (source - low).astype(np.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.legacy:
            return F.interpolate(x, self.size, mode="bilinear", align_corners=self.align_corners)
        top, bottom = x.index_select(2, self.low_h), x.index_select(2, self.high_h)
        x = top + (bottom - top) * self.weight_h[:, None]
        left, right = x.index_select(3, self.low_w), x.index_select(3, self.high_w)
        return left + (right - left) * self.weight_w


class Reshape(Op):
    """RESHAPE to (B, *shape) in TF's layout; 4-D inputs and outputs pass through NHWC."""

    makes_view = True

    def __init__(self, shape: tuple[int, ...], from_4d: bool, to_4d: bool) -> None:
        super().__init__()
        self.shape, self.from_4d, self.to_4d = shape, from_4d, to_4d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.from_4d:
            x = x.permute(0, 2, 3, 1)
        # -1 keeps the batch free in eager mode, tracing and ONNX alike.
        y = x.reshape(-1, *self.shape)
        return y.permute(0, 3, 1, 2) if self.to_4d else y


class Concat(Op):
    """CONCATENATION along one (layout-translated) axis."""

    def __init__(self, axis: int, activation: int) -> None:
        super().__init__()
        self.axis, self.activation = axis, activation

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return _activate_(torch.cat(xs, self.axis), self.activation)


class Mean(Op):
    """MEAN over (layout-translated) axes; without keep_dims a 4-D input's survivors come back
    in TF's order (e.g. (B, C) for MEAN over H and W)."""

    def __init__(self, axes: tuple[int, ...], keep_dims: bool, tf_order: tuple[int, ...] | None):
        super().__init__()
        self.axes, self.keep_dims, self.tf_order = axes, keep_dims, tf_order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(self.axes, keepdim=self.keep_dims)
        return y.permute(self.tf_order) if self.tf_order is not None else y


class FullyConnected(Op):
    """FULLY_CONNECTED: (B, ..., in) -> (B, out), a 4-D input flattened in NHWC order, or
    (B, ..., out) with keep_num_dims."""

    def __init__(
        self,
        weight: np.ndarray,
        bias: np.ndarray | None,
        activation: int,
        from_4d: bool,
        keep_shape: tuple[int, ...] | None,
    ) -> None:
        super().__init__()
        self.constant("weight", weight)
        if bias is not None:
            self.constant("bias", bias)
        else:
            self.bias = None
        self.activation, self.from_4d, self.keep_shape = activation, from_4d, keep_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.from_4d:
            x = x.permute(0, 2, 3, 1)
        y = F.linear(x.reshape(-1, self.weight.shape[1]), self.weight, self.bias)
        y = _activate_(y, self.activation)
        if self.keep_shape is None:
            return y
        y = y.reshape(-1, *self.keep_shape)
        return y.permute(0, 3, 1, 2) if self.from_4d else y


class Logistic(Op):
    """LOGISTIC: the sigmoid, elementwise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sigmoid_() if 0 in self.reuse and not x.requires_grad else torch.sigmoid(x)


class TfliteNet(nn.Module):
    """A float TFLite graph as a PyTorch module (see the module docstring for the layouts).

    ``forward(image)``: image (B, C, H, W) float32 (for MediaPipe's networks RGB in [0, 1]) ->
    tuple of the graph's outputs in the file's order, each (B, ...) (TFLite's shape with batch
    B; a 4-D output would come back NCHW). Attributes: ``path`` (the file), ``input_shape``
    (C, H, W), ``output_names`` (the file's tensor names), ``ops`` (the plan's operators).
    """

    def __init__(
        self,
        path: Path,
        ops: Sequence[Op],
        slots: int,
        input_slot: int,
        output_slots: Sequence[int],
        input_shape: tuple[int, ...],
        output_names: Sequence[str],
    ) -> None:
        super().__init__()
        self.path = path
        self.ops = nn.ModuleList(ops)
        self.slots, self.input_slot = slots, input_slot
        self.output_slots = tuple(output_slots)
        self.input_shape = tuple(input_shape)
        self.output_names = tuple(output_names)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not torch.jit.is_tracing() and tuple(image.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{self.path.name} takes (B, {', '.join(map(str, self.input_shape))}) images, "
                f"not {tuple(image.shape)}"
            )
        values: list[Any] = [None] * self.slots
        if image.dim() == 4:
            image = image.contiguous(memory_format=torch.channels_last)
        values[self.input_slot] = image
        for op in self.ops:
            reads = op.reads
            if len(reads) == 1:
                values[op.writes] = op(values[reads[0]])
            else:
                values[op.writes] = op(*[values[i] for i in reads])
        return tuple(values[i] for i in self.output_slots)

    def extra_repr(self) -> str:
        return f"path={str(self.path)!r}, input_shape={self.input_shape}"
