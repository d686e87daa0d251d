"""`handshape study`: the variants of a study trained and evaluated side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

from handshape.cli.common import CONFIGS_HELP, OVERRIDES_HELP


def cmd_study(args: argparse.Namespace) -> None:
    from handshape.studies.run import run_study
    from handshape.studies.spec import load_study, study_path

    study = load_study(study_path(args.study))
    out = args.out or Path("outputs") / study.name
    if study.kind == "finetune":
        from handshape.studies.weak import run_weak_study

        run_weak_study(study, out, args.overrides, args.configs)
        return
    run_study(study, out, args.overrides, args.configs, workers=args.workers)


def add_study(sub: argparse._SubParsersAction) -> None:
    """`handshape study`."""
    text = (
        "train and evaluate the variants of a study side by side (configs/study/*.yaml: loss "
        "ablations, head comparisons) with the same data, seed and budget; writes a markdown "
        "table and a figure of every variant's meshes (resumable)"
    )
    p = sub.add_parser("study", help=text, description=text)
    p.add_argument(
        "study", help="losses, heads, pose (the package's configs/study/NAME.yaml) or a YAML path"
    )
    p.add_argument("--out", type=Path, help="output folder (default: outputs/<study name>)")
    p.add_argument("--configs", type=Path, help=CONFIGS_HELP)
    p.add_argument("--workers", type=int, default=2, help="processes for data generation")
    p.add_argument("overrides", nargs="*", help=OVERRIDES_HELP + " (every variant)")
    p.set_defaults(func=cmd_study)
