"""`handshape export`: a trained network as ONNX or TorchScript, checked against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from handshape.cli.common import load_checkpoint


def cmd_export(args: argparse.Namespace) -> None:
    from handshape.inference.export import export_network

    net, cfg = load_checkpoint(args.checkpoint)
    try:
        error = export_network(net, cfg, args.out, args.format)
    except ImportError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"wrote {args.out} ({args.format}; max uvd difference to PyTorch {error:.1e})")


def add_export(sub: argparse._SubParsersAction) -> None:
    """`handshape export`."""
    p = sub.add_parser(
        "export",
        help="the network as ONNX or TorchScript, checked against PyTorch",
        description="Export a trained network (image batch -> joints and vertices in uvd) and "
        "check that the exported model reproduces PyTorch's output before keeping it.",
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="a bundle folder or a .ckpt")
    p.add_argument("--format", choices=("onnx", "torchscript"), required=True)
    p.add_argument("--out", type=Path, required=True, help="the file to write")
    p.set_defaults(func=cmd_export)
