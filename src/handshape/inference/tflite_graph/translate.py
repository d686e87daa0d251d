"""Translating a .tflite file into a `TfliteNet`: each operator into its module (constants into
PyTorch's layouts, TF's axes and paddings renumbered), 1x1 layers fused with the ADD that
follows them, then the plan of activation slots (`load_tflite`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from handshape.inference.tflite_graph.ops import (
    Add,
    Concat,
    Conv,
    FullyConnected,
    Logistic,
    MaxPool,
    Mean,
    Op,
    Pad,
    Pointwise,
    PRelu,
    Reshape,
    Resize,
    TfliteNet,
    same_padding,
)
from handshape.inference.tflite_graph.reader import Graph
from handshape.inference.tflite_graph.schema import (
    ACT_NONE,
    ACT_RELU,
    ACT_RELU6,
    ACT_RELU_N1_TO_1,
    ACTIVATION_NAMES,
    ADD,
    CONCATENATION,
    CONV_2D,
    DEPTHWISE_CONV_2D,
    DEQUANTIZE,
    FLOAT32,
    FULLY_CONNECTED,
    LOGISTIC,
    MAX_POOL_2D,
    MEAN,
    NCHW_AXIS,
    PAD,
    PRELU,
    RESHAPE,
    RESIZE_BILINEAR,
    SAME,
    TO_NCHW,
    TYPE_NAMES,
    VALID,
)


def _activation_code(graph: Graph, index: int, op: Any, code: int) -> int:
    if code not in (ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6):
        name = ACTIVATION_NAMES.get(code, str(code))
        raise graph.unsupported(
            index,
            op,
            f"option fused_activation_function={name} (TFLite fuses only RELU, "
            "RELU_N1_TO_1 and RELU6: its kernels ignore or refuse the others)",
        )
    return code


def _conv(graph: Graph, index: int, op: Any, ins: list[int], out: int) -> Op:
    tfl = graph.tflite
    depthwise = graph.codes[op.OpcodeIndex()] == DEPTHWISE_CONV_2D
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
        return Pointwise(weight, torch_bias, act, (out_shape[1], out_shape[2]))
    return Conv(weight, torch_bias, stride, dilation, pads, groups, act)


def _window_pads(
    graph: Graph,
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
    if padding == SAME:
        pads = [same_padding(in_shape[1 + a], kernel[a], stride[a], dilation[a]) for a in (0, 1)]
    elif padding == VALID:
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
    return np.ascontiguousarray(value.transpose(TO_NCHW)) if rank == 4 else value


def _add(graph: Graph, index: int, op: Any, ins: list[int], out: int) -> tuple[Op, list[int]]:
    opt = graph.options(index, op, graph.tflite.AddOptions)
    act = _activation_code(graph, index, op, opt.FusedActivationFunction())
    values = [graph.float_constant(i, index, op) for i in ins]
    shapes = [graph.shape(i) for i in ins]
    if values[0] is None and values[1] is None:
        same_rank = len(shapes[0]) == len(shapes[1])
        if not same_rank:
            raise graph.unsupported(index, op, f"broadcast of shapes {shapes[0]} and {shapes[1]}")
        return Add(None, act), list(ins)
    if values[0] is not None and values[1] is not None:
        raise graph.unsupported(index, op, "addition of two constants")
    live = 0 if values[0] is None else 1
    constant = values[1 - live]
    assert constant is not None
    try:
        stored = _to_layout(constant, len(shapes[live]))
    except ValueError as err:
        raise graph.unsupported(index, op, str(err)) from err
    return Add(stored, act), [ins[live]]


def _prelu(graph: Graph, index: int, op: Any, ins: list[int], out: int) -> Op:
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
    return PRelu(stored, channels)


def _max_pool(graph: Graph, index: int, op: Any, ins: list[int], out: int) -> Op:
    opt = graph.options(index, op, graph.tflite.Pool2DOptions)
    in_shape = graph.shape(ins[0])
    if len(in_shape) != 4:
        raise graph.unsupported(index, op, f"input of rank {len(in_shape)}")
    kernel, stride = (opt.FilterHeight(), opt.FilterWidth()), (opt.StrideH(), opt.StrideW())
    pads = _window_pads(
        graph, index, op, opt.Padding(), in_shape, graph.shape(out), kernel, stride, (1, 1)
    )
    act = _activation_code(graph, index, op, opt.FusedActivationFunction())
    return MaxPool(kernel, stride, pads, act)


def _pad(graph: Graph, index: int, op: Any, ins: list[int], out: int) -> Op:
    rank = len(graph.shape(ins[0]))
    flat = graph.int_constant(ins[1], index, op)
    if len(flat) != 2 * rank:
        raise graph.unsupported(index, op, f"paddings {flat} for rank {rank}")
    pairs = [(flat[2 * a], flat[2 * a + 1]) for a in range(rank)]
    if pairs[0] != (0, 0):
        raise graph.unsupported(index, op, "padding of the batch axis")
    if rank == 4:
        pairs = [pairs[a] for a in TO_NCHW]
    # F.pad lists the last axis first
    return Pad(tuple(n for pair in reversed(pairs[1:]) for n in pair))


def _resize(graph: Graph, index: int, op: Any, ins: list[int], out: int) -> Op:
    opt = graph.options(index, op, graph.tflite.ResizeBilinearOptions)
    in_shape = graph.shape(ins[0])
    size = graph.int_constant(ins[1], index, op)
    if len(in_shape) != 4 or len(size) != 2:
        raise graph.unsupported(index, op, f"input {in_shape} / size {size}")
    align, half = bool(opt.AlignCorners()), bool(opt.HalfPixelCenters())
    if align and half:
        raise graph.unsupported(index, op, "option align_corners with half_pixel_centers")
    return Resize((size[0], size[1]), (in_shape[1], in_shape[2]), align, half)


def _reshape(graph: Graph, index: int, op: Any, ins: list[int], out: int) -> Op:
    in_shape, out_shape = graph.shape(ins[0]), graph.shape(out)
    # The output tensor's static shape already resolves any -1 of the new_shape input.
    if not in_shape or not out_shape or in_shape[0] != out_shape[0]:
        raise graph.unsupported(
            index, op, f"reshape {in_shape} -> {out_shape} across the batch axis"
        )
    return Reshape(out_shape[1:], len(in_shape) == 4, len(out_shape) == 4)


def _concat(graph: Graph, index: int, op: Any, ins: list[int], out: int) -> tuple[Op, list[int]]:
    opt = graph.options(index, op, graph.tflite.ConcatenationOptions)
    rank = len(graph.shape(out))
    axis = opt.Axis() % rank
    if axis == 0:
        raise graph.unsupported(index, op, "option axis=0 (concatenation along the batch)")
    if any(graph.raw_constant(i) is not None for i in ins):
        raise graph.unsupported(index, op, "constant input")
    act = _activation_code(graph, index, op, opt.FusedActivationFunction())
    return Concat(NCHW_AXIS[axis] if rank == 4 else axis, act), list(ins)


def _mean(graph: Graph, index: int, op: Any, ins: list[int], out: int) -> Op:
    opt = graph.options(index, op, graph.tflite.ReducerOptions)
    rank = len(graph.shape(ins[0]))
    axes = sorted({a % rank for a in graph.int_constant(ins[1], index, op)})
    if not axes or 0 in axes:
        raise graph.unsupported(index, op, f"mean over axes {axes} (none, or the batch)")
    keep = bool(opt.KeepDims())
    if rank != 4:
        return Mean(tuple(axes), keep, None)
    stored = tuple(sorted(NCHW_AXIS[a] for a in axes))
    order = None
    if not keep:
        # torch leaves the survivors in NCHW order, TF in its own: e.g. (H, C) vs (C, H)
        kept = [a for a in range(4) if a not in axes]
        nchw = sorted(NCHW_AXIS[a] for a in kept)
        order = tuple(nchw.index(NCHW_AXIS[a]) for a in kept)
        if order == tuple(range(len(order))):
            order = None
    return Mean(stored, keep, order)


def _fully_connected(graph: Graph, index: int, op: Any, ins: list[int], out: int) -> Op:
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
    return FullyConnected(weight, bias, act, len(in_shape) == 4, keep)


_BUILDERS: dict[int, Callable[..., Any]] = {
    CONV_2D: _conv,
    DEPTHWISE_CONV_2D: _conv,
    ADD: _add,
    PRELU: _prelu,
    MAX_POOL_2D: _max_pool,
    PAD: _pad,
    RESIZE_BILINEAR: _resize,
    RESHAPE: _reshape,
    CONCATENATION: _concat,
    MEAN: _mean,
    FULLY_CONNECTED: _fully_connected,
    LOGISTIC: lambda graph, index, op, ins, out: Logistic(),
}


def _fuse_residuals(
    built: list[tuple[Op, list[int], int]], outputs: list[int]
) -> list[tuple[Op, list[int], int]]:
    """Fold each ADD of a same-shape tensor and a 1x1 layer's output (without activation and
    read by nothing else) into that layer, which then runs at the ADD's place."""
    readers: dict[int, int] = {}
    for _, reads, _ in built:
        for t in reads:
            readers[t] = readers.get(t, 0) + 1
    producer = {out: step for step, (_, _, out) in enumerate(built)}
    fused: dict[int, tuple[Op, list[int], int]] = {}  # ADD step -> replacement
    dropped: set[int] = set()
    for step, (module, reads, out) in enumerate(built):
        if not isinstance(module, Add) or len(reads) != 2 or reads[0] == reads[1]:
            continue
        for side in (0, 1):
            source = producer.get(reads[side])
            if source is None or source in dropped:
                continue
            layer, layer_reads, layer_out = built[source]
            if (
                isinstance(layer, Pointwise)
                and not layer.residual
                and layer.activation == ACT_NONE
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
    graph = Graph(path, data)
    sub = graph.subgraph
    inputs = [int(i) for i in sub.InputsAsNumpy()] if sub.InputsLength() else []
    outputs = [int(i) for i in sub.OutputsAsNumpy()] if sub.OutputsLength() else []
    if len(inputs) != 1:
        raise ValueError(f"{path}: the port takes graphs with one input, not {len(inputs)}")
    if graph.type(inputs[0]) != FLOAT32 or not graph.shape(inputs[0]):
        raise ValueError(f"{path}: the graph's input is not a batched float32 tensor")

    # Pass 1: operators, with tensor ids; DEQUANTIZE of constants folded away.
    built: list[tuple[Op, list[int], int]] = []
    for index in range(sub.OperatorsLength()):
        op = sub.Operators(index)
        code = graph.codes[op.OpcodeIndex()]
        ins = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(i) for i in op.OutputsAsNumpy()] if op.OutputsLength() else []
        if len(outs) != 1:
            raise graph.unsupported(index, op, f"operator with {len(outs)} outputs")
        if code == DEQUANTIZE:
            value = graph.dequantized(ins[0], index, op)
            if value is None:
                raise graph.unsupported(index, op, "dequantization of a computed tensor")
            graph.constants[outs[0]] = value.astype(np.float32, copy=False)
            continue
        builder = _BUILDERS.get(code)
        if builder is None:
            raise graph.unsupported(index, op, "operator")
        for i in [*ins[:1], outs[0]]:
            if graph.type(i) != FLOAT32:
                tname = TYPE_NAMES.get(graph.type(i), graph.type(i))
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
    ops: list[Op] = []
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
    stored_shape = tuple(in_shape[a] for a in TO_NCHW) if len(in_shape) == 4 else in_shape
    names = [graph.tensor(t).Name().decode() for t in outputs]
    return TfliteNet(path, ops, slots, 0, [slot_of[t] for t in outputs], stored_shape[1:], names)
