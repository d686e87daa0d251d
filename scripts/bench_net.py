"""Benchmark of the network (paper Sec. 5.5); writes its section of docs/benchmarks.md.

Forward time per component (hourglass; residual encoder + Graph CNN; pose regressor) at batch 1
and 32, and training throughput (forward + backward of the end-to-end stage), for the quick and
the paper-sized model, on the CPU with one thread per core.
Run: `make bench` or `python scripts/bench_net.py --out docs/benchmarks.md`.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_synth import update_section

from handshape.config import load_experiment
from handshape.geometry.mesh_graph import mesh_hierarchy
from handshape.handmodel.model import HandModel
from handshape.nets.network import HandNet

START, END = "<!-- bench:net start -->", "<!-- bench:net end -->"


def _ms(fn: Callable[[], object], repeat: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return 1000 * (time.perf_counter() - start) / repeat


@torch.no_grad()
def component_times(net: HandNet, batch: int, repeat: int) -> dict[str, float]:
    size = net.input_size
    image = torch.rand(batch, 3, size, size)
    maps, features = net.hourglass(image)
    joint_input = torch.cat([maps[-1], features], dim=1)
    latent = net.encoder(joint_input)
    vertices = net.head(latent)
    return {
        "hourglass": _ms(lambda: net.hourglass(image), repeat),
        "encoder + Graph CNN": _ms(lambda: net.head(net.encoder(joint_input)), repeat),
        "pose regressor": _ms(lambda: net.pose_regressor(vertices), repeat),
    }


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

    return batch / (_ms(step, repeat) / 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    model = HandModel.default()
    hierarchy = mesh_hierarchy(model.data.faces, model.num_vertices, 4)
    lines = [
        START,
        "## Network speed (CPU)",
        "",
        f"Measured by `make bench` (scripts/bench_net.py) on {platform.node()}: "
        f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads, {time.strftime('%Y-%m-%d')}. Forward passes in eval mode, ms per batch. "
        "The paper reports 12.6 (hourglass) + 4.7 (encoder + Graph CNN) + 2.6 (pose "
        "regressor) = 19.9 ms per image on a GTX 1080.",
        "",
    ]
    for name in ("quick", "paper"):
        cfg = load_experiment(name)
        net = HandNet(cfg.model, hierarchy).eval()
        params = sum(p.numel() for p in net.parameters()) / 1e6
        lines += [
            f"### {name} model ({cfg.model.input_size}x{cfg.model.input_size} input, "
            f"{params:.1f} M parameters)",
            "",
            "| component | batch 1 (ms) | batch 32 (ms) |",
            "|---|---|---|",
        ]
        one = component_times(net, 1, args.repeat)
        many = component_times(
            net, 32, max(1, args.repeat // 2) if name == "paper" else args.repeat
        )
        for key in one:
            lines.append(f"| {key} | {one[key]:.1f} | {many[key]:.1f} |")
        lines.append(f"| **total** | **{sum(one.values()):.1f}** | **{sum(many.values()):.1f}** |")
        rate = train_rate(net.train(), 16 if name == "quick" else 4, args.repeat)
        lines += [
            "",
            f"Training (end-to-end stage, forward + backward + RMSprop): {rate:.1f} images/s.",
            "",
        ]
    lines.append(END)
    section = "\n".join(lines)
    update_section(args.out, section, START, END)
    print(section)


if __name__ == "__main__":
    main()
