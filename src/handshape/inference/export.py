"""Export a trained network to ONNX or TorchScript, and run an exported ONNX model.

The exported graph maps an image batch (B, 3, S, S), float in [0, 1], to ``joints`` (B, 21, 3)
and, for a mesh network, ``vertices`` (B, N, 3), both in uvd (`handshape.nets`). The batch size
is dynamic. Sparse tensors stop both exporters, so every `MeshChebConv` is switched to its
gather form of L~ x (same values); batch norms use their running statistics (eval mode).

ONNX files carry the resolved training config as metadata (``handshape_config``, JSON), so that
`handshape predict --backend onnxruntime` needs nothing but the file. Every export is checked
before it is kept: the exported model must reproduce PyTorch's uvd on a random batch within
``TOLERANCE``, else nothing is written.

Checked with: ONNX opset `OPSET` and onnxruntime's CPU provider; TorchScript through
``torch.jit.trace`` and ``torch.jit.load``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from handshape.nets.inference import for_inference
from handshape.nets.mesh_cheb_conv import MeshChebConv
from handshape.nets.network import HandNet
from handshape.safeio.atomic import atomic_write

__all__ = [
    "FORMATS",
    "OPSET",
    "TOLERANCE",
    "ExportedOutput",
    "OnnxHandNet",
    "export_network",
    "exportable",
]

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
OPSET = 18
TOLERANCE = 1e-4  # max |uvd difference| between the exported model and PyTorch
CONFIG_KEY = "handshape_config"
INSTALL_HINT = "install the export extra: pip install 'handshape[export]'"


class _Exportable(nn.Module):
    """HandNet with plain tensor outputs: (joints,) or (joints, vertices)."""

    def __init__(self, net: HandNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(image)
        if out.vertices is None:
            return (out.joints,)
        return out.joints, out.vertices


def exportable(net: HandNet) -> nn.Module:
    """The inference copy of ``net`` (`handshape.nets.inference`), its convolutions in gather
    form, returning plain tensors."""
    net = for_inference(net, channels_last=False)
    for module in net.modules():
        if isinstance(module, MeshChebConv):
            module.gather = True
    return _Exportable(net).eval()


def output_names(net: HandNet) -> list[str]:
    return ["joints", "vertices"] if net.has_mesh else ["joints"]


def export_network(
    net: HandNet,
    cfg: dict[str, Any],
    out: Path,
    fmt: str,
    batch: int = 2,
    seed: int = 0,
) -> float:
    """Export ``net`` to ``out`` as ``fmt`` (onnx or torchscript) and check it.

    Returns:
        The largest |uvd| difference between the exported model and PyTorch on a random batch
        of ``batch`` images (an unseen batch size for ONNX: the export used another).

    Raises:
        ValueError: an unknown format, or an exported model that disagrees with PyTorch by more
            than TOLERANCE (nothing is written then).
        ImportError: ONNX export or its check without the export extra installed.
    """
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    size = net.input_size
    generator = torch.Generator().manual_seed(seed)
    example = torch.rand(1, 3, size, size, generator=generator)
    check = torch.rand(batch, 3, size, size, generator=generator)
    was_training = net.training
    with torch.inference_mode():
        # The reference is the network as trained and run in PyTorch (sparse L~).
        expected = [t.numpy() for t in _Exportable(net.eval())(check)]
    net.train(was_training)
    module = exportable(net)
    names = output_names(net)

    def write(tmp: str) -> None:
        if fmt == "onnx":
            with _quiet_tracing():
                _write_onnx(module, example, tmp, names, cfg)
            got = OnnxHandNet(Path(tmp)).run(check.numpy())
        else:
            with torch.no_grad(), _quiet_tracing():
                traced = torch.jit.trace(module, (example,), check_trace=False)
            torch.jit.save(traced, tmp)
            loaded = torch.jit.load(tmp)
            with torch.no_grad():
                got = [t.numpy() for t in loaded(check)]
        nonlocal error
        error = max(float(abs(g - e).max()) for g, e in zip(got, expected, strict=True))
        if error > TOLERANCE:
            raise ValueError(
                f"{out}: the exported model differs from PyTorch by {error:.2e} "
                f"(more than {TOLERANCE:g}); nothing written"
            )

    error = float("nan")
    atomic_write(out, write, suffix=f".{fmt}.tmp")
    log.info("exported %s to %s (max uvd difference %.2e)", fmt, out, error)
    return error


@contextlib.contextmanager
def _quiet_tracing() -> Iterator[None]:
    """Silence the tracer's warnings about shape checks turned constants: the shapes checked
    (channels, node counts, image size) are fixed by the network; the batch size stays free."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _write_onnx(
    module: nn.Module, example: torch.Tensor, path: str, names: Sequence[str], cfg: dict[str, Any]
) -> None:
    try:
        import onnx
    except ImportError as err:
        raise ImportError(f"ONNX export needs onnx and onnxruntime: {INSTALL_HINT}") from err
    dynamic = {"image": {0: "batch"}} | {name: {0: "batch"} for name in names}
    with torch.no_grad():
        torch.onnx.export(
            module,
            (example,),
            path,
            input_names=["image"],
            output_names=list(names),
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    model = onnx.load(path)
    entry = model.metadata_props.add()
    entry.key, entry.value = CONFIG_KEY, json.dumps(cfg)
    onnx.save(model, path)


class ExportedOutput(NamedTuple):
    """What `predict_image` reads from a network's output."""

    joints: torch.Tensor  # (B, 21, 3) uvd
    vertices: torch.Tensor | None  # (B, N, 3) uvd, None for a pose-only network


class OnnxHandNet:
    """An exported ONNX network run by onnxruntime (CPU), called like a HandNet.

    Attributes: ``input_size`` (S), ``config`` (the resolved training config from the file's
    metadata, None if absent), ``has_mesh``.
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError(f"--backend onnxruntime needs onnxruntime: {INSTALL_HINT}") from err
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such ONNX file")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own error types
            raise ValueError(f"{path}: not a readable ONNX model ({err})") from err
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ValueError(f"{path}: not a handshape export (expected one image input)")
        self.input_size = int(inputs[0].shape[-1])
        self.names = [o.name for o in self.session.get_outputs()]
        self.has_mesh = "vertices" in self.names
        meta = self.session.get_modelmeta().custom_metadata_map
        self.config: dict[str, Any] | None = (
            json.loads(meta[CONFIG_KEY]) if CONFIG_KEY in meta else None
        )

    def run(self, image: Any) -> list[Any]:
        """(B, 3, S, S) float32 array -> the outputs as numpy arrays, in output order."""
        return self.session.run(None, {"image": image})

    def lift(
        self, out: Any, K: torch.Tensor, root_depth: torch.Tensor, scale: torch.Tensor
    ) -> Any:
        """The output in the camera frame: `HandNet.lift` itself (it reads only input_size),
        so that both backends place the hand by the same function."""
        return HandNet.lift(self, out, K, root_depth, scale)  # type: ignore[arg-type]

    def __call__(self, image: torch.Tensor) -> ExportedOutput:
        outputs = dict(zip(self.names, self.run(image.float().numpy()), strict=True))
        vertices = outputs.get("vertices")
        return ExportedOutput(
            torch.from_numpy(outputs["joints"]),
            None if vertices is None else torch.from_numpy(vertices),
        )
