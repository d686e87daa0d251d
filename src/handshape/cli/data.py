"""`handshape synth`, `handshape synth-sheet` and `handshape setup`: the synthetic training set,
a contact sheet of it, and MediaPipe's networks set up for predict."""

from __future__ import annotations

import argparse
from pathlib import Path


def _parse_part(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected I/N (e.g. 0/4), got '{text}'") from err
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"need 0 <= I < N, got {i}/{n}")
    return i, n


def cmd_synth(args: argparse.Namespace) -> None:
    import dataclasses

    from handshape.config import config_file
    from handshape.data.synth.generate import Plan, generate
    from handshape.data.synth.scene import SynthConfig

    config = SynthConfig.load(config_file("data", args.config))
    if args.size is not None:
        config = dataclasses.replace(config, size=args.size)
    plan = Plan(args.out, args.split, args.num, args.seed, config)
    written = generate(plan, workers=args.workers, part=args.shard)
    print(f"{plan.folder}: wrote {written} samples; {plan.num} in the split")


def cmd_synth_sheet(args: argparse.Namespace) -> None:
    from handshape.data.synth.sheet import synthetic_sheet

    out = synthetic_sheet(
        args.data, args.out, num=args.num, backgrounds=args.backgrounds, seed=args.seed
    )
    print(f"wrote {out}")


def cmd_setup(args: argparse.Namespace) -> None:
    from handshape.inference import mediapipe_files

    if mediapipe_files.is_installed():
        print(f"{mediapipe_files.cache_dir()}: MediaPipe's networks are set up")
        return
    try:
        folder = mediapipe_files.install(wheel=args.wheel)
    except RuntimeError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"{folder}: MediaPipe's palm detector and landmark network, with their licence")


def add_setup(sub: argparse._SubParsersAction) -> None:
    """`handshape setup`."""
    text = (
        "take MediaPipe Hands' two networks out of the mediapipe 0.10.21 wheel (pinned by "
        "sha256, downloaded from PyPI unless --wheel names it) into the cache "
        "$HANDSHAPE_CACHE (default ~/.cache/handshape); nothing is downloaded at run time"
    )
    p = sub.add_parser("setup", help="set up MediaPipe's networks for predict", description=text)
    p.add_argument("--wheel", type=Path, help="a downloaded mediapipe-0.10.21 wheel to use")
    p.set_defaults(func=cmd_setup)


def add_synth(sub: argparse._SubParsersAction) -> None:
    """`handshape synth`."""
    p = sub.add_parser(
        "synth",
        help="render the synthetic training set (resumable, shardable)",
        description="Render hands from the open hand model with random shape, gesture variant, "
        "camera, lighting and skin tone. Each sample is a pure function of (seed, split, index): "
        "a killed run resumes where it stopped, and --shard I/N splits the work over processes "
        "or machines that share the output folder.",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (OUT/<split>/...)")
    p.add_argument("--num", type=int, required=True, help="samples in this split")
    p.add_argument("--split", choices=("train", "val"), default="train")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, help="crop side in pixels (default: from --config)")
    p.add_argument("--workers", type=int, default=1, help="rendering processes on this machine")
    p.add_argument(
        "--shard",
        type=_parse_part,
        default=(0, 1),
        metavar="I/N",
        help="do only part I of N (shards k with k %% N == I)",
    )
    p.add_argument(
        "--config",
        default="synthetic",
        help="generator settings: a name in the package's configs/data/ or a YAML path",
    )
    p.set_defaults(func=cmd_synth)


def add_synth_sheet(sub: argparse._SubParsersAction) -> None:
    """`handshape synth-sheet`."""
    p = sub.add_parser("synth-sheet", help="contact sheet of synthetic samples with joints drawn")
    p.add_argument("--data", type=Path, required=True, help="a split folder, e.g. OUT/train")
    p.add_argument("--out", type=Path, default=Path("docs/synthetic_samples.png"))
    p.add_argument("--num", type=int, default=32)
    p.add_argument(
        "--backgrounds",
        type=Path,
        help="folder of background photos (default: built-in backgrounds)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_synth_sheet)
