"""Benchmark of the differentiable depth rasteriser against DEODR; writes its section of
docs/benchmarks.md.

Races, in one run and on the same hand meshes, forward + backward per mesh:
- handshape.render.depth_raster at 32 x 32 (the paper's L_D size), batches of 32 hand model
  meshes, with one torch thread (per core, as DEODR runs) and with all of this machine's threads;
- DEODR (float64, one mesh at a time, its own backward) at 32 x 32;
- handshape's rasteriser at 64 x 64 and 256 x 256, and on CUDA when a GPU is present.
Times are medians over repeats. DEODR is a dev dependency (`pip install deodr`).
Run: `python scripts/bench_render.py --out docs/benchmarks.md`.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from handshape.handmodel.model import HandModel
from handshape.render.depth_raster import DepthRenderer

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "render"))
from bench_synth import update_section  # noqa: E402
from deodr_reference import deodr_depth  # noqa: E402

START, END = "<!-- bench:render start -->", "<!-- bench:render end -->"
BATCH = 32
FIELD = 0.22  # metres of the hand's plane across the crop, as a hand filling it


def hands(batch: int, seed: int) -> tuple[HandModel, torch.Tensor, torch.Tensor]:
    """Random hands (shape, pose within the limits) 0.35-0.55 m away, each framed by its K.

    Returns the model, (B, N, 3) float64 vertices and (B, 3, 3) float64 K for a 1 x 1 crop
    (scaled per size by `intrinsics`).
    """
    torch.manual_seed(seed)
    model = HandModel.default().double()
    with torch.no_grad():
        out = model(
            shape=torch.randn(batch, model.num_shapes, dtype=torch.float64),
            pose=model.limits.sample(batch).double(),
        )
    depth = 0.35 + 0.2 * torch.rand(batch, dtype=torch.float64)
    v = out.vertices - out.vertices.mean(1, keepdim=True)
    v = v + torch.stack([torch.zeros_like(depth), torch.zeros_like(depth), depth], 1)[:, None]
    K = torch.zeros(batch, 3, 3, dtype=torch.float64)
    K[:, 0, 0] = K[:, 1, 1] = depth / FIELD
    K[:, 2, 2] = 1.0
    return model, v, K


def intrinsics(K_unit: torch.Tensor, size: int) -> torch.Tensor:
    """Unit-crop K -> K of a size x size crop centred on the optical axis."""
    K = K_unit.clone()
    K[:, :2, :2] *= size
    K[:, 0, 2] = K[:, 1, 2] = size / 2 - 0.5
    return K


def median_ms(fn: Callable[[], object], repeat: int, sync: Callable[[], None]) -> float:
    fn()  # warm-up: allocator, lazy initialisation
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def ours_ms(
    model: HandModel,
    v: torch.Tensor,
    K_unit: torch.Tensor,
    size: int,
    dtype: torch.dtype,
    device: str,
    repeat: int,
) -> float:
    """Median ms of forward + backward of one batch through handshape's rasteriser."""
    renderer = DepthRenderer(model.faces, size, size).to(device)
    vertices = v.to(device, dtype)
    K = intrinsics(K_unit, size).to(device, dtype)
    weights = torch.rand(v.shape[0], size, size, generator=torch.Generator().manual_seed(0))
    weights = weights.to(device, dtype)

    def step() -> None:
        x = vertices.clone().requires_grad_(True)
        out = renderer(x, K)
        ((out.depth + out.coverage) * weights).sum().backward()

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    return median_ms(step, repeat, sync)


def deodr_ms(model: HandModel, v: torch.Tensor, K_unit: torch.Tensor, size: int) -> float:
    """Median ms of forward + backward of one mesh through DEODR (one mesh at a time)."""
    faces = model.faces.numpy()
    K = intrinsics(K_unit, size).numpy()
    weights = torch.rand(size, size, dtype=torch.float64, generator=torch.Generator())
    times = []
    for i in range(v.shape[0]):
        x = v[i].clone().requires_grad_(True)
        start = time.perf_counter()
        depth = deodr_depth(x, faces, K[i], size, size)
        (depth * weights).sum().backward()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[1:])  # the first includes DEODR's lazy set-up


def measure(repeat: int) -> dict[str, float]:
    model, v, K_unit = hands(BATCH, seed=0)
    threads = torch.get_num_threads()
    r: dict[str, float] = {"threads": threads}
    r["deodr_32"] = deodr_ms(model, v, K_unit, 32)
    torch.set_num_threads(1)
    for size in (32, 64, 256):
        r[f"ours_1t_{size}"] = ours_ms(model, v, K_unit, size, torch.float32, "cpu", repeat)
    r["ours_1t_32_f64"] = ours_ms(model, v, K_unit, 32, torch.float64, "cpu", repeat)
    torch.set_num_threads(threads)
    r["ours_nt_32"] = ours_ms(model, v, K_unit, 32, torch.float32, "cpu", repeat)
    if torch.cuda.is_available():
        for size in (32, 64, 256):
            r[f"cuda_{size}"] = ours_ms(model, v, K_unit, size, torch.float32, "cuda", repeat)
        r["cuda_name"] = torch.cuda.get_device_name()  # type: ignore[assignment]
    return r


def report(r: dict[str, float], repeat: int, note: str) -> str:
    per = {k: v / BATCH for k, v in r.items() if k.startswith(("ours", "cuda"))}
    deodr = r["deodr_32"]
    rows = [
        f"| DEODR 0.2.3, float64, one mesh at a time | 32 x 32 | 1 | {deodr:.1f} | 1x |",
        f"| handshape, float32 | 32 x 32 | 1 | {per['ours_1t_32']:.2f} | "
        f"**{deodr / per['ours_1t_32']:.0f}x** |",
        f"| handshape, float64 | 32 x 32 | 1 | {per['ours_1t_32_f64']:.2f} | "
        f"{deodr / per['ours_1t_32_f64']:.0f}x |",
        f"| handshape, float32 | 32 x 32 | {r['threads']:.0f} | {per['ours_nt_32']:.2f} | "
        f"{deodr / per['ours_nt_32']:.0f}x |",
        f"| handshape, float32 | 64 x 64 | 1 | {per['ours_1t_64']:.2f} | |",
        f"| handshape, float32 | 256 x 256 | 1 | {per['ours_1t_256']:.2f} | |",
    ]
    if "cuda_32" in r:
        for size in (32, 64, 256):
            rows.append(
                f"| handshape, float32, CUDA ({r['cuda_name']}) | {size} x {size} | | "
                f"{per[f'cuda_{size}']:.3f} | |"
            )
    return "\n".join(
        [
            START,
            "## Differentiable depth rendering (L_D)",
            "",
            f"Measured by `python scripts/bench_render.py` on {platform.node()}: "
            f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, torch "
            f"{torch.__version__}, {time.strftime('%Y-%m-%d')}. {note}".rstrip(),
            "",
            f"Forward + backward per hand mesh (1,050 vertices, 2,096 faces; random shapes and "
            f"poses filling the crop): DEODR one mesh at a time (median over {BATCH - 1} meshes), "
            f"handshape's `render.depth_raster` in batches of {BATCH} (median over {repeat} "
            f"batches, divided by {BATCH}).",
            "",
            "| renderer | size | CPU threads | ms per mesh | vs DEODR |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Goal: at least 20x DEODR at 32 x 32 (<= {deodr / 20:.1f} ms per mesh here).",
            END,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--note", default="", help="a sentence on the conditions, e.g. load")
    args = parser.parse_args()
    results = measure(args.repeat)
    section = report(results, args.repeat, args.note)
    update_section(args.out, section, START, END)
    print(section)
    print(f"updated {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
