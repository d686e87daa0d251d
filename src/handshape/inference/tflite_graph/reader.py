"""Reading one .tflite flatbuffer's main subgraph: its tensors, shapes, constants (float32,
folded DEQUANTIZE of float16 or int8 / uint8 with scales), operator options, and the errors that
name the file, the operator and the option."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from handshape.inference.tflite_graph.schema import NUMPY_TYPES, SUPPORTED_OPERATORS, TYPE_NAMES


class Graph:
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
        dtype = NUMPY_TYPES.get(tensor.Type())
        if dtype is None:
            raise ValueError(
                f"{self.path}: constant tensor {index} ('{tensor.Name().decode()}') has "
                f"unsupported type {TYPE_NAMES.get(tensor.Type(), tensor.Type())}"
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
            tname = TYPE_NAMES.get(self.type(index), self.type(index))
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
            tname = TYPE_NAMES.get(self.type(index), self.type(index))
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
