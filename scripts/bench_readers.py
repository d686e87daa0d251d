"""Speed of the real data readers: samples per second in one DataLoader worker, at 256 px.

    PYTHONPATH=src .venv/bin/python scripts/bench_readers.py [--num 48] [--size 256]

Builds each set's fixture (tests/data/real_formats.py) at the set's own image size in a
temporary folder (RHD 320 x 320 PNGs, STB 640 x 480 SK colour + depth PNGs with depth at every
pixel, FreiHAND 224 x 224 JPEGs), then times `Dataset[i]` in this one process with one torch
and one OpenCV thread (what each DataLoader worker does): with training augmentation (the
default photometric pipeline) and without. Prints markdown tables. Fixture images are
flat-coloured, so PNG decoding is faster than on real photographs: the second table times the
real files in shared/real_samples where present.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import numpy as np  # noqa: E402

from handshape.data.freihand import FreiHANDDataset  # noqa: E402
from handshape.data.real import RealDataset, read_image  # noqa: E402
from handshape.data.rhd import RHDDataset  # noqa: E402
from handshape.data.stb import STBDataset, register_depth  # noqa: E402
from real_formats import make_freihand, make_rhd, make_stb  # noqa: E402

SAMPLES = REPO.parent / "shared" / "real_samples"


def rate(dataset: RealDataset, rounds: int) -> float:
    """Samples per second over `rounds` passes (after one warm-up item)."""
    dataset[0]
    start = time.perf_counter()
    for _ in range(rounds):
        for i in range(len(dataset)):
            dataset[i]
    return rounds * len(dataset) / (time.perf_counter() - start)


def milliseconds(fn: object, repeat: int = 20) -> float:
    fn()  # type: ignore[operator]
    start = time.perf_counter()
    for _ in range(repeat):
        fn()  # type: ignore[operator]
    return (time.perf_counter() - start) / repeat * 1000


def components() -> list[tuple[str, float]]:
    """Costs the fixtures understate: decoding real photographs, registering a full depth map."""
    out = []
    if SAMPLES.is_dir():
        out.append(
            (
                "decode a real RHD colour PNG (320 px)",
                milliseconds(lambda: read_image(SAMPLES / "RHD" / "00111.png")),
            )
        )
        out.append(
            (
                "decode the real STB SK colour PNG (640x480)",
                milliseconds(lambda: read_image(SAMPLES / "STB" / "stb_SK_color_0.png")),
            )
        )
        out.append(
            (
                "decode a real FreiHAND JPEG (224 px)",
                milliseconds(lambda: read_image(SAMPLES / "FreiHAND" / "00000355.jpg")),
            )
        )
    depth = np.random.default_rng(0).uniform(0.3, 1.0, (480, 640)).astype(np.float32)
    out.append(
        (
            "register a fully valid 640x480 STB depth map",
            milliseconds(lambda: register_depth(depth, (480, 640)), 5),
        )
    )
    region = (195.0, 115.0, 445.0, 365.0)  # 2.5x a hand 100 px across
    out.append(
        (
            "the same, only where a 250 px region can look",
            milliseconds(lambda: register_depth(depth, (480, 640), region), 5),
        )
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=48, help="samples per set")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_rhd(root / "rhd", "training", args.num)
        half = args.num // 2
        make_stb(root / "stb", {"B1Counting": half, "B1Random": args.num - half}, wall=True)
        make_freihand(root / "frei", max(2, args.num // 4))
        sets = {
            "RHD (320 px PNG + mask + depth)": lambda train: RHDDataset(
                root / "rhd", "training", size=args.size, train=train
            ),
            "RHD without depth (training, scoring)": lambda train: RHDDataset(
                root / "rhd", "training", depth=False, size=args.size, train=train
            ),
            "STB SK (640x480 PNG + depth registration)": lambda train: STBDataset(
                root / "stb", "test", size=args.size, train=train
            ),
            "STB SK without depth (training, scoring)": lambda train: STBDataset(
                root / "stb", "test", depth=False, size=args.size, train=train
            ),
            "FreiHAND (224 px JPEG + mask)": lambda train: FreiHANDDataset(
                root / "frei", "train", size=args.size, train=train
            ),
        }
        for name, make in sets.items():
            augmented = rate(make(True), args.rounds)
            plain = rate(make(False), args.rounds)
            rows.append((name, augmented, plain))
    print(f"Readers at {args.size} px, one process, 1 thread ({platform.processor() or 'cpu'}):")
    print()
    print("| set | with augmentation (samples/s) | without (samples/s) |")
    print("|---|---|---|")
    for name, augmented, plain in rows:
        print(f"| {name} | {augmented:.0f} | {plain:.0f} |")
    print()
    print("| component | ms |")
    print("|---|---|")
    for name, ms in components():
        print(f"| {name} | {ms:.1f} |")


if __name__ == "__main__":
    main()
