"""A PyTorch port of float TensorFlow Lite networks, read straight from their .tflite flatbuffers.

MediaPipe Hands' palm detector and hand landmark network ship as .tflite files. Run by LiteRT
they take one image at a time, on the CPU, outside any PyTorch graph; ported to a `TfliteNet`
they batch, run on a GPU, and export (``torch.onnx.export``, ``torch.jit.trace``) together with
the rest of a PyTorch model. `load_tflite` reads the graph with the ``tflite`` package and
translates it operator by operator; nothing of TensorFlow is needed at run time.

Layout. TFLite tensors are NHWC with batch 1. A TfliteNet takes images (B, C, H, W) and keeps
every 4-D activation NCHW (in ``torch.channels_last`` memory, the fast path of CPU
convolutions); activations of other ranks keep TFLite's layout with the batch first. Where a
result depends on TF's axis order, the port translates: 4-D RESHAPE inputs are permuted to NHWC
first (and 4-D results back), CONCATENATION / MEAN axes and PAD paddings are renumbered, a 4-D
FULLY_CONNECTED input is flattened in NHWC order, and constants that broadcast against a 4-D
tensor are permuted like it. The file's batch size (1) is not baked in: RESHAPE and
FULLY_CONNECTED keep the batch dimension free, so the outputs are (B, ...), and a traced or
exported net takes any batch.

Constants become float32 buffers at load time: DEQUANTIZE of a constant (float16, or int8 /
uint8 with scales) is folded, and weights are converted once to PyTorch's layouts (OIHW
convolution kernels, depthwise kernels as groups=C convolutions, (out, in) linear weights).
They are registered non-persistent: they come from the .tflite file, so a checkpoint of a
model holding a TfliteNet neither carries nor expects them.

TF's 'SAME' padding puts the odd pixel after (pad_total = max((out - 1) * stride + k_eff - in,
0), before = total // 2, see `same_padding`). Symmetric padding goes into the convolution; a
depthwise convolution with TF's odd pixel pads max(before, after) and gets zero kernel taps in
front, which puts its windows back on TF's grid; a dense one, and max pooling (with -inf), pad
through ``F.pad``. Fused activations (RELU, RELU_N1_TO_1, RELU6: TFLite's
kernels ignore or refuse a fused TANH, so the port refuses it), dilations, PRELU's alpha
broadcasting and RESIZE_BILINEAR's align_corners / half_pixel_centers modes follow TFLite's
kernels. Operators
or options outside this float subset raise a ValueError naming the file, the operator and the
option.

Speed (CPU, batch 1 is the common case). The forward pass runs a precomputed plan: activations
live in a list of reused slots (a slot is freed after its last reader), with no lookups by
tensor id. 1x1 convolutions, most of the arithmetic, are GEMMs on the channels_last memory,
and an ADD of such a layer's output takes the GEMM's accumulator (``addmm_``) instead of a pass
of its own; an ADD or LOGISTIC overwrites an input that nothing else reads. These only
reorder float32 sums: outputs agree with LiteRT about as closely as LiteRT's XNNPack and
builtin kernels agree with each other (1e-4 on pixel-scale outputs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SUPPORTED_OPERATORS", "TfliteNet", "load_tflite"]

# Builtin operator codes (tflite.BuiltinOperator), kept here so that the schema package is only
# imported when a file is read.
_ADD, _CONCATENATION, _CONV_2D, _DEPTHWISE_CONV_2D, _DEQUANTIZE = 0, 2, 3, 4, 6
_FULLY_CONNECTED, _LOGISTIC, _MAX_POOL_2D, _RESHAPE, _RESIZE_BILINEAR = 9, 14, 17, 22, 23
_PAD, _MEAN, _PRELU = 34, 40, 54
SUPPORTED_OPERATORS = (
    "ADD",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEQUANTIZE",
    "FULLY_CONNECTED",
    "LOGISTIC",
    "MAX_POOL_2D",
    "MEAN",
    "PAD",
    "PRELU",
    "RESHAPE",
    "RESIZE_BILINEAR",
)

# tflite.TensorType codes -> numpy dtypes of constants read from buffers
_FLOAT32, _FLOAT16, _INT32, _UINT8, _INT64, _INT8 = 0, 1, 2, 3, 4, 9
_NUMPY_TYPES = {
    _FLOAT32: np.float32,
    _FLOAT16: np.float16,
    _INT32: np.int32,
    _UINT8: np.uint8,
    _INT64: np.int64,
    _INT8: np.int8,
}
_TYPE_NAMES = {0: "FLOAT32", 1: "FLOAT16", 2: "INT32", 3: "UINT8", 4: "INT64", 9: "INT8"}

# tflite.ActivationFunctionType. TFLite's kernels fuse only the RELU family (clamps): a fused
# TANH or SIGN_BIT is ignored by CONV_2D, DEPTHWISE_CONV_2D and ADD and refused by
# FULLY_CONNECTED (LiteRT 2.3), so the port refuses them too rather than pick a meaning.
_ACT_NONE, _ACT_RELU, _ACT_RELU_N1_TO_1, _ACT_RELU6 = 0, 1, 2, 3
_ACTIVATION_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
_SAME, _VALID = 0, 1  # tflite.Padding

# TF axis a of a 4-D NHWC tensor is axis _TO_NCHW[a] of its NCHW twin
_TO_NCHW = (0, 3, 1, 2)
_NCHW_AXIS = (0, 2, 3, 1)


def _activate_(x: torch.Tensor, code: int) -> torch.Tensor:
    """A fused activation applied in place to a freshly computed `x` (any shape)."""
    if code == _ACT_RELU:
        return x.clamp_(min=0.0)
    if code == _ACT_RELU6:
        return x.clamp_(0.0, 6.0)
    if code == _ACT_RELU_N1_TO_1:
        return x.clamp_(-1.0, 1.0)
    return x


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF 'SAME' padding of one spatial axis: (before, after), the odd pixel after.

    The output has ceil(size / stride) positions; e.g. size 192, kernel 5, stride 2 -> (1, 2)."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class _Op(nn.Module):
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


class _Conv(_Op):
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


class _Pointwise(_Op):
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
        self.residual_activation = _ACT_NONE

    def fuse_residual(self, activation: int) -> None:
        """Take over the ADD (with its fused `activation`) of this layer's output and a second
        input; only valid when the layer itself has no activation."""
        assert self.activation == _ACT_NONE
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


class _Add(_Op):
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


class _PRelu(_Op):
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


class _MaxPool(_Op):
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


class _Pad(_Op):
    """PAD with zeros; `pads` in F.pad's order (last axis first) for the stored layout."""

    def __init__(self, pads: tuple[int, ...]) -> None:
        super().__init__()
        self.pads = pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads)


class _Resize(_Op):
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


class _Reshape(_Op):
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


class _Concat(_Op):
    """CONCATENATION along one (layout-translated) axis."""

    def __init__(self, axis: int, activation: int) -> None:
        super().__init__()
        self.axis, self.activation = axis, activation

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return _activate_(torch.cat(xs, self.axis), self.activation)


class _Mean(_Op):
    """MEAN over (layout-translated) axes; without keep_dims a 4-D input's survivors come back
    in TF's order (e.g. (B, C) for MEAN over H and W)."""

    def __init__(self, axes: tuple[int, ...], keep_dims: bool, tf_order: tuple[int, ...] | None):
        super().__init__()
        self.axes, self.keep_dims, self.tf_order = axes, keep_dims, tf_order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(self.axes, keepdim=self.keep_dims)
        return y.permute(self.tf_order) if self.tf_order is not None else y


class _FullyConnected(_Op):
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


class _Logistic(_Op):
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
        ops: Sequence[_Op],
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


class _Graph:
    """Reads one .tflite file's main subgraph: tensors, constants, options, errors."""

    def __init__(self, path: Path, data: bytes) -> None:
        import tflite  # the schema package takes ~50 ms to import: only pay it when reading

        self.tflite, self.path, self.data = tflite, path, data
        try:
            self.model = tflite.Model.GetRootAsModel(data, 0)
            self.subgraph = self.model.Subgraphs(0)
            codes = self.model.OperatorCodes
            self.codes = [
                max(codes(i).BuiltinCode(), codes(i).DeprecatedBuiltinCode())
                for i in range(self.model.OperatorCodesLength())
            ]
            self.custom = [codes(i).CustomCode() for i in range(self.model.OperatorCodesLength())]
        except Exception as err:  # a corrupt table shows up as any indexing / struct error
            raise ValueError(f"{path}: not a readable TFLite flatbuffer ({err!r})") from err
        if self.subgraph is None:
            raise ValueError(f"{path}: the TFLite flatbuffer has no subgraph")
        self.names = {
            value: name
            for name, value in vars(tflite.BuiltinOperator).items()
            if not name.startswith("_")
        }
        self.constants: dict[int, np.ndarray] = {}
        self._tensors: dict[int, Any] = {}
        self._shapes: dict[int, tuple[int, ...]] = {}

    # errors ---------------------------------------------------------------------------------
    def op_name(self, op: Any) -> str:
        code = self.codes[op.OpcodeIndex()]
        if code == 32:  # CUSTOM
            custom = self.custom[op.OpcodeIndex()]
            return f"CUSTOM '{custom.decode() if custom else '?'}'"
        return self.names.get(code, f"builtin code {code}")

    def unsupported(self, index: int, op: Any, what: str) -> ValueError:
        return ValueError(
            f"{self.path}: operator {index} ({self.op_name(op)}): unsupported {what} (the port "
            f"handles float graphs of {', '.join(SUPPORTED_OPERATORS)})"
        )

    # tensors --------------------------------------------------------------------------------
    def tensor(self, index: int) -> Any:
        # each accessor call decodes the flatbuffer afresh: keep the few hundred tables
        if index not in self._tensors:
            self._tensors[index] = self.subgraph.Tensors(index)
        return self._tensors[index]

    def shape(self, index: int) -> tuple[int, ...]:
        if index not in self._shapes:
            tensor = self.tensor(index)
            self._shapes[index] = (
                tuple(int(n) for n in tensor.ShapeAsNumpy()) if (tensor.ShapeLength()) else ()
            )
        return self._shapes[index]

    def type(self, index: int) -> int:
        return self.tensor(index).Type()

    def raw_constant(self, index: int) -> np.ndarray | None:
        """The tensor's buffer as a numpy array of its own type; None for an activation."""
        if index in self.constants:
            return self.constants[index]
        tensor = self.tensor(index)
        buffer = self.model.Buffers(tensor.Buffer())
        if buffer is None:
            return None
        if buffer.Offset() > 1:  # large models keep their buffers after the flatbuffer
            raw = np.frombuffer(self.data, np.uint8, buffer.Size(), buffer.Offset())
        elif buffer.DataLength():
            raw = buffer.DataAsNumpy()
        else:
            return None
        dtype = _NUMPY_TYPES.get(tensor.Type())
        if dtype is None:
            raise ValueError(
                f"{self.path}: constant tensor {index} ('{tensor.Name().decode()}') has "
                f"unsupported type {_TYPE_NAMES.get(tensor.Type(), tensor.Type())}"
            )
        return raw.view(dtype).reshape(self.shape(index))

    def float_constant(self, index: int, op_index: int, op: Any) -> np.ndarray | None:
        """A float32 constant (a FLOAT32 buffer or a folded DEQUANTIZE); None for an activation."""
        if index in self.constants:
            return self.constants[index]
        value = self.raw_constant(index)
        if value is None:
            return None
        if value.dtype != np.float32:
            tname = _TYPE_NAMES.get(self.type(index), self.type(index))
            raise self.unsupported(op_index, op, f"constant of type {tname} (tensor {index})")
        return value.copy()  # out of the (read-only) file bytes, so torch may own it

    def dequantized(self, index: int, op_index: int, op: Any) -> np.ndarray | None:
        """DEQUANTIZE's input as float32: float16, or int8 / uint8 with (per-tensor or per-axis)
        scales and zero points; None for an activation."""
        value = self.raw_constant(index)
        if value is None:
            return None
        if value.dtype == np.float16:
            return value.astype(np.float32)
        quant = self.tensor(index).Quantization()
        if value.dtype.kind not in "iu" or quant is None or not quant.ScaleLength():
            tname = _TYPE_NAMES.get(self.type(index), self.type(index))
            raise self.unsupported(op_index, op, f"dequantization of a {tname} tensor")
        scale = quant.ScaleAsNumpy().astype(np.float32)
        zero = (
            quant.ZeroPointAsNumpy().astype(np.float32)
            if quant.ZeroPointLength()
            else np.zeros_like(scale)
        )
        if scale.size > 1:  # per-axis: scales along the quantized dimension
            shape = [1] * value.ndim
            shape[quant.QuantizedDimension()] = scale.size
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        return ((value.astype(np.float32) - zero) * scale).astype(np.float32)

    def int_constant(self, index: int, op_index: int, op: Any) -> list[int]:
        value = self.raw_constant(index)
        if value is None or value.dtype.kind not in "iu":
            raise self.unsupported(op_index, op, f"tensor {index} that is not an integer constant")
        return [int(v) for v in value.reshape(-1)]

    def options(self, index: int, op: Any, cls: Callable[[], Any]) -> Any:
        table = op.BuiltinOptions()
        if table is None:
            raise self.unsupported(index, op, "operator without its options table")
        options = cls()
        options.Init(table.Bytes, table.Pos)
        return options


def _activation_code(graph: _Graph, index: int, op: Any, code: int) -> int:
    if code not in (_ACT_NONE, _ACT_RELU, _ACT_RELU_N1_TO_1, _ACT_RELU6):
        name = _ACTIVATION_NAMES.get(code, str(code))
        raise graph.unsupported(
            index,
            op,
            f"option fused_activation_function={name} (TFLite fuses only RELU, "
            "RELU_N1_TO_1 and RELU6: its kernels ignore or refuse the others)",
        )
    return code


def _conv(graph: _Graph, index: int, op: Any, ins: list[int], out: int) -> _Op:
    tfl = graph.tflite
    depthwise = graph.codes[op.OpcodeIndex()] == _DEPTHWISE_CONV_2D
    cls = tfl.DepthwiseConv2DOptions if depthwise else tfl.Conv2DOptions
    opt = graph.options(index, op, cls)
    kernel = graph.float_constant(ins[1], index, op)
    if kernel is None:
        raise graph.unsupported(index, op, "option: filter computed at run time")
    bias = graph.float_constant(ins[2], index, op) if len(ins) > 2 and ins[2] >= 0 else None
    in_shape, out_shape = graph.shape(ins[0]), graph.shape(out)
    if len(in_shape) != 4:
        raise graph.unsupported(index, op, f"input of rank {len(in_shape)}")
    channels = in_shape[3]
    weight = torch.from_numpy(np.ascontiguousarray(kernel))
    if depthwise:
        # TFLite (1, KH, KW, C * m), output channel c * m + k reading input c, is PyTorch's
        # groups=C order; the multiplier follows from the shapes (the option may be stale).
        weight, groups = weight.permute(3, 0, 1, 2), channels
        if kernel.shape[3] % channels:
            raise graph.unsupported(index, op, f"option depth_multiplier ({kernel.shape})")
    else:  # OHWI -> OIHW; a filter with fewer input channels than the input means groups
        weight = weight.permute(0, 3, 1, 2)
        if channels % kernel.shape[3]:
            raise graph.unsupported(index, op, f"filter of shape {kernel.shape}")
        groups = channels // kernel.shape[3]
    stride = (opt.StrideH(), opt.StrideW())
    dilation = (opt.DilationHFactor(), opt.DilationWFactor())
    if min(stride) < 1 or min(dilation) < 1:
        raise graph.unsupported(index, op, f"option stride={stride} / dilation={dilation}")
    pads = _window_pads(
        graph, index, op, opt.Padding(), in_shape, out_shape, kernel.shape[1:3], stride, dilation
    )
    act = _activation_code(graph, index, op, opt.FusedActivationFunction())
    torch_bias = None if bias is None else torch.from_numpy(bias)
    if kernel.shape[1:3] == (1, 1) and stride == (1, 1) and groups == 1 and not any(pads):
        return _Pointwise(weight, torch_bias, act, (out_shape[1], out_shape[2]))
    return _Conv(weight, torch_bias, stride, dilation, pads, groups, act)


def _window_pads(
    graph: _Graph,
    index: int,
    op: Any,
    padding: int,
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    kernel: Sequence[int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a SAME / VALID window op, checked against the file's output."""
    if padding == _SAME:
        pads = [same_padding(in_shape[1 + a], kernel[a], stride[a], dilation[a]) for a in (0, 1)]
    elif padding == _VALID:
        pads = [(0, 0), (0, 0)]
    else:
        raise graph.unsupported(index, op, f"option padding={padding}")
    for a in (0, 1):
        effective = (kernel[a] - 1) * dilation[a] + 1
        expected = (in_shape[1 + a] + sum(pads[a]) - effective) // stride[a] + 1
        if expected != out_shape[1 + a]:
            raise graph.unsupported(
                index, op, f"output shape {out_shape} (the options give {expected} on axis {a + 1})"
            )
    return (*pads[0], *pads[1])


def _to_layout(value: np.ndarray, rank: int) -> np.ndarray:
    """A constant that broadcasts against a rank-`rank` TF tensor, in the stored layout."""
    if value.ndim > rank:
        raise ValueError(f"constant of shape {value.shape} cannot broadcast to rank {rank}")
    value = value.reshape((1,) * (rank - value.ndim) + value.shape)
    return np.ascontiguousarray(value.transpose(_TO_NCHW)) if rank == 4 else value


def _add(graph: _Graph, index: int, op: Any, ins: list[int], out: int) -> tuple[_Op, list[int]]:
    opt = graph.options(index, op, graph.tflite.AddOptions)
    act = _activation_code(graph, index, op, opt.FusedActivationFunction())
    values = [graph.float_constant(i, index, op) for i in ins]
    shapes = [graph.shape(i) for i in ins]
    if values[0] is None and values[1] is None:
        same_rank = len(shapes[0]) == len(shapes[1])
        if not same_rank:
            raise graph.unsupported(index, op, f"broadcast of shapes {shapes[0]} and {shapes[1]}")
        return _Add(None, act), list(ins)
    if values[0] is not None and values[1] is not None:
        raise graph.unsupported(index, op, "addition of two constants")
    live = 0 if values[0] is None else 1
    constant = values[1 - live]
    assert constant is not None
    try:
        stored = _to_layout(constant, len(shapes[live]))
    except ValueError as err:
        raise graph.unsupported(index, op, str(err)) from err
    return _Add(stored, act), [ins[live]]


def _prelu(graph: _Graph, index: int, op: Any, ins: list[int], out: int) -> _Op:
    alpha = graph.float_constant(ins[1], index, op)
    if alpha is None:
        raise graph.unsupported(index, op, "alpha computed at run time")
    rank = len(graph.shape(ins[0]))
    try:
        stored = _to_layout(alpha, rank)
    except ValueError as err:
        raise graph.unsupported(index, op, str(err)) from err
    channels = None
    if rank == 4 and stored.size == stored.shape[1]:
        channels = stored.shape[1]
    return _PRelu(stored, channels)


def _max_pool(graph: _Graph, index: int, op: Any, ins: list[int], out: int) -> _Op:
    opt = graph.options(index, op, graph.tflite.Pool2DOptions)
    in_shape = graph.shape(ins[0])
    if len(in_shape) != 4:
        raise graph.unsupported(index, op, f"input of rank {len(in_shape)}")
    kernel, stride = (opt.FilterHeight(), opt.FilterWidth()), (opt.StrideH(), opt.StrideW())
    pads = _window_pads(
        graph, index, op, opt.Padding(), in_shape, graph.shape(out), kernel, stride, (1, 1)
    )
    act = _activation_code(graph, index, op, opt.FusedActivationFunction())
    return _MaxPool(kernel, stride, pads, act)


def _pad(graph: _Graph, index: int, op: Any, ins: list[int], out: int) -> _Op:
    rank = len(graph.shape(ins[0]))
    flat = graph.int_constant(ins[1], index, op)
    if len(flat) != 2 * rank:
        raise graph.unsupported(index, op, f"paddings {flat} for rank {rank}")
    pairs = [(flat[2 * a], flat[2 * a + 1]) for a in range(rank)]
    if pairs[0] != (0, 0):
        raise graph.unsupported(index, op, "padding of the batch axis")
    if rank == 4:
        pairs = [pairs[a] for a in _TO_NCHW]
    # F.pad lists the last axis first
    return _Pad(tuple(n for pair in reversed(pairs[1:]) for n in pair))


def _resize(graph: _Graph, index: int, op: Any, ins: list[int], out: int) -> _Op:
    opt = graph.options(index, op, graph.tflite.ResizeBilinearOptions)
    in_shape = graph.shape(ins[0])
    size = graph.int_constant(ins[1], index, op)
    if len(in_shape) != 4 or len(size) != 2:
        raise graph.unsupported(index, op, f"input {in_shape} / size {size}")
    align, half = bool(opt.AlignCorners()), bool(opt.HalfPixelCenters())
    if align and half:
        raise graph.unsupported(index, op, "option align_corners with half_pixel_centers")
    return _Resize((size[0], size[1]), (in_shape[1], in_shape[2]), align, half)


def _reshape(graph: _Graph, index: int, op: Any, ins: list[int], out: int) -> _Op:
    in_shape, out_shape = graph.shape(ins[0]), graph.shape(out)
    # The output tensor's static shape already resolves any -1 of the new_shape input.
    if not in_shape or not out_shape or in_shape[0] != out_shape[0]:
        raise graph.unsupported(
            index, op, f"reshape {in_shape} -> {out_shape} across the batch axis"
        )
    return _Reshape(out_shape[1:], len(in_shape) == 4, len(out_shape) == 4)


def _concat(graph: _Graph, index: int, op: Any, ins: list[int], out: int) -> tuple[_Op, list[int]]:
    opt = graph.options(index, op, graph.tflite.ConcatenationOptions)
    rank = len(graph.shape(out))
    axis = opt.Axis() % rank
    if axis == 0:
        raise graph.unsupported(index, op, "option axis=0 (concatenation along the batch)")
    if any(graph.raw_constant(i) is not None for i in ins):
        raise graph.unsupported(index, op, "constant input")
    act = _activation_code(graph, index, op, opt.FusedActivationFunction())
    return _Concat(_NCHW_AXIS[axis] if rank == 4 else axis, act), list(ins)


def _mean(graph: _Graph, index: int, op: Any, ins: list[int], out: int) -> _Op:
    opt = graph.options(index, op, graph.tflite.ReducerOptions)
    rank = len(graph.shape(ins[0]))
    axes = sorted({a % rank for a in graph.int_constant(ins[1], index, op)})
    if not axes or 0 in axes:
        raise graph.unsupported(index, op, f"mean over axes {axes} (none, or the batch)")
    keep = bool(opt.KeepDims())
    if rank != 4:
        return _Mean(tuple(axes), keep, None)
    stored = tuple(sorted(_NCHW_AXIS[a] for a in axes))
    order = None
    if not keep:
        # torch leaves the survivors in NCHW order, TF in its own: e.g. (H, C) vs (C, H)
        kept = [a for a in range(4) if a not in axes]
        nchw = sorted(_NCHW_AXIS[a] for a in kept)
        order = tuple(nchw.index(_NCHW_AXIS[a]) for a in kept)
        if order == tuple(range(len(order))):
            order = None
    return _Mean(stored, keep, order)


def _fully_connected(graph: _Graph, index: int, op: Any, ins: list[int], out: int) -> _Op:
    opt = graph.options(index, op, graph.tflite.FullyConnectedOptions)
    if opt.WeightsFormat() != 0:
        raise graph.unsupported(index, op, f"option weights_format={opt.WeightsFormat()}")
    weight = graph.float_constant(ins[1], index, op)
    if weight is None or weight.ndim != 2:
        raise graph.unsupported(index, op, "weights computed at run time")
    bias = graph.float_constant(ins[2], index, op) if len(ins) > 2 and ins[2] >= 0 else None
    in_shape, out_shape = graph.shape(ins[0]), graph.shape(out)
    act = _activation_code(graph, index, op, opt.FusedActivationFunction())
    keep = None
    if opt.KeepNumDims():
        if len(in_shape) == 4:
            keep = tuple(out_shape[a] for a in (1, 2, 3))  # NHWC (h, w, out)
        else:
            keep = tuple(out_shape[1:])
    elif math.prod(in_shape) // weight.shape[1] != in_shape[0]:
        # TF flattens to (-1, in): rows beyond one per sample would mix the batch with space
        raise graph.unsupported(index, op, f"input {in_shape} for weights {weight.shape}")
    return _FullyConnected(weight, bias, act, len(in_shape) == 4, keep)


_BUILDERS: dict[int, Callable[..., Any]] = {
    _CONV_2D: _conv,
    _DEPTHWISE_CONV_2D: _conv,
    _ADD: _add,
    _PRELU: _prelu,
    _MAX_POOL_2D: _max_pool,
    _PAD: _pad,
    _RESIZE_BILINEAR: _resize,
    _RESHAPE: _reshape,
    _CONCATENATION: _concat,
    _MEAN: _mean,
    _FULLY_CONNECTED: _fully_connected,
    _LOGISTIC: lambda graph, index, op, ins, out: _Logistic(),
}


def _fuse_residuals(
    built: list[tuple[_Op, list[int], int]], outputs: list[int]
) -> list[tuple[_Op, list[int], int]]:
    """Fold each ADD of a same-shape tensor and a 1x1 layer's output (without activation and
    read by nothing else) into that layer, which then runs at the ADD's place."""
    readers: dict[int, int] = {}
    for _, reads, _ in built:
        for t in reads:
            readers[t] = readers.get(t, 0) + 1
    producer = {out: step for step, (_, _, out) in enumerate(built)}
    fused: dict[int, tuple[_Op, list[int], int]] = {}  # ADD step -> replacement
    dropped: set[int] = set()
    for step, (module, reads, out) in enumerate(built):
        if not isinstance(module, _Add) or len(reads) != 2 or reads[0] == reads[1]:
            continue
        for side in (0, 1):
            source = producer.get(reads[side])
            if source is None or source in dropped:
                continue
            layer, layer_reads, layer_out = built[source]
            if (
                isinstance(layer, _Pointwise)
                and not layer.residual
                and layer.activation == _ACT_NONE
                and readers[layer_out] == 1
                and layer_out not in outputs
            ):
                layer.fuse_residual(module.activation)
                fused[step] = (layer, [layer_reads[0], reads[1 - side]], out)
                dropped.add(source)
                break
    return [fused.get(step, item) for step, item in enumerate(built) if step not in dropped]


def load_tflite(path: Path | str) -> TfliteNet:
    """The float TFLite network in `path` as a TfliteNet (float32 buffers, on the CPU).

    ValueError (naming the file) for a file that is not a TFLite flatbuffer, and (naming the
    file, the operator and the option) for an operator or option outside the supported set."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(f"{path}: not a TFLite flatbuffer (no 'TFL3' file identifier)")
    graph = _Graph(path, data)
    sub = graph.subgraph
    inputs = [int(i) for i in sub.InputsAsNumpy()] if sub.InputsLength() else []
    outputs = [int(i) for i in sub.OutputsAsNumpy()] if sub.OutputsLength() else []
    if len(inputs) != 1:
        raise ValueError(f"{path}: the port takes graphs with one input, not {len(inputs)}")
    if graph.type(inputs[0]) != _FLOAT32 or not graph.shape(inputs[0]):
        raise ValueError(f"{path}: the graph's input is not a batched float32 tensor")

    # Pass 1: operators, with tensor ids; DEQUANTIZE of constants folded away.
    built: list[tuple[_Op, list[int], int]] = []
    for index in range(sub.OperatorsLength()):
        op = sub.Operators(index)
        code = graph.codes[op.OpcodeIndex()]
        ins = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(i) for i in op.OutputsAsNumpy()] if op.OutputsLength() else []
        if len(outs) != 1:
            raise graph.unsupported(index, op, f"operator with {len(outs)} outputs")
        if code == _DEQUANTIZE:
            value = graph.dequantized(ins[0], index, op)
            if value is None:
                raise graph.unsupported(index, op, "dequantization of a computed tensor")
            graph.constants[outs[0]] = value.astype(np.float32, copy=False)
            continue
        builder = _BUILDERS.get(code)
        if builder is None:
            raise graph.unsupported(index, op, "operator")
        for i in [*ins[:1], outs[0]]:
            if graph.type(i) != _FLOAT32:
                tname = _TYPE_NAMES.get(graph.type(i), graph.type(i))
                raise graph.unsupported(index, op, f"tensor type {tname} (tensor {i})")
        # a builder returns its module, and the tensors it reads where more than the first
        made = builder(graph, index, op, ins, outs[0])
        module, reads = made if isinstance(made, tuple) else (made, ins[:1])
        built.append((module, reads, outs[0]))

    built = _fuse_residuals(built, outputs)

    # Pass 2: slots. A value's slot is free once its last reader has run; graph outputs never
    # are. A value may be overwritten by its last reader if it has the result's shape, unless
    # it is the caller's input, a graph output, a view (RESHAPE) or the base of a view.
    last_read: dict[int, int] = {}
    for step, (_, reads, _) in enumerate(built):
        for t in reads:
            last_read[t] = step
    produced = {out for _, _, out in built}
    for t in outputs:
        if t not in produced:
            raise ValueError(f"{path}: output tensor {t} is not computed by the graph")
        last_read[t] = len(built)
    viewed = {reads[0] for module, reads, _ in built if module.makes_view}
    views = {out for module, _, out in built if module.makes_view}
    slot_of = {inputs[0]: 0}
    free: list[int] = []
    slots = 1
    ops: list[_Op] = []
    for step, (module, reads, out) in enumerate(built):
        for t in reads:
            if t not in slot_of:
                raise ValueError(f"{path}: tensor {t} is read before it is computed")
        module.reads = tuple(slot_of[t] for t in reads)
        module.reuse = frozenset(
            position
            for position, t in enumerate(reads)
            if last_read[t] == step
            and reads.count(t) == 1
            and t in produced
            and t not in viewed
            and t not in views
            and graph.shape(t) == graph.shape(out)
        )
        for t in dict.fromkeys(reads):
            if last_read[t] == step:
                free.append(slot_of[t])
        if free:
            slot_of[out] = free.pop()
        else:
            slot_of[out], slots = slots, slots + 1
        module.writes = slot_of[out]
        if out not in last_read:  # computed but never read: its slot is free at once
            free.append(slot_of[out])
        ops.append(module)

    in_shape = graph.shape(inputs[0])
    stored_shape = tuple(in_shape[a] for a in _TO_NCHW) if len(in_shape) == 4 else in_shape
    names = [graph.tensor(t).Name().decode() for t in outputs]
    return TfliteNet(path, ops, slots, 0, [slot_of[t] for t in outputs], stored_shape[1:], names)
