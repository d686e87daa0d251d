"""How long scoring a whole benchmark takes, and writing / reading its prediction file.

Random hands (not a model's output: the numbers printed are meaningless, only the times count)
at each benchmark's test-set size: FreiHAND evaluation 3960 samples with 778-vertex meshes, RHD
2728, STB 3000. Prints a markdown table for docs/benchmarks.md.
Run: `python scripts/bench_protocols.py` (add `--freihand 500` for a quicker look).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from handshape.evaluation.predictions import (
    read_freihand_predictions,
    read_joint_predictions,
    write_freihand_predictions,
    write_joint_predictions,
)
from handshape.evaluation.protocols import freihand_report, hand3d_report, pck_2d_report


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--freihand", type=int, default=3960, help="FreiHAND samples")
    parser.add_argument("--rhd", type=int, default=2728, help="RHD samples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)

    def hands(n: int, points: int, noise: float = 0.0) -> np.ndarray:
        base = rng.normal(scale=0.04, size=(n, points, 3)) + np.array([0.0, 0.0, 0.6])
        return base + rng.normal(scale=noise, size=base.shape) if noise else base

    rows = []
    gj, gv = hands(args.freihand, 21), hands(args.freihand, 778)
    pj, pv = gj + rng.normal(scale=0.01, size=gj.shape), gv + rng.normal(scale=0.01, size=gv.shape)
    _, t = _timed(lambda: freihand_report(pj, gj, pv, gv))
    rows.append((f"FreiHAND report, {args.freihand} samples x 778 vertices", t))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pred.json"
        _, t = _timed(lambda: write_freihand_predictions(path, pj, pv))
        size = os.path.getsize(path) / 1e6
        rows.append((f"write pred.json ({size:.0f} MB)", t))
        _, t = _timed(lambda: read_freihand_predictions(path, args.freihand))
        rows.append(("read and validate pred.json", t))

        rj = hands(args.rhd, 21)
        pr = rj + rng.normal(scale=0.02, size=rj.shape)
        _, t = _timed(lambda: hand3d_report(pr, rj))
        rows.append((f"RHD / STB 3D report, {args.rhd} samples", t))
        _, t = _timed(lambda: pck_2d_report(pr[..., :2] * 500, rj[..., :2] * 500))
        rows.append((f"2D PCK report, {args.rhd} samples", t))
        ids = {str(i): pr[i] for i in range(args.rhd)}
        jpath = Path(tmp) / "rhd.json"
        _, t = _timed(lambda: write_joint_predictions(jpath, ids, "rhd"))
        rows.append(("write RHD predictions", t))
        _, t = _timed(lambda: read_joint_predictions(jpath, "rhd"))
        rows.append(("read and validate RHD predictions", t))

    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print("| step | seconds |\n|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
