"""How long whole `handshape` commands take, start-up included (what a user waits for).

    .venv/bin/python scripts/bench_startup.py --out docs/benchmarks.md   (make bench)

Each command runs `--repeat` times as a fresh process; the table gives the median wall time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- bench:startup start -->", "<!-- bench:startup end -->"
HANDSHAPE = str(Path(sys.executable).parent / "handshape")
PHOTO = REPO / "tests" / "fixtures" / "hand_photo.png"


def timed(command: list[str], repeat: int) -> tuple[float, int]:
    times, code = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        code = subprocess.run(command, capture_output=True, check=False).returncode
        times.append(time.perf_counter() - start)
    return statistics.median(times), code


SYNTH = [HANDSHAPE, "synth", "--split", "train", "--workers", "1", "--out"]


def timed_fresh(command: list[str], repeat: int) -> tuple[float, int]:
    """`timed`, the output folder (the argument after --out) removed before each run."""
    import shutil

    folder = Path(command[command.index("--out") + 1])
    times, code = [], 0
    for _ in range(repeat):
        shutil.rmtree(folder, ignore_errors=True)
        seconds, code = timed(command, 1)
        times.append(seconds)
    return statistics.median(times), code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/benchmarks.md", help="file to update; - prints only")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "`handshape --help`": [HANDSHAPE, "--help"],
            "`handshape predict --box 1,2` (refused)": [
                HANDSHAPE,
                "predict",
                str(PHOTO),
                "--box",
                "1,2",
            ],
            "`handshape predict photo.png` (one hand)": [
                HANDSHAPE,
                "predict",
                str(PHOTO),
                "--out",
                tmp,
            ],
            "`handshape synth --num 1`": [*SYNTH, f"{tmp}/synth1", "--num", "1"],
            "`handshape synth --num 300 --workers 1`": [*SYNTH, f"{tmp}/synth300", "--num", "300"],
        }
        rows = []
        for name, command in commands.items():
            if "synth" in name:  # a fresh folder each time: a finished one would be skipped
                seconds, code = timed_fresh(command, args.repeat)
            else:
                seconds, code = timed(command, args.repeat)
            rate = f" ({300 / seconds:.0f} images/s)" if "300" in name else ""
            rows.append(f"| {name} | {seconds:.2f}{rate} | {code} |")
    section = "\n".join(
        [
            START,
            "## Whole commands, start-up included",
            "",
            f"`python scripts/bench_startup.py` ({time.strftime('%Y-%m-%d')}; median of "
            f"{args.repeat} fresh processes; the photograph is tests/fixtures/hand_photo.png).",
            "",
            "| command | seconds | exit status |",
            "|---|---:|---:|",
            *rows,
            END,
        ]
    )
    print(section)
    if args.out != "-":
        sys.path.insert(0, str(REPO / "scripts"))
        from bench_synth import update_section

        update_section(Path(args.out), section, START, END)


if __name__ == "__main__":
    main()
