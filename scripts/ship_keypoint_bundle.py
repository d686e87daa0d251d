"""Put a trained keypoint network into the package, where `handshape predict` finds it.

    .venv/bin/python scripts/ship_keypoint_bundle.py outputs/lift/bundle

Writes src/handshape/inference/assets/keypoints/: model.safetensors with the weights stored in
float16 (half the bytes; loaded back into the float32 network, its answers move by about 1e-3
of the hand scale), config.yaml as trained, and SOURCE.md saying what made it and how it
scored (from the run's eval/metrics.json beside the bundle).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "src" / "handshape" / "inference" / "assets" / "keypoints"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="a keypoint network's bundle folder")
    args = parser.parse_args()
    weights = load_file(str(args.bundle / "model.safetensors"))
    half = {
        k: v.half() if v.is_floating_point() else v for k, v in weights.items()
    }  # integer buffers (batch-norm counters) stay as they are
    TARGET.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in half.items()}, str(TARGET / "model.safetensors"))
    shutil.copy(args.bundle / "config.yaml", TARGET / "config.yaml")
    metrics_path = args.bundle.parent / "eval" / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        cwd=REPO,
    ).stdout.strip()
    if commit and dirty:
        commit += " with the changes of the commit that ships this file"
    params = sum(v.numel() for v in weights.values() if v.is_floating_point())
    lines = [
        "# The keypoint network handshape ships",
        "",
        f"Made by `make pretrain-lift` (`handshape pretrain --experiment lift`) at commit "
        f"{commit or 'unknown'}, then `python scripts/ship_keypoint_bundle.py "
        f"{args.bundle}`: {params / 1e6:.2f} M parameters, stored in float16.",
    ]
    if metrics:
        lines += [
            "",
            f"On the quick preset's synthetic validation split ({metrics['samples']} hands, "
            "true keypoints with simulated landmark errors, lifted with the true root depth "
            f"and scale): mesh error {metrics['mesh_error_mm']:.1f} mm, pose error "
            f"{metrics['pose_error_mm']:.1f} mm.",
        ]
    (TARGET / "SOURCE.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {TARGET} ({(TARGET / 'model.safetensors').stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
