"""`handshape eval`: a network or a prediction file scored on synthetic data or under the
RHD, STB or FreiHAND protocol."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from handshape.cli.common import load_checkpoint


def _data_spec(text: str) -> tuple[str, Path, str | None]:
    """--data NAME:ROOT[:SPLIT] -> (name, root, split or None)."""
    name, _, rest = text.partition(":")
    root, _, split = rest.partition(":")
    if not name or not root:
        raise argparse.ArgumentTypeError(
            f"expected NAME:ROOT[:SPLIT] (e.g. synthetic:data/synthetic-quick:val), got '{text}'"
        )
    return name, Path(root), split or None


def cmd_eval(args: argparse.Namespace) -> None:
    from handshape.data.registry import eval_dataset, spec
    from handshape.evaluation.benchmarks import BENCHMARKS

    name, root, split = args.data
    if args.predictions is not None and (args.model or args.simulated_keypoints):
        raise ValueError(
            "--model and --simulated-keypoints choose a network: not with --predictions"
        )
    if name in BENCHMARKS and args.simulated_keypoints:
        raise ValueError(
            f"--simulated-keypoints: {name} is scored on its images (through MediaPipe's "
            "landmarks); simulated keypoints are for the synthetic validation set"
        )
    if name in BENCHMARKS:
        _eval_benchmark(args, name, root, split or spec(name).default_split)
        return
    if args.predictions is not None or args.save_predictions is not None:
        raise ValueError(
            f"--predictions / --save-predictions: prediction files exist for "
            f"{', '.join(BENCHMARKS)}, not {name}"
        )
    from handshape.evaluation.evaluate import evaluate, write_results

    net, cfg, lifter = _eval_network(args)
    results = evaluate(net, cfg, eval_dataset(name, root, split), limit=args.limit, lifter=lifter)
    json_path, plot = write_results(results, args.out)
    print(json.dumps({k: results[k] for k in ("samples", "mesh_error_mm", "pose_error_mm")}))
    print(f"AUC 20-50 mm: {results['pck']['auc_20_50']:.3f}; wrote {json_path} and {plot}")


def _eval_benchmark(args: argparse.Namespace, name: str, root: Path, split: str) -> None:
    """RHD, STB or FreiHAND under its own protocol (handshape.evaluation.benchmarks)."""
    from handshape.data.registry import eval_dataset
    from handshape.evaluation import benchmarks

    if args.save_predictions is not None and args.predictions is not None:
        raise ValueError("--save-predictions writes a network's predictions: give --checkpoint")
    dataset = eval_dataset(name, root, split)
    if args.predictions is None:
        net, cfg, lifter = _eval_network(args)
        truth, pred = benchmarks.run_network(
            net, cfg, dataset, name, split, limit=args.limit, workers=args.workers, lifter=lifter
        )
        if args.save_predictions is not None:
            saved = benchmarks.save_predictions(args.save_predictions, truth, pred)
            print(f"predictions: {saved}")
        label = args.label or "handshape"
    else:
        found = benchmarks.read_prediction_file(args.predictions, name, len(dataset))
        truth = benchmarks.read_truth(dataset, name, split, limit=args.limit, workers=args.workers)
        pred = benchmarks.match_predictions(found, truth, args.predictions)
        label = args.label or args.predictions.stem
    if truth.joints_3d is None and args.save_predictions is not None:
        print(f"{name}:{split} has no 3D labels: predictions saved, nothing scored")
        return
    scored = benchmarks.score(truth, pred)
    paths = benchmarks.write_benchmark_results(scored, args.out, label)
    results = scored.results
    if name == "freihand":
        keys = ("pa_mpjpe_mm", "pa_mpvpe_mm", "f_5mm", "f_15mm", "auc_0_50_pa")
        print(json.dumps({k: results["freihand"].get(k) for k in keys}))
    else:
        pck = results["pck"]
        print(
            json.dumps(
                {
                    "samples": results["samples"],
                    "pose_error_mm": results["pose_error_mm"],
                    "auc_20_50": pck["auc_20_50"],
                    "auc_20_50_zb": pck["auc_20_50_zb"],
                    "auc_0_30px": results["pck_2d"]["auc_0_30px"],
                }
            )
        )
    print("wrote " + ", ".join(str(p) for p in paths))


def _eval_network(args: argparse.Namespace) -> tuple[Any, dict[str, Any], Any]:
    """(network, its config, the keypoint lifter or None) of `eval`'s --checkpoint / --model:
    a keypoint network (--model keypoints, or a keypoint bundle) reads MediaPipe's landmarks
    of each crop, unless --simulated-keypoints asks for the true ones with simulated errors."""
    if args.model == "keypoints" and args.checkpoint is None:
        from handshape.inference.predict import default_bundle

        args.checkpoint = default_bundle("keypoints")
    if args.checkpoint is None:
        raise ValueError("give --checkpoint, --predictions or --model keypoints")
    net, cfg = load_checkpoint(args.checkpoint)
    if args.model == "keypoints" and net.input != "keypoints":
        raise ValueError(f"--checkpoint: {args.checkpoint} is not a keypoint network")
    if net.input != "keypoints" or args.simulated_keypoints:
        return net, cfg, None
    import torch

    from handshape.inference.crop_lifter import CropLifter
    from handshape.inference.hands import HandFinder
    from handshape.inference.meshes import KeypointMesher
    from handshape.nets.inference import for_inference

    with torch.inference_mode():
        mesher = KeypointMesher(for_inference(net), cfg)
    return net, cfg, CropLifter(HandFinder.load(), mesher)


def add_eval(sub: argparse._SubParsersAction) -> None:
    """`handshape eval`."""
    p = sub.add_parser(
        "eval",
        help="score a network or a prediction file: synthetic, rhd, stb, freihand protocols",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--checkpoint",
        type=Path,
        help="an inference bundle folder or a training .ckpt",
    )
    source.add_argument(
        "--predictions",
        type=Path,
        help="score another method's predictions instead (rhd, stb: JSON id -> 21 x 3 m; "
        "freihand: pred.json; layouts in handshape.evaluation.predictions)",
    )
    p.add_argument(
        "--data",
        type=_data_spec,
        required=True,
        metavar="NAME:ROOT[:SPLIT]",
        help="a data set by name (synthetic, rhd, stb, freihand) and its folder; default split: "
        "the set's test split (synthetic val, rhd evaluation, stb test, freihand evaluation)",
    )
    p.add_argument("--out", type=Path, default=Path("outputs/eval"))
    p.add_argument("--limit", type=int, help="evaluate only the first N samples")
    p.add_argument(
        "--save-predictions",
        type=Path,
        metavar="FILE",
        help="with --checkpoint on rhd/stb/freihand: also write the predictions in the official "
        "layout (what --predictions reads)",
    )
    p.add_argument(
        "--model",
        choices=("keypoints",),
        help="keypoints: the keypoint network (--checkpoint, default the shipped one) on "
        "MediaPipe's landmarks of each sample's crop",
    )
    p.add_argument(
        "--simulated-keypoints",
        action="store_true",
        help="a keypoint network reads each sample's true keypoints with simulated landmark "
        "errors (what `handshape pretrain` reports) instead of MediaPipe's landmarks",
    )
    p.add_argument("--label", help="the curve's name in the plots")
    p.add_argument(
        "--workers", type=int, default=0, help="data loading processes (rhd, stb, freihand)"
    )
    p.set_defaults(func=cmd_eval)
