"""The TFLite schema codes the port reads (builtin operators, tensor types, fused activations,
padding), kept here so that the schema package is only imported when a file is read, and the
axis tables between TF's NHWC and the port's NCHW."""

from __future__ import annotations

import numpy as np

# Builtin operator codes (tflite.BuiltinOperator), kept here so that the schema package is only
# imported when a file is read.
ADD, CONCATENATION, CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE = 0, 2, 3, 4, 6
FULLY_CONNECTED, LOGISTIC, MAX_POOL_2D, RESHAPE, RESIZE_BILINEAR = 9, 14, 17, 22, 23
PAD, MEAN, PRELU = 34, 40, 54
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
FLOAT32, _FLOAT16, _INT32, _UINT8, _INT64, _INT8 = 0, 1, 2, 3, 4, 9
NUMPY_TYPES = {
    FLOAT32: np.float32,
    _FLOAT16: np.float16,
    _INT32: np.int32,
    _UINT8: np.uint8,
    _INT64: np.int64,
    _INT8: np.int8,
}
TYPE_NAMES = {0: "FLOAT32", 1: "FLOAT16", 2: "INT32", 3: "UINT8", 4: "INT64", 9: "INT8"}

# tflite.ActivationFunctionType. TFLite's kernels fuse only the RELU family (clamps): a fused
# TANH or SIGN_BIT is ignored by CONV_2D, DEPTHWISE_CONV_2D and ADD and refused by
# FULLY_CONNECTED (LiteRT 2.3), so the port refuses them too rather than pick a meaning.
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6 = 0, 1, 2, 3
ACTIVATION_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
SAME, VALID = 0, 1  # tflite.Padding

# TF axis a of a 4-D NHWC tensor is axis TO_NCHW[a] of its NCHW twin
TO_NCHW = (0, 3, 1, 2)
NCHW_AXIS = (0, 2, 3, 1)
