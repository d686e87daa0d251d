"""Benchmark of the network (paper Sec. 5.5); writes its section of docs/benchmarks.md.

Per model (quick, paper) and batch size (1, 32): median forward ms of each component (hourglass,
residual encoder, Graph CNN head, pose regressor) and of the whole network, for the network as
trained (eval mode, no_grad) and for its inference copy (`handshape.nets.inference`: batch norms
folded, channels_last, inference_mode); training throughput of the end-to-end stage; the Graph
CNN decoder against plain PyG ChebConv (forward + backward, batch 32, paper sizes); onnxruntime
at batch 1 next to eager PyTorch (quick model, when the export extra is installed).
Run: `make bench` or `python scripts/bench_net.py --out docs/benchmarks.md`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).parent))
from bench_graph import CLOCK, decoder_vs_pyg, use_thread_clock
from bench_synth import update_section

from handshape.config import load_experiment
from handshape.geometry.mesh_graph import mesh_hierarchy
from handshape.handmodel.model import HandModel
from handshape.nets.inference import for_inference
from handshape.nets.network import HandNet

START, END = "<!-- bench:net start -->", "<!-- bench:net end -->"
COMPONENTS = ("hourglass", "encoder", "Graph CNN head", "pose regressor", "whole network")


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = CLOCK[0]()
        fn()
        times.append(CLOCK[0]() - start)
    return 1000 * sorted(times)[len(times) // 2]


def component_times(
    net: Any, batch: int, repeat: int, grad_mode: Callable[[], Any]
) -> dict[str, float]:
    size = net.input_size
    image = torch.rand(batch, 3, size, size)
    with grad_mode():
        maps, features = net.hourglass(image)
        joint_input = torch.cat([maps[-1], features], dim=1)
        latent = net.encoder(joint_input)
        vertices = net.head(latent)
        runs = {
            "hourglass": lambda: net.hourglass(image),
            "encoder": lambda: net.encoder(joint_input),
            "Graph CNN head": lambda: net.head(latent),
            "pose regressor": lambda: net.pose_regressor(vertices),
            "whole network": lambda: net(image),
        }
        return {name: _median_ms(fn, repeat) for name, fn in runs.items()}


def train_rate(net: HandNet, batch: int, repeat: int) -> float:
    image = torch.rand(batch, 3, net.input_size, net.input_size)
    optimizer = torch.optim.RMSprop(net.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad()
        out = net(image)
        loss = out.vertices.square().sum() + out.joints.square().sum()
        loss = loss + sum(m.square().sum() for m in out.heatmaps)
        loss.backward()
        optimizer.step()

    return batch / (_median_ms(step, repeat) / 1000)


def onnx_latency(net: HandNet, cfg: dict[str, Any], repeat: int) -> float | None:
    """Median ms of onnxruntime (CPU, one thread per core) at batch 1; None without the extra."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    from handshape.inference.export import OnnxHandNet, export_network

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "net.onnx"
        export_network(net, cfg, path, "onnx")
        session = OnnxHandNet(path, threads=torch.get_num_threads())
        image = torch.rand(1, 3, net.input_size, net.input_size).numpy()
        return _median_ms(lambda: session.run(image), repeat)


def model_section(name: str, hierarchy: Any, args: argparse.Namespace) -> list[str]:
    cfg = load_experiment(name)
    net = HandNet(cfg.model, hierarchy).eval()
    fast = for_inference(net)
    params = sum(p.numel() for p in net.parameters()) / 1e6
    lines = [
        f"### {name} model ({cfg.model.input_size}x{cfg.model.input_size} input, "
        f"{params:.1f} M parameters)",
        "",
    ]
    header = "| component |"
    rule = "|---|"
    columns: list[dict[str, float]] = []
    for batch in args.batches:
        repeat = args.repeat if batch == 1 else max(1, args.repeat // 10)
        if name == "paper" and batch > 1:
            repeat = 1
        columns.append(component_times(net, batch, repeat, torch.no_grad))
        columns.append(component_times(fast, batch, repeat, torch.inference_mode))
        header += f" batch {batch}: as trained | batch {batch}: inference copy |"
        rule += "---|---|"
    lines += [header, rule]
    for component in COMPONENTS:
        cells = " | ".join(f"{c[component]:.1f}" for c in columns)
        bold = component == "whole network"
        label = f"**{component}**" if bold else component
        lines.append(f"| {label} | {cells} |")
    lines.append("")
    if 1 in args.batches and 32 in args.batches:
        one, many = columns[1]["whole network"], columns[-1]["whole network"] / 32
        lines.append(
            f"Inference copy per image: {one:.1f} ms at batch 1, {many:.1f} ms at batch 32."
        )
        lines.append("")
    if name == "quick":
        plain = OmegaConf.to_container(cfg, resolve=True)
        assert isinstance(plain, dict)
        ort_ms = onnx_latency(net, plain, args.repeat)
        if ort_ms is None:
            lines.append("onnxruntime: not installed (`pip install '.[export]'`).")
        else:
            lines.append(
                f"Batch 1, whole network: onnxruntime {ort_ms:.1f} ms (ONNX opset 18, CPU "
                f"provider), eager PyTorch {columns[0]['whole network']:.1f} ms as trained, "
                f"{columns[1]['whole network']:.1f} ms inference copy."
            )
        lines.append("")
    if not args.no_train:
        rate = train_rate(net.train(), 16 if name == "quick" else 4, max(1, args.repeat // 10))
        lines += [
            f"Training (end-to-end stage, forward + backward + RMSprop): {rate:.1f} images/s.",
            "",
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--repeat", type=int, default=30, help="timed runs at batch 1")
    parser.add_argument("--models", default="quick,paper")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--note", default="", help="a sentence added under the heading")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="one thread, timed by its CPU time: for a machine shared with other jobs",
    )
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    torch.set_num_threads(os.cpu_count() or 1)
    if args.cpu_time:
        use_thread_clock()
    model = HandModel.default()
    hierarchy = mesh_hierarchy(model.data.faces, model.num_vertices, 4)
    lines = [
        START,
        "## Network speed (CPU)",
        "",
        f"Measured by `make bench` (scripts/bench_net.py) on {platform.node()}: "
        f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads, {time.strftime('%Y-%m-%d')}. Forward passes, median ms per batch "
        f"({'CPU time of the one thread' if args.cpu_time else 'wall time'}); "
        "as trained: eval mode under no_grad; inference copy: `handshape.nets.inference."
        "for_inference` (batch norms folded, the linear pose regressor collapsed into one "
        "matrix, channels_last) under inference_mode, what "
        "`handshape predict` runs. The paper reports 12.6 (hourglass) + 4.7 (encoder + Graph "
        "CNN) + 2.6 (pose regressor) = 19.9 ms per image on a GTX 1080.",
        "",
    ]
    if args.note:
        lines += [args.note, ""]
    with contextlib.suppress(Exception):
        graph = decoder_vs_pyg(hierarchy, batch=32, repeat=5)
        lines += [
            f"Graph CNN decoder (paper sizes, batch 32, forward + backward, training mode): "
            f"{graph['handshape_ms']:.0f} ms against {graph['pyg_ms']:.0f} ms for the same "
            f"decoder from plain PyG ChebConv, **{graph['speedup']:.1f}x**; largest output "
            f"difference {graph['max_diff']:.0e} in float32 (outputs up to "
            f"{graph['max_abs_output']:.1f}), {graph['max_diff_float64']:.0e} in float64.",
            "",
        ]
    for name in args.models.split(","):
        lines += model_section(name, hierarchy, args)
    lines.append(END)
    section = "\n".join(lines)
    update_section(args.out, section, START, END)
    print(section)


if __name__ == "__main__":
    main()
