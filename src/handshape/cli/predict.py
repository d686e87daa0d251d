"""`handshape predict`: every hand in photographs and videos, its mesh, joints and overlay."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


def _parse_box(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(
            f"expected four finite numbers x0,y0,x1,y1 in image pixels, got '{text}'"
        )
    x0, y0, x1, y1 = values
    if x1 <= x0 or y1 <= y0:
        raise argparse.ArgumentTypeError(f"need x0 < x1 and y0 < y1, got '{text}'")
    return x0, y0, x1, y1


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got '{text}'")
    return int(text)


def _check_inputs(inputs: list, args: argparse.Namespace) -> None:
    """Refuse, before anything is written, inputs whose outputs would overwrite each other and
    boxes given for videos."""
    by_stem: dict[str, list[str]] = {}
    for source in inputs:
        by_stem.setdefault(source.path.stem, []).append(str(source.path))
    clashes = [paths for paths in by_stem.values() if len(paths) > 1]
    if clashes:
        raise ValueError(
            "inputs with one name would write over each other's outputs in --out: "
            + "; ".join(" and ".join(paths) for paths in clashes)
        )
    if args.box and any(source.kind == "video" for source in inputs):
        raise ValueError("--box is for photographs; a video's hands are detected and tracked")


def cmd_predict(args: argparse.Namespace) -> None:
    import time

    import torch

    from handshape.inference.hands import HandFinder
    from handshape.inference.media import sources
    from handshape.inference.predict import Predictor, load_mesher

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    inputs = sources(args.inputs)
    _check_inputs(inputs, args)
    if args.backend == "onnxruntime":
        mesher = _onnx_mesher(args)
    else:
        mesher = load_mesher(
            args.model, args.checkpoint, args.hand_scale, 0.0 if args.no_refine else 1.0
        )
    finder = HandFinder.load(max_hands=args.max_hands)
    predictor = Predictor(
        finder,
        mesher,
        args.model,
        mesh_format=args.format,
        focal=args.focal,
        root_depth=args.root_depth,
        boxes=args.box,
        smooth=not args.no_smooth,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for source in inputs:
        start = time.perf_counter()
        try:
            if source.kind == "video":
                written, frames = predictor.video(source.path, args.out, progress=True)
                what = f"{frames} frames"
            else:
                written, hands = predictor.image(source.path, args.out)
                what = f"{hands} hand{'s' if hands != 1 else ''}" if hands else "no hand found"
        except (ValueError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            failed.append(source.path)
            continue
        except Exception as err:  # a library's own error on one input: report, go on
            print(f"error: {source.path}: {type(err).__name__}: {err}", file=sys.stderr)
            failed.append(source.path)
            continue
        ms = (time.perf_counter() - start) * 1000
        print(f"{source.path}: {what} ({ms:.0f} ms) -> {written}")
    if failed:
        raise SystemExit(
            f"error: {len(failed)} of {len(inputs)} inputs failed: " + ", ".join(map(str, failed))
        )


def _onnx_mesher(args: argparse.Namespace):
    from handshape.inference.export import OnnxHandNet
    from handshape.inference.meshes import ImageMesher

    if args.model != "image" or args.checkpoint is None:
        raise ValueError(
            "--backend onnxruntime runs an exported image network: give --model image and "
            "--checkpoint FILE.onnx"
        )
    try:
        net = OnnxHandNet(args.checkpoint)
    except ImportError as err:
        raise SystemExit(f"error: {err}") from None
    except (ValueError, FileNotFoundError) as err:
        raise ValueError(f"--checkpoint: {err}") from err
    if net.config is None:
        raise ValueError(f"--checkpoint: {args.checkpoint}: no handshape config in its metadata")
    return ImageMesher(net, net.config, args.hand_scale, 0.0 if args.no_refine else 1.0)


def add_predict(sub: argparse._SubParsersAction) -> None:
    """`handshape predict`."""
    p = sub.add_parser(
        "predict",
        help="every hand in photographs and videos: meshes, joints, overlays",
        description="Find every hand (left or right) in each photograph, folder of photographs "
        "or video, and write its mesh, 2D and 3D joints and an overlay (OUT/NAME.json, "
        "OUT/NAME_hand<k>.ply, OUT/NAME_overlay.png; for a video OUT/NAME_overlay.mp4 and "
        "OUT/NAME.jsonl, a line per frame). MediaPipe's palm detector and landmark network "
        "(`handshape setup`) find the hands; the keypoint network (default, shipped with "
        "handshape) or the image network (`make pretrain`) gives each its mesh. The 3D answer "
        "is in the camera frame: focal length from --focal, else EXIF, else the image's longer "
        "side; the wrist's depth from the hand's size unless --root-depth; every JSON records "
        "the values used.",
    )
    p.add_argument("inputs", type=Path, nargs="+", help="images, folders of images, videos")
    p.add_argument("--out", type=Path, default=Path("outputs/predict"))
    p.add_argument(
        "--model",
        choices=("keypoints", "image"),
        default="keypoints",
        help="which network meshes the hands (default: keypoints, the better on real photographs)",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        help="that network's bundle folder, model.safetensors or .ckpt (default: the "
        "shipped keypoint network; the image network: outputs/pretrain/bundle)",
    )
    p.add_argument(
        "--box",
        type=_parse_box,
        action="append",
        help="a hand's box x0,y0,x1,y1 in image pixels instead of detection (repeat for several)",
    )
    p.add_argument("--max-hands", type=_count, default=4, help="at most this many hands per image")
    p.add_argument(
        "--focal",
        type=_positive,
        help="focal length in pixels (default: EXIF, else the longer side)",
    )
    p.add_argument(
        "--root-depth", type=_positive, help="wrist depth in metres (default: from the hand's size)"
    )
    p.add_argument(
        "--hand-scale", type=_positive, help="|J9 - J10| in metres (default: the hand model's)"
    )
    p.add_argument("--format", choices=("ply", "obj"), default="ply")
    p.add_argument(
        "--no-refine",
        action="store_true",
        help="keep the network's joints instead of moving them onto the landmarks",
    )
    p.add_argument("--no-smooth", action="store_true", help="videos: no One Euro smoothing")
    p.add_argument("--threads", type=_count, help="CPU threads (default: torch's, one per core)")
    p.add_argument(
        "--backend",
        choices=("torch", "onnxruntime"),
        default="torch",
        help="onnxruntime: run a .onnx image network from `handshape export` (with --model image)",
    )
    p.set_defaults(func=cmd_predict)
