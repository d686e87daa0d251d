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

        def run(folder: Path, overrides: list[str]) -> dict:
            return run_weak_study(study, folder, overrides, args.configs)
    else:

        def run(folder: Path, overrides: list[str]) -> dict:
            return run_study(study, folder, overrides, args.configs, workers=args.workers)

    if args.seeds == 1:  # one run, in OUT itself (as before seeds were a setting)
        run(out, list(args.overrides))
        return
    from handshape.studies.seeds import run_seeds

    run_seeds(study, out, args.seeds, list(args.overrides), run)
    print((out / "table.md").read_text())


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
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="run the study with train.seed 0..N-1 (OUT/seed<k>/) and report each variant's "
        "mean and spread (OUT/table.md)",
    )
    p.add_argument("overrides", nargs="*", help=OVERRIDES_HELP + " (every variant)")
    p.set_defaults(func=cmd_study)
