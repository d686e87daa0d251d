"""What shadows cost the synthetic generator: render time per image with them off, hard, soft.

Renders the same samples (seed 0, train) with the default settings but the shadow section
changed, one process with one rasteriser thread, and prints the milliseconds per image of
`SampleMaker.render_sample` (meshes, shadow map and the shaded pass, no scene sampling, no
labels, no writing) and the CPU time per image (this process and its rasteriser thread).
Run: `python scripts/bench_shadows.py --samples 200`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

os.environ.setdefault("LP_NUM_THREADS", "1")  # before any GL import: one core for this process

import torch

from handshape.config import PACKAGE_CONFIGS
from handshape.data.synth.generate import SampleMaker
from handshape.data.synth.scene import SynthConfig


def variants(base: SynthConfig) -> dict[str, SynthConfig]:
    """The settings compared: off, all hard, all soft, the default mix; map sizes 256 and 512."""
    out = {}
    for size in (256, 512):
        for name, change in (
            ("off", {"enabled": False}),
            ("hard", {"soft": 0.0}),
            ("soft", {"soft": 1.0}),
            ("default mix", {}),
        ):
            if name == "off" and size != 512:
                continue
            shadows = {**base.shadows, "map_size": size, **change}
            out[f"{name}, map {size}"] = dataclasses.replace(base, shadows=shadows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = SynthConfig.load(PACKAGE_CONFIGS / "data" / "synthetic.yaml")
    print(f"{'shadows':<22} {'ms/image':>9} {'CPU ms/image':>13}")
    for name, config in variants(base).items():
        maker = SampleMaker(config)
        samples = [maker.make(0, "train", i) for i in range(args.samples)]
        maker.render_sample(samples[0])  # shader compilation out of the timing
        cpu, start = time.process_time(), time.perf_counter()
        for sample in samples:
            maker.render_sample(sample)
        wall = (time.perf_counter() - start) / len(samples)
        cpu = (time.process_time() - cpu) / len(samples)
        maker.close()
        print(f"{name:<22} {1000 * wall:>9.2f} {1000 * cpu:>13.2f}")


if __name__ == "__main__":
    main()
