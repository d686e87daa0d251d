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


def timed(fn: Callable[[], object], sync: Callable[[], None]) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return 1000 * (time.perf_counter() - start)


def ours_step(
    model: HandModel,
    v: torch.Tensor,
    K_unit: torch.Tensor,
    size: int,
    dtype: torch.dtype,
    device: str,
    cull: bool | None = None,
) -> tuple[Callable[[], None], Callable[[], None]]:
    """(forward + backward of one batch through handshape's rasteriser, device sync)."""
    renderer = DepthRenderer(model.faces, size, size, cull_back_faces=cull).to(device)
    vertices = v.to(device, dtype)
    K = intrinsics(K_unit, size).to(device, dtype)
    weights = torch.rand(v.shape[0], size, size, generator=torch.Generator().manual_seed(0))
    weights = weights.to(device, dtype)

    def step() -> None:
        x = vertices.clone().requires_grad_(True)
        out = renderer(x, K)
        ((out.depth + out.coverage) * weights).sum().backward()

    return step, torch.cuda.synchronize if device == "cuda" else (lambda: None)


def deodr_step(
    model: HandModel, v: torch.Tensor, K_unit: torch.Tensor, size: int, i: int
) -> Callable[[], None]:
    """Forward + backward of mesh i through DEODR (float64, one mesh at a time)."""
    from deodr_reference import deodr_depth

    faces = model.faces.numpy()
    K = intrinsics(K_unit, size)[i].numpy()
    weights = torch.rand(size, size, dtype=torch.float64, generator=torch.Generator())

    def step() -> None:
        x = v[i].clone().requires_grad_(True)
        (deodr_depth(x, faces, K, size, size) * weights).sum().backward()

    return step


def median_ms(step: Callable[[], None], sync: Callable[[], None], repeat: int) -> float:
    step()  # warm-up: allocator, lazy initialisation
    return statistics.median(timed(step, sync) for _ in range(repeat))


def measure(repeat: int, with_deodr: bool) -> dict[str, float]:
    model, v, K_unit = hands(BATCH, seed=0)
    threads = torch.get_num_threads()
    r: dict[str, float] = {"threads": threads}
    torch.set_num_threads(1)
    f32, sync = ours_step(model, v, K_unit, 32, torch.float32, "cpu")
    f64, _ = ours_step(model, v, K_unit, 32, torch.float64, "cpu")
    # The default culls back faces on the closed hand; the race also times it without.
    unculled, _ = ours_step(model, v, K_unit, 32, torch.float32, "cpu", cull=False)
    f32(), f64(), unculled()  # warm-up
    if with_deodr:
        deodr_step(model, v, K_unit, 32, 0)()  # DEODR's first call sets things up
    # Interleaved (a batch of ours, a mesh of DEODR, ...) so that both meet the same background
    # load on a shared machine.
    runs: dict[str, list[float]] = {
        "ours_1t_32": [],
        "ours_1t_32_f64": [],
        "ours_1t_32_nocull": [],
        "deodr_32": [],
    }
    for i in range(repeat):
        runs["ours_1t_32"].append(timed(f32, sync))
        runs["ours_1t_32_nocull"].append(timed(unculled, sync))
        runs["ours_1t_32_f64"].append(timed(f64, sync))
        if with_deodr:
            runs["deodr_32"].append(timed(deodr_step(model, v, K_unit, 32, i % BATCH), sync))
    r.update({k: statistics.median(t) for k, t in runs.items() if t})
    for size in (64, 256):
        step, sync = ours_step(model, v, K_unit, size, torch.float32, "cpu")
        r[f"ours_1t_{size}"] = median_ms(step, sync, repeat)
    torch.set_num_threads(threads)
    r["ours_nt_32"] = median_ms(f32, sync, repeat)
    if torch.cuda.is_available():
        for size in (32, 64, 256):
            step, sync = ours_step(model, v, K_unit, size, torch.float32, "cuda")
            r[f"cuda_{size}"] = median_ms(step, sync, repeat)
        r["cuda_name"] = torch.cuda.get_device_name()  # type: ignore[assignment]
    return r


def report(r: dict, repeat: int, note: str) -> str:
    per = {
        k: v / BATCH for k, v in r.items() if k.startswith(("ours", "cuda_")) and k != "cuda_name"
    }
    deodr = r.get("deodr_32")

    def row(what: str, size: int, threads: object, key: str) -> str:
        x = deodr / per[key] if deodr and size == 32 and threads else None
        ratio = "" if x is None else f"{x:.0f}x" if x >= 10 else f"{x:.1f}x"
        return f"| {what} | {size} x {size} | {threads} | {per[key]:.3f} | {ratio} |"

    rows = []
    if deodr:
        rows.append(
            f"| DEODR 0.2.3, float64, one mesh at a time | 32 x 32 | 1 | {deodr:.2f} | 1x |"
        )
    rows += [
        row("handshape, float32", 32, 1, "ours_1t_32"),
        row("handshape, float32, no back-face culling", 32, 1, "ours_1t_32_nocull"),
        row("handshape, float64", 32, 1, "ours_1t_32_f64"),
        row("handshape, float32", 32, r["threads"], "ours_nt_32"),
        row("handshape, float32", 64, 1, "ours_1t_64"),
        row("handshape, float32", 256, 1, "ours_1t_256"),
    ]
    if "cuda_32" in r:
        rows += [
            row(f"handshape, float32, CUDA ({r['cuda_name']})", s, "", f"cuda_{s}")
            for s in (32, 64, 256)
        ]
    goal = (
        f"Goal: at least 20x DEODR at 32 x 32 (<= {deodr / 20:.2f} ms per mesh in this run)."
        if deodr
        else "DEODR not installed: no race in this run."
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
            "Forward + backward per hand mesh (1,050 vertices, 2,096 faces; random shapes and "
            f"poses filling the crop), medians over {repeat} runs: handshape's "
            f"`render.depth_raster` in batches of {BATCH} (batch time / {BATCH}), DEODR one mesh "
            "at a time, the two interleaved at 32 x 32 so that both meet the same load. "
            "handshape's rows use its defaults (back faces culled: the hand is closed) unless "
            "they say otherwise.",
            "",
            "| renderer | size | CPU threads | ms per mesh | vs DEODR |",
            "|---|---|---|---|---|",
            *rows,
            "",
            goal,
            END,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/benchmarks.md", help="file to update; - prints only")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--note", default="", help="a sentence on the conditions, e.g. load")
    args = parser.parse_args()
    try:
        import deodr  # noqa: F401
    except ImportError:
        with_deodr = False
    else:
        with_deodr = True
    section = report(measure(args.repeat, with_deodr), args.repeat, args.note)
    print(section)
    if args.out != "-":
        from bench_synth import update_section  # pulls in the synthetic pipeline: only here

        update_section(Path(args.out), section, START, END)
        print(f"updated {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
