"""Everything issue 14 asks of a lent GPU, in one run with one results file (JSON).

Sections, in order, each recorded (or its error recorded) before the next starts; the file is
rewritten atomically after each, so a run cut short still returns what it measured:

1. ``env``: device, torch, CUDA.
2. ``latency``: the model at batch 1, eval: as trained in fp32 and bf16 (autocast); its
   inference copy (`handshape.nets.inference`, what `handshape predict` runs) in fp32 and with
   bf16 weights, eager and compiled (torch.compile, CUDA graphs on a GPU); median ms.
3. ``throughput``: images/s at a large batch: as trained under bf16 autocast, the inference
   copy with bf16 weights (eager, and compiled where it compiled).
4. ``graph``: the Graph CNN decoder against plain PyG ChebConv (forward + backward, batch 32).
5. ``data``: a synthetic set rendered with every core (sized to the remaining budget).
6. ``train_rate``: training steps/s of the end-to-end stage in bf16, with the DDP settings of
   `make pretrain EXPERIMENT=paper` (DistributedDataParallel, batch and optimiser of the train
   config), on that data.
7. ``pretrain``: `handshape pretrain` of the experiment for the time left (the paper's stage
   ratio 2:1:6, steps from the measured rate), returning its validation metrics.

Run: `bash scripts/gpu_check.sh --out $OUT/gpu_check.json --budget 540` (see the .sh).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_graph import decoder_vs_pyg

from handshape.config import load_experiment
from handshape.geometry.mesh_graph import mesh_hierarchy
from handshape.handmodel.model import HandModel
from handshape.nets.inference import for_inference
from handshape.nets.network import HandNet
from handshape.safeio.atomic import atomic_write_text

log = logging.getLogger("gpu_check")
STAGE_RATIO = {"hourglass": 2, "pose_regressor": 1, "full": 6}  # the paper's 100k : 50k : 300k


class Check:
    """The results file and the clock."""

    def __init__(self, out: Path, budget: float) -> None:
        self.out, self.budget, self.start = out, budget, time.monotonic()
        self.results: dict[str, Any] = {"budget_s": budget, "sections": {}}

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.start)

    def section(self, name: str, fn: Callable[[], Any], needs: float = 0.0) -> Any:
        if self.left() < needs:
            self.results["sections"][name] = {"skipped": f"under {needs:.0f} s left"}
            self.save()
            return None
        log.info("%s (%.0f s left)", name, self.left())
        began = time.monotonic()
        try:
            value = fn()
            entry: dict[str, Any] = {"result": value}
        except Exception as err:  # recorded, and the next section still runs
            value = None
            entry = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()}
            log.error("%s failed: %s", name, err)
        entry["seconds"] = round(time.monotonic() - began, 1)
        self.results["sections"][name] = entry
        self.save()
        return value

    def save(self) -> None:
        self.results["elapsed_s"] = round(time.monotonic() - self.start, 1)
        atomic_write_text(self.out, json.dumps(self.results, indent=1, default=str))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(fn: Callable[[], object], device: torch.device, repeat: int) -> float:
    for _ in range(3):
        fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


def _network(cfg: Any, device: torch.device) -> HandNet:
    hand = HandModel.default()
    hierarchy = mesh_hierarchy(hand.data.faces, hand.num_vertices, cfg.model.graph_levels)
    return HandNet(cfg.model, hierarchy, hand).to(device).eval()


def _compiled(net: HandNet, device: torch.device) -> Callable[[torch.Tensor], Any]:
    # CUDA graphs remove the launch overhead that dominates batch 1 on a GPU.
    mode = "reduce-overhead" if device.type == "cuda" else None
    return torch.compile(net, mode=mode)


def latency(net: HandNet, device: torch.device, repeat: int, compile_: bool) -> dict[str, Any]:
    """Batch-1 ms: the network as trained (fp32, bf16 autocast) and its inference copy (what
    `handshape predict` runs: `for_inference`), eager and compiled, fp32 and bf16 weights."""
    image = torch.rand(1, 3, net.input_size, net.input_size, device=device)
    fast = for_inference(net)
    fast_bf16 = copy.deepcopy(fast).to(torch.bfloat16)
    image_bf16 = image.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    out: dict[str, Any] = {}
    with torch.inference_mode():
        out["fp32_ms"] = _median_ms(lambda: net(image), device, repeat)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out["bf16_ms"] = _median_ms(lambda: net(image), device, repeat)
        out["inference_fp32_ms"] = _median_ms(lambda: fast(image), device, repeat)
        out["inference_bf16_ms"] = _median_ms(lambda: fast_bf16(image_bf16), device, repeat)
    if compile_:
        with torch.no_grad():
            compiled = _compiled(fast, device)
            out["inference_compiled_fp32_ms"] = _median_ms(lambda: compiled(image), device, repeat)
            compiled = _compiled(fast_bf16, device)
            out["inference_compiled_bf16_ms"] = _median_ms(
                lambda: compiled(image_bf16), device, repeat
            )
    return out


def throughput(net: HandNet, device: torch.device, batch: int, compile_: bool) -> dict[str, Any]:
    """Images/s at a large batch: as trained under bf16 autocast, and the inference copy with
    bf16 weights in channels_last, eager and compiled."""
    image = torch.rand(batch, 3, net.input_size, net.input_size, device=device)
    image_bf16 = image.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    fast = for_inference(net).to(torch.bfloat16)
    out: dict[str, Any] = {"batch": batch}
    with torch.no_grad():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            ms = _median_ms(lambda: net(image), device, 5)
        out["eager_bf16_images_per_s"] = batch / (ms / 1000)
        ms = _median_ms(lambda: fast(image_bf16), device, 5)
        out["inference_bf16_images_per_s"] = batch / (ms / 1000)
        if compile_:
            compiled = torch.compile(fast)
            ms = _median_ms(lambda: compiled(image_bf16), device, 5)
            out["inference_compiled_bf16_images_per_s"] = batch / (ms / 1000)
    return out


def render(cfg: Any, workers: int) -> dict[str, Any]:
    from handshape.data.registry import prepare_data

    prepare_data(cfg, workers)
    return {"root": str(cfg.data.root), "train": cfg.data.num_train, "val": cfg.data.num_val}


def train_rate(cfg: Any, device: torch.device, steps: int, precision: str) -> dict[str, Any]:
    """Steps/s of the end-to-end stage under DDP (one process per device, as Lightning's ddp
    strategy runs it), the train config's batch size and optimiser, bf16 autocast."""
    import torch.distributed as dist
    from omegaconf import OmegaConf
    from torch.nn.parallel import DistributedDataParallel

    from handshape.data.registry import build_datamodule
    from handshape.lit.pretrain import PretrainModule

    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    module = PretrainModule(plain, "full").to(device)
    module.train()
    data = build_datamodule(plain)
    data.setup("fit")
    started_group = False
    if not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29517")
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=0, world_size=1)
        started_group = True
    try:
        ddp = DistributedDataParallel(
            module, device_ids=[device.index or 0] if device.type == "cuda" else None
        )
        optimizer = module.configure_optimizers()
        use_bf16 = precision.startswith("bf16")
        batches = iter(data.train_dataloader())

        def step() -> None:
            nonlocal batches
            try:
                batch = next(batches)
            except StopIteration:
                batches = iter(data.train_dataloader())
                batch = next(batches)
            batch = {
                k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
                for k, v in batch.items()
            }
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = ddp(batch, 0)
            loss.backward()
            optimizer.step()

        # DDP wraps forward; PretrainModule's forward is the training step here.
        module.forward = module.training_step  # type: ignore[method-assign]
        module.log = module.log_dict = lambda *a, **k: None  # type: ignore[method-assign]
        for _ in range(3):
            step()
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(device)
        seconds = time.perf_counter() - start
    finally:
        if started_group:
            dist.destroy_process_group()
    rate = steps / seconds
    return {
        "steps_per_s": rate,
        "images_per_s": rate * int(cfg.train.batch_size),
        "batch_size": int(cfg.train.batch_size),
        "precision": precision,
        "steps": steps,
        "data_loading_included": True,
    }


def pretrain(
    experiment: str, overrides: list[str], rate: float, seconds: float, workers: int
) -> dict[str, Any]:
    """`handshape pretrain` with steps scaled to ``seconds`` at ``rate`` steps/s (end-to-end
    stage; the other stages are cheaper, so this errs on the short side)."""
    total = max(len(STAGE_RATIO), int(rate * seconds * 0.5))  # start-up, validation, evaluation
    scale = total / sum(STAGE_RATIO.values())
    steps = {stage: max(1, int(scale * r)) for stage, r in STAGE_RATIO.items()}
    every = min(steps.values())  # every stage validates (and so checkpoints) at least once
    args = [f"train.stages.{stage}.steps={n}" for stage, n in steps.items()]
    args += [f"train.val_every={every}", "train.logging.wandb=disabled"]
    command = [sys.executable, "-m", "handshape.cli", "pretrain", "--experiment", experiment]
    command += ["--workers", str(workers), *overrides, *args]
    log.info("running %s", " ".join(command))
    done = subprocess.run(command, capture_output=True, text=True, timeout=max(30, seconds))
    result: dict[str, Any] = {"steps": steps, "returncode": done.returncode}
    result["log_tail"] = (done.stdout + done.stderr)[-3000:]
    output = next((o.split("=", 1)[1] for o in overrides if o.startswith("output=")), None)
    if output:
        metrics = sorted(Path(output).rglob("*.json"), key=lambda p: p.stat().st_mtime)
        for path in reversed(metrics):
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and "mesh_error_mm" in record:
                keep = ("samples", "mesh_error_mm", "pose_error_mm", "pck")
                result["validation"] = {k: record[k] for k in keep if k in record}
                result["metrics_file"] = str(path.relative_to(output))
                break
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the results file (JSON)")
    parser.add_argument("--budget", type=float, default=540, help="seconds for the whole run")
    parser.add_argument("--experiment", default="paper")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per latency figure")
    parser.add_argument("--throughput-batch", type=int, default=512)
    parser.add_argument("--graph-batch", type=int, default=32)
    parser.add_argument("--train-steps", type=int, default=30, help="timed steps of train_rate")
    parser.add_argument("--precision", default="bf16-mixed")
    parser.add_argument(
        "--images-per-second",
        type=float,
        default=20.0,
        help="images/s per rendering worker assumed when sizing the data set (about 20 here)",
    )
    parser.add_argument("--max-train", type=int, default=60000)
    parser.add_argument("--min-train", type=int, default=64)
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "handshape_gpu_check"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--no-pretrain", action="store_true", help="stop after train_rate")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[gpu_check] %(message)s")
    check = Check(args.out, args.budget)
    device = torch.device(args.device)
    compile_ = not args.no_compile

    def env() -> dict[str, Any]:
        info = {
            "torch": torch.__version__,
            "device": str(device),
            "host": platform.node(),
            "cpu_cores": os.cpu_count(),
            "experiment": args.experiment,
        }
        if device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(device)
            info["cuda"] = torch.version.cuda
        return info

    check.section("env", env)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
    cfg = load_experiment(args.experiment)
    built: dict[str, HandNet] = {}

    def build() -> dict[str, Any]:
        built["net"] = _network(cfg, device)
        return {"parameters_m": sum(p.numel() for p in built["net"].parameters()) / 1e6}

    check.section("build", build)
    net = built.pop("net", None)
    if net is not None:
        check.section("latency", lambda: latency(net, device, args.repeat, compile_), needs=30)
        check.section(
            "throughput", lambda: throughput(net, device, args.throughput_batch, compile_), needs=30
        )
        del net
    hand = HandModel.default()
    hierarchy = mesh_hierarchy(hand.data.faces, hand.num_vertices, cfg.model.graph_levels)
    check.section(
        "graph",
        lambda: decoder_vs_pyg(hierarchy, device=str(device), batch=args.graph_batch, repeat=5),
        needs=20,
    )
    # Data for the training sections: as much as a fifth of the time left can render.
    rate = args.images_per_second * args.workers
    num_train = int(min(args.max_train, max(args.min_train, rate * check.left() / 5)))
    num_val = max(16, num_train // 8)
    root = args.work / "data"
    output = args.work / "pretrain"
    overrides = [
        f"data.root={root}",
        f"data.num_train={num_train}",
        f"data.num_val={num_val}",
        f"output={output}",
        f"train.trainer.precision={args.precision}",
        f"train.num_workers={max(0, min(8, args.workers - 1))}",
    ]
    train_cfg = load_experiment(args.experiment, overrides)
    if check.section("data", lambda: render(train_cfg, args.workers), needs=30) is None:
        return 0
    rate_result = check.section(
        "train_rate",
        lambda: train_rate(train_cfg, device, args.train_steps, args.precision),
        needs=30,
    )
    if args.no_pretrain or rate_result is None:
        return 0
    check.section(
        "pretrain",
        lambda: pretrain(
            args.experiment, overrides, rate_result["steps_per_s"], check.left() - 15, args.workers
        ),
        needs=60,
    )
    log.info("results in %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
