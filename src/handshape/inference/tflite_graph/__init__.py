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

The package: `load_tflite` (`translate`: every operator into its module, then the plan) reads a
file with `reader` into the operators and `TfliteNet` of `ops`; `schema` holds the TFLite codes.
"""

from handshape.inference.tflite_graph.ops import TfliteNet, same_padding
from handshape.inference.tflite_graph.schema import SUPPORTED_OPERATORS
from handshape.inference.tflite_graph.translate import load_tflite

__all__ = ["SUPPORTED_OPERATORS", "TfliteNet", "load_tflite", "same_padding"]
