"""The quick model's per-component forward time for two source trees, alternately.

Each tree runs in its own process (PYTHONPATH=TREE/src), one torch thread, timed by that
thread's CPU time, so that a machine shared with other jobs does not skew the comparison; the
network is the one each tree builds, as trained (eval mode, no_grad). Each cell is the best of
the rounds (medians within a round).

    python scripts/bench_before_after.py --before ../main --after . --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time, warnings
import torch
warnings.filterwarnings("ignore")
from handshape.config import load_experiment
from handshape.geometry.mesh_graph import mesh_hierarchy
from handshape.handmodel.model import HandModel
from handshape.nets.network import HandNet
torch.set_num_threads(1)
hand = HandModel.default()
hierarchy = mesh_hierarchy(hand.data.faces, hand.num_vertices, 4)
torch.manual_seed(0)
net = HandNet(load_experiment(sys.argv[1]).model, hierarchy).eval()
def median_ms(fn, n):
    fn()
    times = []
    for _ in range(n):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return 1000 * sorted(times)[n // 2]
out = {}
for batch, n in ((1, 30), (32, 5)):
    image = torch.rand(batch, 3, net.input_size, net.input_size)
    with torch.no_grad():
        maps, feats = net.hourglass(image)
        joint = torch.cat([maps[-1], feats], 1)
        latent = net.encoder(joint)
        verts = net.head(latent)
        out[batch] = {
            "hourglass": median_ms(lambda: net.hourglass(image), n),
            "encoder": median_ms(lambda: net.encoder(joint), n),
            "Graph CNN head": median_ms(lambda: net.head(latent), n),
            "pose regressor": median_ms(lambda: net.pose_regressor(verts), n),
            "whole network": median_ms(lambda: net(image), n),
        }
print(json.dumps(out))
"""


def run(tree: Path, experiment: str) -> dict[str, dict[str, float]]:
    env = dict(os.environ, PYTHONPATH=str(tree.resolve() / "src"))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, experiment],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="a source tree (repo root)")
    parser.add_argument("--after", type=Path, default=Path("."))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--experiment", default="quick")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, dict[str, float]]]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        runs["before"].append(run(args.before, args.experiment))
        runs["after"].append(run(args.after, args.experiment))
    print("| component | batch 1 before | batch 1 after | batch 32 before | batch 32 after |")
    print("|---|---|---|---|---|")
    for component in runs["before"][0]["1"]:
        cells = []
        for batch in ("1", "32"):
            for side in ("before", "after"):
                # the best round: load from other jobs only ever adds time
                cells.append(f"{min(r[batch][component] for r in runs[side]):.1f}")
        print(f"| {component} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
