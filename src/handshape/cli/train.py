"""`handshape pretrain`, `handshape train` and `handshape finetune`: training (and, for
pretrain, evaluating and reporting) from an experiment config."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from handshape.cli.common import CONFIGS_HELP, OVERRIDES_HELP

logger = logging.getLogger("handshape")


def cmd_train(args: argparse.Namespace) -> None:
    from handshape.config import load_experiment
    from handshape.data.registry import prepare_data
    from handshape.lit.train import run_pretraining

    cfg = load_experiment(args.experiment, args.overrides, args.configs)
    prepare_data(cfg, args.workers)
    bundle = run_pretraining(cfg)
    logger.info("inference bundle: %s", bundle)


def cmd_pretrain(args: argparse.Namespace) -> None:
    from handshape.config import load_experiment
    from handshape.evaluation.evaluate import write_results
    from handshape.evaluation.metrics import format_mm
    from handshape.lit.pipeline import train_and_evaluate
    from handshape.lit.report import write_report

    cfg = load_experiment(args.experiment, args.overrides, args.configs)
    if str(cfg.data.name) not in ("synthetic", "keypoints"):
        raise ValueError(
            f"data.name={cfg.data.name}: `handshape pretrain` pretrains on synthetic data; on "
            "real data use `handshape train` (e.g. with train.init=outputs/pretrain/bundle), then "
            f"`handshape eval --data {cfg.data.name}:ROOT`"
        )
    bundle, results, _ = train_and_evaluate(cfg, workers=args.workers)
    out = Path(cfg.output)
    write_results(results, out / "eval")
    report = write_report(out, results)
    logger.info(
        "mesh error %s mm, pose error %.1f mm, AUC(20-50) %.3f",
        format_mm(results["mesh_error_mm"]),
        results["pose_error_mm"],
        results["pck"]["auc_20_50"],
    )
    logger.info("report: %s; inference bundle: %s", report, bundle)


def cmd_finetune(args: argparse.Namespace) -> None:
    from handshape.config import load_experiment
    from handshape.lit.finetune import run_finetune
    from handshape.nets.bundle import load_network

    overrides = [f"data.name={args.data}", *args.overrides]
    if args.root is not None:
        overrides.append(f"data.root={args.root}")
    elif args.data != "demo":
        raise SystemExit(f"handshape finetune: --data {args.data} needs --root (the set's folder)")
    if args.bundle is not None:
        overrides.append(f"finetune.bundle={args.bundle}")
    cfg = load_experiment(args.experiment, overrides, args.configs)
    net, net_cfg = load_network(Path(cfg.finetune.bundle))
    bundle = run_finetune(cfg, net, net_cfg)
    logger.info("fine-tuned bundle: %s", bundle)


def add_pretrain_and_train(sub: argparse._SubParsersAction) -> None:
    """`handshape pretrain` and `handshape train`."""
    for name, func, text in (
        (
            "pretrain",
            cmd_pretrain,
            "the main job: synthetic data if missing, every training "
            "stage, evaluation and a report (resumable)",
        ),
        ("train", cmd_train, "the training stages only (resumable), then an inference bundle"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument(
            "--experiment",
            default="quick",
            help="an experiment: tiny, quick, paper (the package's configs/experiment/NAME.yaml) "
            "or a path to a YAML file",
        )
        p.add_argument("--configs", type=Path, help=CONFIGS_HELP)
        p.add_argument("--workers", type=int, default=2, help="processes for data generation")
        p.add_argument("overrides", nargs="*", help=OVERRIDES_HELP)
        p.set_defaults(func=func)


def add_finetune(sub: argparse._SubParsersAction) -> None:
    """`handshape finetune`."""
    text = (
        "weakly supervised fine-tuning (paper Sec. 4.4) of a pretrained bundle on RGB-D data "
        "without mesh labels: RHD, STB, or the built-in demo domain (resumable)"
    )
    p = sub.add_parser("finetune", help=text, description=text)
    p.add_argument("--data", choices=("demo", "rhd", "stb"), default="demo", help="target data")
    p.add_argument("--root", type=Path, help="the data set's folder (rhd, stb)")
    p.add_argument("--bundle", type=Path, help="pretrained bundle (default: finetune.bundle)")
    p.add_argument("--experiment", default="quick", help="an experiment name or YAML path")
    p.add_argument("--configs", type=Path, help=CONFIGS_HELP)
    p.add_argument("overrides", nargs="*", help=OVERRIDES_HELP)
    p.set_defaults(func=cmd_finetune)
