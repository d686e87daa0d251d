"""The `handshape` command line: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported lazily so that `--help` answers at once
    import trimesh

DEFAULT_MODEL_PATH = Path(__file__).parent / "handmodel" / "assets" / "handmodel.npz"
EPILOG = "Run `handshape COMMAND --help` for the options of each command."

logger = logging.getLogger("handshape")


def _atomic_export(mesh: trimesh.Trimesh, out: Path) -> None:
    """Write a trimesh mesh to .obj/.ply via a temporary file in the same folder."""
    suffix = out.suffix.lower()
    if suffix not in (".obj", ".ply"):
        raise SystemExit(f"error: {out}: unsupported mesh format '{suffix}' (use .obj or .ply)")
    from handshape.safeio.atomic import atomic_write

    atomic_write(out, lambda tmp: mesh.export(tmp, file_type=suffix[1:]))


def cmd_handmodel_export(args: argparse.Namespace) -> None:
    import torch
    import trimesh

    from handshape.handmodel.model import HandModel
    from handshape.handmodel.poses import GestureLibrary

    model = HandModel.load(args.mano).double()
    library = GestureLibrary.load()
    try:
        pose = model.gesture(args.gesture, library)[None]
    except KeyError as err:
        raise SystemExit(f"error: {err.args[0]}") from err
    shape = torch.zeros(1, model.num_shapes, dtype=torch.float64)
    if args.seed is not None:
        # A random hand doing a random variant of the gesture, as the synthetic data samples it.
        gen = torch.Generator().manual_seed(args.seed)
        shape = torch.randn(1, model.num_shapes, generator=gen, dtype=torch.float64)
        pose = model.limits.sample(1, generator=gen, spread=args.spread, around=pose)
    with torch.no_grad():
        out = model(shape=shape, pose=pose)
    mesh = trimesh.Trimesh(out.vertices[0].numpy(), model.faces.numpy(), process=False)
    _atomic_export(mesh, args.out)
    print(f"wrote {args.out}: gesture '{args.gesture}', {model.num_vertices} vertices")
    if args.joints:
        import json

        args.joints.write_text(json.dumps({"joints_m": out.joints[0].tolist()}, indent=1))
        print(f"wrote {args.joints}")


def cmd_handmodel_sheet(args: argparse.Namespace) -> None:
    from handshape.handmodel.model import HandModel
    from handshape.render.gesture_sheet import gesture_sheet

    out = gesture_sheet(args.out, model=HandModel.load(args.mano), size=args.size)
    print(f"wrote {out}")


def cmd_handmodel_build(args: argparse.Namespace) -> None:
    from handshape.handmodel import template_builder

    template_builder.main(["--out", str(args.out)])


def cmd_handmodel_export_mano(args: argparse.Namespace) -> None:
    from handshape.handmodel.mano_io import write_mano
    from handshape.handmodel.model import HandModel

    model = HandModel.load(args.mano)
    write_mano(model.data, args.out)
    print(f"wrote {args.out} (official MANO pickle layout)")


def cmd_handmodel_info(args: argparse.Namespace) -> None:
    from handshape.handmodel.model import HandModel
    from handshape.handmodel.poses import GestureLibrary

    model = HandModel.load(args.mano)
    d = model.data
    joints = model.rest_joints
    print(
        f"vertices: {d.num_vertices}   faces: {len(d.faces)}   shape coefficients: "
        f"{d.num_shapes} ({', '.join(d.shape_names) or 'unnamed'})"
    )
    length_mm = 1000 * float(((joints[12] - joints[0]) ** 2).sum() ** 0.5)
    print(f"hand length (wrist to middle tip): {length_mm:.1f} mm")
    print(f"gestures: {', '.join(GestureLibrary.load().names)}")


def cmd_graph(args: argparse.Namespace) -> None:
    from handshape.geometry.mesh_graph import mesh_hierarchy
    from handshape.handmodel.model import HandModel

    model = HandModel.load(args.mano)
    hierarchy = mesh_hierarchy(model.data.faces, model.num_vertices, levels=args.levels)
    print(hierarchy.describe())


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
    net, cfg = _load_checkpoint(args.checkpoint)
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


def _load_checkpoint(path: Path) -> tuple[Any, dict[str, Any]]:
    """`nets.bundle.load_network` of a `--checkpoint`, its errors naming the argument."""
    from handshape.nets.bundle import load_network

    try:
        return load_network(path)
    except (ValueError, FileNotFoundError) as err:
        raise ValueError(f"--checkpoint: {err}") from err


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


def cmd_predict(args: argparse.Namespace) -> None:
    import time

    import torch

    from handshape.inference.hands import HandFinder
    from handshape.inference.media import sources
    from handshape.inference.predict import Predictor, load_mesher

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    inputs = sources(args.inputs)
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


def cmd_export(args: argparse.Namespace) -> None:
    from handshape.inference.export import export_network

    net, cfg = _load_checkpoint(args.checkpoint)
    try:
        error = export_network(net, cfg, args.out, args.format)
    except ImportError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"wrote {args.out} ({args.format}; max uvd difference to PyTorch {error:.1e})")


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handshape",
        description="3D hand shape and pose from a single RGB image (Ge et al., CVPR 2019).",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    mano_help = "an official MANO_RIGHT.pkl (or a file in its layout) instead of handshape's model"

    hm = sub.add_parser(
        "handmodel",
        help="the open parametric hand model",
        description="Build, inspect, export and render the hand model.",
    )
    hm_sub = hm.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = hm_sub.add_parser("export", help="write one posed hand as .obj or .ply")
    p.add_argument("--gesture", required=True, help="a gesture name (see `handmodel info`)")
    p.add_argument("--seed", type=int, help="random shape and a perturbed gesture from this seed")
    p.add_argument(
        "--spread",
        type=float,
        default=0.1,
        help="perturbation, as a fraction of each joint's range (with --seed)",
    )
    p.add_argument("--out", type=Path, required=True, help="FILE.obj or FILE.ply")
    p.add_argument("--joints", type=Path, help="also write the 21 joints as JSON here")
    p.add_argument("--mano", type=Path, help=mano_help)
    p.set_defaults(func=cmd_handmodel_export)

    p = hm_sub.add_parser("sheet", help="render every gesture from two viewpoints into one PNG")
    p.add_argument("--out", type=Path, default=Path("docs/handmodel.png"))
    p.add_argument("--size", type=int, default=200, help="pixels per view")
    p.add_argument("--mano", type=Path, help=mano_help)
    p.set_defaults(func=cmd_handmodel_sheet)

    p = hm_sub.add_parser("build", help="regenerate the model asset from assets/design.yaml")
    p.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH)
    p.set_defaults(func=cmd_handmodel_build)

    p = hm_sub.add_parser("export-mano", help="write the model in the official MANO pickle layout")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--mano", type=Path, help=mano_help)
    p.set_defaults(func=cmd_handmodel_export_mano)

    p = hm_sub.add_parser("info", help="sizes, shape coefficients and gesture names")
    p.add_argument("--mano", type=Path, help=mano_help)
    p.set_defaults(func=cmd_handmodel_info)

    text = (
        "take MediaPipe Hands' two networks out of the mediapipe 0.10.21 wheel (pinned by "
        "sha256, downloaded from PyPI unless --wheel names it) into the cache "
        "$HANDSHAPE_CACHE (default ~/.cache/handshape); nothing is downloaded at run time"
    )
    p = sub.add_parser("setup", help="set up MediaPipe's networks for predict", description=text)
    p.add_argument("--wheel", type=Path, help="a downloaded mediapipe-0.10.21 wheel to use")
    p.set_defaults(func=cmd_setup)

    p = sub.add_parser("graph", help="the mesh graph's Graclus coarsening levels")
    p.add_argument("--levels", type=int, default=4)
    p.add_argument("--mano", type=Path, help=mano_help)
    p.set_defaults(func=cmd_graph)

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
    return parser


CONFIGS_HELP = "a folder of your own configs, searched before the package's (same layout)"
OVERRIDES_HELP = (
    "config overrides as key=value (an unknown key is an error; +key=value adds a new one)"
)


class _RankZero(logging.Filter):
    """Under DDP every rank runs the command; only rank zero reports."""

    def filter(self, record: logging.LogRecord) -> bool:
        from pytorch_lightning.utilities import rank_zero_only

        return getattr(rank_zero_only, "rank", 0) == 0


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


if __name__ == "__main__":
    sys.exit(main())
