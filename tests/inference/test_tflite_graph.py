"""Specification of the PyTorch port of TFLite graphs (handshape.inference.tflite_graph).

MediaPipe's palm detector and hand landmark network, ported, give what LiteRT gives for the same
file, on a random image and on a photograph, batched or not, eager, traced or exported to ONNX;
tiny graphs written here pin each operator's TF semantics (SAME padding, layouts, modes) against
LiteRT and a hand-computed example, and malformed or unsupported files fail naming the file.

Tolerance. Float32 implementations of these networks differ by more than 1e-4 on pixel-scale
outputs (box regressors and landmarks up to ~190, reached through long sums): LiteRT's XNNPack
kernels and its builtin kernels differ from each other by up to ~1e-3 on a real photograph, and
the port is closer to a float64 evaluation than either. So the port must match LiteRT (XNNPack)
within 1e-4 plus that XNNPack-vs-builtin spread, measured on the same images, which is 1e-4 on
the probabilities and world landmarks and a few 1e-4 on pixel-scale outputs.

The MediaPipe tests need the extracted files (``handshape setup``; ``make test`` runs it): where
they are missing the tests fail with MissingModelFiles' message rather than skip.
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flatbuffers
import numpy as np
import onnxruntime
import pytest
import tflite
import torch
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from PIL import Image

from handshape.inference.mediapipe_files import model_file
from handshape.inference.tflite_graph import TfliteNet, load_tflite, same_padding

pytestmark = pytest.mark.usefixtures("single_thread")

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "real_samples"
STB_PHOTO = SAMPLES / "STB" / "stb_SK_color_0.png"
# (network, input size, crop of the STB photograph: the whole frame for the palm detector, the
# raised hand for the landmark network)
NETWORKS = {
    "palm_detection": (192, (80, 0, 560, 480)),
    "hand_landmark": (224, (230, 90, 530, 390)),
}
OP = tflite.BuiltinOperator


# ---------------------------------------------------------------------------------------------
# MediaPipe networks


@functools.cache
def ported(name: str) -> TfliteNet:
    """The port of MediaPipe's network `name` (MissingModelFiles if the cache lacks it)."""
    return load_tflite(model_file(name)).eval()


def litert(path: Path, images: np.ndarray, builtin_kernels: bool = False) -> list[np.ndarray]:
    """LiteRT's outputs for images (N, H, W, C), run one at a time: each output (N, ...).

    Default: its CPU kernels (XNNPack); `builtin_kernels`: TFLite's own."""
    options = {}
    if builtin_kernels:
        options["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_path=str(path), num_threads=1, **options)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    runs = []
    for image in images:
        interpreter.set_tensor(index, np.ascontiguousarray(image[None], np.float32))
        interpreter.invoke()
        runs.append([interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()])
    return [np.concatenate(outputs) for outputs in zip(*runs, strict=True)]


def run_port(net: torch.nn.Module, images: np.ndarray) -> list[np.ndarray]:
    """The port's outputs for images (N, H, W, C) as one batch; 4-D outputs back to NHWC."""
    with torch.inference_mode():
        outputs = net(torch.from_numpy(images).permute(0, 3, 1, 2))
    return [o.permute(0, 2, 3, 1).numpy() if o.dim() == 4 else o.numpy() for o in outputs]


def float32_spread(path: Path, images: np.ndarray) -> list[float]:
    """Per output: the largest difference of LiteRT's XNNPack and builtin kernels on `images`."""
    fast, builtin = litert(path, images), litert(path, images, builtin_kernels=True)
    return [float(np.abs(a - b).max()) for a, b in zip(fast, builtin, strict=True)]


def assert_matches_litert(name: str, images: np.ndarray) -> None:
    net = ported(name)
    got, expected = run_port(net, images), litert(net.path, images)
    spread = float32_spread(net.path, images)
    for output, a, b, noise in zip(net.output_names, got, expected, spread, strict=True):
        assert a.shape == b.shape, (output, a.shape, b.shape)
        difference = float(np.abs(a - b).max())
        assert difference <= 1e-4 + noise, (
            f"{name} {output}: max |port - LiteRT| = {difference:.2e}, above 1e-4 + LiteRT's own "
            f"float32 spread {noise:.2e}"
        )


def random_images(name: str, count: int, seed: int = 0) -> np.ndarray:
    size = NETWORKS[name][0]
    return np.random.default_rng(seed).random((count, size, size, 3), dtype=np.float32)


def photograph(name: str) -> np.ndarray:
    """(1, S, S, 3) in [0, 1]: a downscaled crop of a real photograph from shared/real_samples."""
    size, box = NETWORKS[name]
    if STB_PHOTO.is_file():
        image = Image.open(STB_PHOTO).convert("RGB").crop(box)
    else:
        found = sorted(SAMPLES.glob("*/*.jpg")) + sorted(SAMPLES.glob("*/*.png"))
        if not found:
            pytest.skip(f"no photograph in {SAMPLES} (shared/real_samples is not there)")
        image = Image.open(found[0]).convert("RGB")
        side = min(image.size)
        image = image.crop((0, 0, side, side))
    pixels = np.asarray(image.resize((size, size), Image.BILINEAR), np.float32) / 255.0
    return pixels[None]


@pytest.mark.parametrize("name", list(NETWORKS))
def test_the_port_gives_litert_outputs_on_a_random_image(name: str) -> None:
    assert_matches_litert(name, random_images(name, 1))


@pytest.mark.parametrize("name", list(NETWORKS))
def test_the_port_gives_litert_outputs_on_a_photograph(name: str) -> None:
    model_file(name)  # missing files fail here, before a missing photograph could skip
    assert_matches_litert(name, photograph(name))


@pytest.mark.parametrize("name", list(NETWORKS))
def test_a_batch_of_three_gives_three_single_runs(name: str) -> None:
    net = ported(name)
    images = random_images(name, 3, seed=1)
    batch = run_port(net, images)
    single = [run_port(net, images[i : i + 1]) for i in range(3)]
    spread = float32_spread(net.path, images)
    for k, output in enumerate(net.output_names):
        assert batch[k].shape[0] == 3
        each = np.concatenate([s[k] for s in single])
        difference = float(np.abs(batch[k] - each).max())
        assert difference <= 1e-4 + spread[k], (output, difference, spread[k])


def test_traced_and_onnx_landmark_networks_take_another_batch_size() -> None:
    net = ported("hand_landmark")
    images = random_images("hand_landmark", 3, seed=2)
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    with torch.inference_mode():
        eager = [o.numpy() for o in net(batch)]
    example = batch[:2].clone()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks fixed by the network
        traced = torch.jit.trace(net, example)
        saved = io.BytesIO()
        torch.jit.save(traced, saved)
        saved.seek(0)
        traced = torch.jit.load(saved)  # the buffers travel with the traced module
        exported = io.BytesIO()
        dynamic = {n: {0: "batch"} for n in ["image", *net.output_names]}
        torch.onnx.export(
            net,
            (example,),
            exported,
            input_names=["image"],
            output_names=list(net.output_names),
            dynamic_axes=dynamic,
            opset_version=18,
            dynamo=False,
        )
        replayed = [o.numpy() for o in traced(batch)]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        exported.getvalue(), options, providers=["CPUExecutionProvider"]
    )
    onnx_outputs = session.run(None, {"image": batch.numpy()})
    spread = float32_spread(net.path, images)
    for k, output in enumerate(net.output_names):
        assert replayed[k].shape == onnx_outputs[k].shape == eager[k].shape
        assert eager[k].shape[0] == 3
        np.testing.assert_allclose(replayed[k], eager[k], rtol=0, atol=1e-4, err_msg=output)
        # onnxruntime's kernels are another float32 implementation: LiteRT's spread applies
        difference = float(np.abs(onnx_outputs[k] - eager[k]).max())
        assert difference <= 1e-4 + spread[k], (output, difference, spread[k])


def test_gradients_flow_through_the_port() -> None:
    """In-place shortcuts step aside where autograd records: a backward pass runs, and the
    outputs are those of an inference run."""
    net = ported("hand_landmark")
    image = torch.from_numpy(random_images("hand_landmark", 1, seed=3)).permute(0, 3, 1, 2)
    image.requires_grad_(True)
    outputs = net(image)
    sum(o.sum() for o in outputs).backward()
    assert image.grad is not None and torch.isfinite(image.grad).all()
    assert image.grad.abs().sum() > 0
    with torch.inference_mode():
        expected = net(image.detach())
    for a, b in zip(outputs, expected, strict=True):
        assert torch.equal(a.detach(), b)


def test_landmark_scores_are_probabilities_and_landmarks_pixels_on_a_hand() -> None:
    """What the outputs are (checked on the photographed hand): Identity (21 x (x, y, z)) in
    pixels of the 224 crop, Identity_1 the hand-presence probability (the graph's LOGISTIC),
    Identity_2 the handedness probability, Identity_3 world landmarks in metres."""
    net = ported("hand_landmark")
    if not STB_PHOTO.is_file():
        pytest.skip(f"{STB_PHOTO} is not there")
    landmarks, presence, handedness, world = run_port(net, photograph("hand_landmark"))
    assert net.output_names == ("Identity", "Identity_1", "Identity_2", "Identity_3")
    assert presence.shape == handedness.shape == (1, 1)
    assert 0.9 < presence[0, 0] <= 1 and 0 <= handedness[0, 0] <= 1
    xy = landmarks.reshape(21, 3)[:, :2]
    assert xy.min() > 0 and xy.max() < 224
    assert np.abs(world).max() < 0.2


# ---------------------------------------------------------------------------------------------
# Tiny graphs written here


@dataclass
class TinyGraph:
    """A one-input float graph under construction: tensors (shape, numpy value or None) and
    operators (builtin code, input ids, output id, options table name, option fields)."""

    input_shape: tuple[int, ...]
    tensors: list[tuple[tuple[int, ...], np.ndarray | None, dict[str, Any]]] = field(
        default_factory=list
    )
    ops: list[tuple[int, list[int], int, str | None, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tensor(self.input_shape)

    def tensor(self, shape: tuple[int, ...], value: np.ndarray | None = None, **quant: Any) -> int:
        self.tensors.append((tuple(shape), value, quant))
        return len(self.tensors) - 1

    def const(self, value: np.ndarray, **quant: Any) -> int:
        return self.tensor(value.shape, value, **quant)

    def op(
        self,
        code: int,
        ins: list[int],
        out_shape: tuple[int, ...],
        options: str | None = None,
        **fields: Any,
    ) -> int:
        out = self.tensor(out_shape)
        self.ops.append((code, ins, out, options, fields))
        return out

    def write(self, path: Path, outputs: list[int] | None = None) -> Path:
        path.write_bytes(_flatbuffer(self, outputs or [len(self.tensors) - 1]))
        return path


_TYPES = {np.dtype(np.float32): 0, np.dtype(np.int32): 2, np.dtype(np.int8): 9}


def _table(builder: flatbuffers.Builder, name: str, **fields: Any) -> int:
    getattr(tflite, f"{name}Start")(builder)
    for key, value in fields.items():
        getattr(tflite, f"{name}Add{key}")(builder, value)
    return getattr(tflite, f"{name}End")(builder)


def _offsets(builder: flatbuffers.Builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _ints(builder: flatbuffers.Builder, values: list[int] | tuple[int, ...]) -> int:
    return builder.CreateNumpyVector(np.asarray(values, np.int32))


def _flatbuffer(graph: TinyGraph, outputs: list[int]) -> bytes:
    builder = flatbuffers.Builder(1024)
    buffers = [_table(builder, "Buffer")]  # buffer 0: the empty one of every activation
    tensors = []
    for i, (shape, value, quant) in enumerate(graph.tensors):
        fields: dict[str, Any] = {"Buffer": 0, "Type": 0}
        if value is not None:
            data = builder.CreateByteVector(np.ascontiguousarray(value).tobytes())
            buffers.append(_table(builder, "Buffer", Data=data))
            fields = {"Buffer": len(buffers) - 1, "Type": _TYPES[value.dtype]}
        if quant:
            scale = np.asarray(quant["scale"], np.float32)
            fields["Quantization"] = _table(
                builder,
                "QuantizationParameters",
                Scale=builder.CreateNumpyVector(scale),
                ZeroPoint=builder.CreateNumpyVector(np.zeros(scale.size, np.int64)),
                QuantizedDimension=quant.get("axis", 0),
            )
        name, dims = builder.CreateString(f"t{i}"), _ints(builder, shape)
        tensors.append(_table(builder, "Tensor", Shape=dims, Name=name, **fields))
    codes = sorted({code for code, *_ in graph.ops})
    operators = []
    for code, ins, out, options, fields in graph.ops:
        entries: dict[str, Any] = {
            "OpcodeIndex": codes.index(code),
            "Inputs": _ints(builder, ins),
            "Outputs": _ints(builder, [out]),
        }
        if options is not None:
            entries["BuiltinOptions"] = _table(builder, options, **fields)
            entries["BuiltinOptionsType"] = getattr(tflite.BuiltinOptions, options)
        operators.append(_table(builder, "Operator", **entries))
    opcodes = [
        _table(builder, "OperatorCode", DeprecatedBuiltinCode=code, BuiltinCode=code, Version=1)
        for code in codes
    ]
    subgraph = _table(
        builder,
        "SubGraph",
        Tensors=_offsets(builder, tensors),
        Inputs=_ints(builder, [0]),
        Outputs=_ints(builder, outputs),
        Operators=_offsets(builder, operators),
        Name=builder.CreateString("main"),
    )
    model = _table(
        builder,
        "Model",
        Version=3,
        OperatorCodes=_offsets(builder, opcodes),
        Subgraphs=_offsets(builder, [subgraph]),
        Buffers=_offsets(builder, buffers),
        Description=builder.CreateString("written by test_tflite_graph"),
    )
    builder.Finish(model, file_identifier=b"TFL3")
    return bytes(builder.Output())


def _weights(rng: np.random.Generator, *shape: int, scale: float = 0.5) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


Rng = np.random.Generator
CONV = {"Padding": 0, "StrideH": 1, "StrideW": 1, "DilationHFactor": 1, "DilationWFactor": 1}
SAME, VALID = 0, 1
RELU, RELU_N1_TO_1, RELU6 = 1, 2, 3


def _conv(
    g: TinyGraph, rng: Rng, out: tuple[int, ...], kernel: int, act: int = 0, **options: int
) -> int:
    weight = g.const(_weights(rng, out[3], kernel, kernel, g.input_shape[3]))
    bias = g.const(_weights(rng, out[3]))
    fields = {**CONV, **options, "FusedActivationFunction": act}
    return g.op(OP.CONV_2D, [0, weight, bias], out, "Conv2DOptions", **fields)


def _depthwise(
    g: TinyGraph, rng: Rng, out: tuple[int, ...], kernel: int, act: int = 0, **options: int
) -> int:
    weight = g.const(_weights(rng, 1, kernel, kernel, out[3]))
    bias = g.const(_weights(rng, out[3]))
    multiplier = out[3] // g.input_shape[3]
    fields = {**CONV, **options, "FusedActivationFunction": act, "DepthMultiplier": multiplier}
    return g.op(OP.DEPTHWISE_CONV_2D, [0, weight, bias], out, "DepthwiseConv2DOptions", **fields)


def _shifted(g: TinyGraph, shift: float) -> int:
    """input + shift (an ADD of a broadcast constant), to reach negative values."""
    constant = g.const(np.full((1, 1, g.input_shape[3]), shift, np.float32))
    return g.op(OP.ADD, [0, constant], g.input_shape, "AddOptions", FusedActivationFunction=0)


# Each builder adds operators to a graph whose input (1, H, W, C) is given beside it in TINY.


def conv_5x5_stride_2(g: TinyGraph, rng: Rng) -> None:
    """TF's odd pixel after on both axes (9 -> pad (1, 2), 10 -> (1, 2)); RELU6."""
    _conv(g, rng, (1, 5, 5, 4), 5, RELU6, StrideH=2, StrideW=2)


def conv_2x2_same(g: TinyGraph, rng: Rng) -> None:
    """Stride 1 with an even kernel: pad (0, 1)."""
    _conv(g, rng, (1, 6, 7, 3), 2)


def conv_dilated_valid(g: TinyGraph, rng: Rng) -> None:
    _conv(g, rng, (1, 4, 5, 3), 3, RELU, Padding=VALID, DilationHFactor=2, DilationWFactor=2)


def depthwise_stride_2_multiplier_2(g: TinyGraph, rng: Rng) -> None:
    _depthwise(g, rng, (1, 4, 4, 6), 3, RELU, StrideH=2, StrideW=2)


def depthwise_4x4_same(g: TinyGraph, rng: Rng) -> None:
    """Stride 1, even kernel: pad (1, 2), through the kernel's zero taps."""
    _depthwise(g, rng, (1, 6, 6, 4), 4)


def depthwise_dilated_same(g: TinyGraph, rng: Rng) -> None:
    _depthwise(g, rng, (1, 7, 7, 2), 3, RELU_N1_TO_1, DilationHFactor=2, DilationWFactor=2)


def max_pool_same(g: TinyGraph, rng: Rng) -> None:
    """On negative values, where a zero-padded window would give 0: TFLite skips padding."""
    fields = {"Padding": SAME, "StrideH": 2, "StrideW": 2, "FilterHeight": 3, "FilterWidth": 3}
    g.op(
        OP.MAX_POOL_2D,
        [_shifted(g, -2.0)],
        (1, 4, 4, 3),
        "Pool2DOptions",
        FusedActivationFunction=0,
        **fields,
    )


def _resize(g: TinyGraph, align: bool, half: bool) -> None:
    """(1, 5, 7, 2) -> (1, 9, 4, 2): up one axis, down the other."""
    size = g.const(np.array([9, 4], np.int32))
    g.op(
        OP.RESIZE_BILINEAR,
        [0, size],
        (1, 9, 4, 2),
        "ResizeBilinearOptions",
        AlignCorners=align,
        HalfPixelCenters=half,
    )


def _mean(g: TinyGraph, axes: list[int], keep: bool, out: tuple[int, ...]) -> None:
    g.op(OP.MEAN, [0, g.const(np.array(axes, np.int32))], out, "ReducerOptions", KeepDims=keep)


def fully_connected_4d(g: TinyGraph, rng: Rng) -> None:
    """(1, 2, 3, 4) flattened in NHWC order into 24 inputs."""
    weight, bias = g.const(_weights(rng, 5, 24)), g.const(_weights(rng, 5))
    g.op(
        OP.FULLY_CONNECTED,
        [0, weight, bias],
        (1, 5),
        "FullyConnectedOptions",
        FusedActivationFunction=RELU,
    )


def _reshape(g: TinyGraph, shape: list[int], out: tuple[int, ...]) -> None:
    g.op(OP.RESHAPE, [0, g.const(np.array(shape, np.int32))], out)


def _concat(g: TinyGraph, axis: int, out: tuple[int, ...]) -> None:
    """[input, sigmoid(input)] along a TF axis."""
    other = g.op(OP.LOGISTIC, [0], g.input_shape)
    g.op(
        OP.CONCATENATION,
        [0, other],
        out,
        "ConcatenationOptions",
        Axis=axis,
        FusedActivationFunction=0,
    )


def pad(g: TinyGraph, rng: Rng) -> None:
    paddings = g.const(np.array([[0, 0], [1, 2], [0, 1], [2, 0]], np.int32))
    g.op(OP.PAD, [0, paddings], (1, 6, 5, 4))


def _prelu(g: TinyGraph, rng: Rng, alpha_shape: tuple[int, ...]) -> None:
    alpha = g.const(rng.uniform(-0.5, 1.5, alpha_shape).astype(np.float32))
    g.op(OP.PRELU, [_shifted(g, -0.5), alpha], g.input_shape)


def add_relu_n1_to_1(g: TinyGraph, rng: Rng) -> None:
    constant = g.const(_weights(rng, 1, 1, 3, scale=2.0))
    g.op(OP.ADD, [0, constant], (1, 4, 5, 3), "AddOptions", FusedActivationFunction=RELU_N1_TO_1)


def residual(g: TinyGraph, rng: Rng) -> None:
    """A 1x1 layer's output added to the input: the port folds the ADD into the GEMM."""
    conv = _conv(g, rng, g.input_shape, 1, Padding=VALID)
    g.op(OP.ADD, [conv, 0], g.input_shape, "AddOptions", FusedActivationFunction=RELU6)


def int8_weights(g: TinyGraph, rng: Rng) -> None:
    """DEQUANTIZE of int8 weights with one scale per output channel, folded at load."""
    q = rng.integers(-127, 128, (4, 3, 3, 2)).astype(np.int8)
    scaled = g.const(q, scale=[0.01, 0.02, 0.03, 0.04], axis=0)
    weight = g.op(OP.DEQUANTIZE, [scaled], (4, 3, 3, 2))
    fields = {**CONV, "StrideH": 2, "StrideW": 2, "FusedActivationFunction": 0}
    bias = g.const(_weights(rng, 4))
    g.op(OP.CONV_2D, [0, weight, bias], (1, 3, 3, 4), "Conv2DOptions", **fields)


Builder = Callable[[TinyGraph, Rng], Any]
TINY: dict[str, tuple[tuple[int, ...], Builder]] = {
    "conv 5x5 stride 2 SAME": ((1, 9, 10, 3), conv_5x5_stride_2),
    "conv 2x2 SAME": ((1, 6, 7, 2), conv_2x2_same),
    "conv 3x3 dilation 2 VALID": ((1, 8, 9, 2), conv_dilated_valid),
    "depthwise 3x3 stride 2 SAME multiplier 2": ((1, 8, 8, 3), depthwise_stride_2_multiplier_2),
    "depthwise 4x4 SAME": ((1, 6, 6, 4), depthwise_4x4_same),
    "depthwise 3x3 dilation 2 SAME": ((1, 7, 7, 2), depthwise_dilated_same),
    "max pool 3x3 stride 2 SAME": ((1, 7, 8, 3), max_pool_same),
    "resize half_pixel_centers": ((1, 5, 7, 2), lambda g, r: _resize(g, False, True)),
    "resize align_corners": ((1, 5, 7, 2), lambda g, r: _resize(g, True, False)),
    "resize legacy": ((1, 5, 7, 2), lambda g, r: _resize(g, False, False)),
    "mean over H, W": ((1, 4, 5, 3), lambda g, r: _mean(g, [1, 2], False, (1, 3))),
    "mean over W (H, C left)": ((1, 4, 5, 3), lambda g, r: _mean(g, [2], False, (1, 4, 3))),
    "mean over C, kept": ((1, 4, 5, 3), lambda g, r: _mean(g, [-1], True, (1, 4, 5, 1))),
    "fully connected of a 4-D input": ((1, 2, 3, 4), fully_connected_4d),
    "reshape 4-D to 4-D": ((1, 4, 6, 2), lambda g, r: _reshape(g, [1, 8, 3, 2], (1, 8, 3, 2))),
    "reshape 4-D to 3-D": ((1, 4, 6, 2), lambda g, r: _reshape(g, [1, -1, 3], (1, 16, 3))),
    "concatenation of channels": ((1, 3, 4, 2), lambda g, r: _concat(g, 3, (1, 3, 4, 4))),
    "concatenation of rows": ((1, 3, 4, 2), lambda g, r: _concat(g, -3, (1, 6, 4, 2))),
    "pad": ((1, 3, 4, 2), pad),
    "prelu per channel": ((1, 4, 5, 3), lambda g, r: _prelu(g, r, (1, 1, 3))),
    "prelu per pixel": ((1, 4, 5, 3), lambda g, r: _prelu(g, r, (4, 5, 3))),
    "add RELU_N1_TO_1": ((1, 4, 5, 3), add_relu_n1_to_1),
    "1x1 conv + residual ADD": ((1, 5, 5, 3), residual),
    "int8 weights dequantized": ((1, 6, 5, 2), int8_weights),
}


@pytest.mark.parametrize("name", list(TINY))
def test_each_operator_follows_litert(name: str, tmp_path: Path) -> None:
    shape, build = TINY[name]
    graph = TinyGraph(shape)
    build(graph, np.random.default_rng(3))
    path = graph.write(tmp_path / "tiny.tflite")
    images = np.random.default_rng(4).random((2, *shape[1:]), dtype=np.float32)
    expected = litert(path, images)
    got = run_port(load_tflite(path), images)  # the two images as one batch
    for a, b in zip(got, expected, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_same_padding_puts_the_odd_pixel_after() -> None:
    assert same_padding(192, 5, 2) == (1, 2)  # the palm detector's first layer
    assert same_padding(224, 3, 2) == (0, 1)  # the landmark network's
    assert same_padding(96, 5, 1) == (2, 2)
    assert same_padding(7, 3, 2) == (1, 1)
    assert same_padding(5, 3, 1, dilation=2) == (2, 2)
    assert same_padding(8, 1, 2) == (0, 0)


@pytest.mark.parametrize("depthwise", [False, True], ids=["conv", "depthwise"])
def test_stride_2_same_padding_matches_a_hand_computed_example(
    depthwise: bool, tmp_path: Path
) -> None:
    """4x4 image 0..15, 3x3 kernel of ones, stride 2, SAME: TF pads (0, 1), so the windows
    start at rows / columns 0 and 2 and the last one sums a 2x2 corner. (A symmetric pad of 1
    would give 0 + 1 + 4 + 5 = 10 first.)"""
    graph = TinyGraph((1, 4, 4, 1))
    ones = graph.const(np.ones((1, 3, 3, 1), np.float32))
    zero = graph.const(np.zeros(1, np.float32))
    fields = {**CONV, "StrideH": 2, "StrideW": 2, "FusedActivationFunction": 0}
    if depthwise:  # 1 channel: the depthwise kernel is the same ones
        graph.op(
            OP.DEPTHWISE_CONV_2D,
            [0, ones, zero],
            (1, 2, 2, 1),
            "DepthwiseConv2DOptions",
            DepthMultiplier=1,
            **fields,
        )
    else:
        graph.op(OP.CONV_2D, [0, ones, zero], (1, 2, 2, 1), "Conv2DOptions", **fields)
    path = graph.write(tmp_path / "same.tflite")
    image = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    hand = np.array(
        [
            [0 + 1 + 2 + 4 + 5 + 6 + 8 + 9 + 10, 2 + 3 + 6 + 7 + 10 + 11],
            [8 + 9 + 10 + 12 + 13 + 14, 10 + 11 + 14 + 15],
        ],
        np.float32,
    )
    assert hand.tolist() == [[45, 39], [66, 50]]
    np.testing.assert_array_equal(run_port(load_tflite(path), image)[0][0, :, :, 0], hand)
    np.testing.assert_array_equal(litert(path, image)[0][0, :, :, 0], hand)


def test_an_unsupported_operator_is_named_with_the_file(tmp_path: Path) -> None:
    graph = TinyGraph((1, 4))
    graph.op(OP.SOFTMAX, [0], (1, 4), "SoftmaxOptions", Beta=1.0)
    path = graph.write(tmp_path / "softmax.tflite")
    with pytest.raises(ValueError, match="SOFTMAX") as raised:
        load_tflite(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("code, name", [(4, "TANH"), (5, "SIGN_BIT")])
def test_an_unsupported_option_is_named_with_the_operator_and_the_file(
    code: int, name: str, tmp_path: Path
) -> None:
    """A fused TANH is refused: LiteRT's CONV_2D, DEPTHWISE_CONV_2D and ADD ignore it (they
    clamp only for the RELU family) and its FULLY_CONNECTED refuses it."""
    graph = TinyGraph((1, 4, 4, 2))
    _conv(graph, np.random.default_rng(0), (1, 4, 4, 2), 3, act=code)
    path = graph.write(tmp_path / "fused.tflite")
    with pytest.raises(ValueError, match=f"CONV_2D.*fused_activation_function={name}") as raised:
        load_tflite(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    "content",
    [b"GIF89a, not a network" * 4, b"\x00\x00\x00\x00TFL3" + b"\xff" * 40, b""],
    ids=["other file", "broken flatbuffer", "empty"],
)
def test_a_file_that_is_no_tflite_flatbuffer_is_named(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "not_a_network.tflite"
    path.write_bytes(content)
    with pytest.raises(ValueError) as raised:
        load_tflite(path)
    assert str(path) in str(raised.value)
