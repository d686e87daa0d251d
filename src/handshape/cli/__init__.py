"""The `handshape` command line: one entry point, a subcommand per job.

Each command group lives in its own module (`handmodel`, `data`, `train`, `studies`, `eval`,
`predict`, `export`), which adds its subparsers and imports what a command runs inside the
command itself: building the parser imports neither torch, Lightning, PyG nor the rendering
stack, so that `--help` answers at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from handshape.cli import data, export, handmodel, predict, studies, train
from handshape.cli import eval as evaluation

EPILOG = "Run `handshape COMMAND --help` for the options of each command."
# Each command's subparser, in the order `handshape --help` lists them.
COMMANDS = (
    handmodel.add_handmodel,
    data.add_setup,
    handmodel.add_graph,
    data.add_synth,
    data.add_synth_sheet,
    train.add_pretrain_and_train,
    train.add_finetune,
    studies.add_study,
    predict.add_predict,
    export.add_export,
    evaluation.add_eval,
)
# Where launchers put a process's rank, in the order Lightning reads them (lightning_fabric's
# rank_zero_only before a Trainer sets it).
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")

__all__ = ["build_parser", "main", "process_rank"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handshape",
        description="3D hand shape and pose from a single RGB image (Ge et al., CVPR 2019).",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def process_rank() -> int:
    """This process's rank under DDP: torch.distributed's once its process group is up (looked
    up only when something has imported it already), else the first of `RANK_VARIABLES` set,
    else 0 (a single process)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    for name in RANK_VARIABLES:
        value = os.environ.get(name)
        if value is not None:
            return int(value)
    return 0


class _RankZero(logging.Filter):
    """Under DDP every rank runs the command; only rank zero reports."""

    def filter(self, record: logging.LogRecord) -> bool:
        return process_rank() == 0


def _configure_logging() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
    handler.addFilter(_RankZero())
    root = logging.getLogger("handshape")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging()
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
