"""The rendered hand photograph the inference tests use (tests/fixtures/hand_photo.{png,json}).

    .venv/bin/python scripts/make_test_hand.py --data data/synthetic-quick/val

handshape's own render, not a photograph of anyone: a validation sample of the synthetic set
(`make pretrain` makes data/synthetic-quick) composited on its built-in background, placed off
centre in a wider picture so that it is a hand in a scene, chosen as the first sample in which
the hand finder sees its hand clearly (presence > 0.95, 2D error of the landmarks < 0.08 of the
hand's box). The JSON holds its true joints (21 x 2 pixels, 21 x 3 metres), the camera (K) and
which sample it is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from handshape.data.synth.reader import SyntheticDataset
from handshape.inference.hands import HandFinder

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, X0, Y0 = 400, 300, 110, 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "synthetic-quick" / "val")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures")
    args = parser.parse_args()
    samples = SyntheticDataset(args.data, train=False)
    finder = HandFinder.load()
    for index in range(len(samples)):
        item = samples[index]
        crop = (item["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        size = crop.shape[0]
        scene = np.full((HEIGHT, WIDTH, 3), 0, np.uint8)
        scene[:] = crop[:, :8].reshape(-1, 3).mean(0).astype(np.uint8)  # the background's tone
        scene[Y0 : Y0 + size, X0 : X0 + size] = crop
        truth = item["joints_2d"].numpy().astype(np.float64) + np.array([X0, Y0])
        K = item["K"].numpy().astype(np.float64).copy()
        K[0, 2] += X0
        K[1, 2] += Y0
        hands = finder.find(scene)
        if len(hands) != 1 or hands[0].presence < 0.95 or hands[0].handedness != "right":
            continue
        box = np.concatenate([truth.min(0), truth.max(0)])
        error = np.linalg.norm(hands[0].landmarks[:, :2] - truth, axis=1).mean()
        if error / (box[2:] - box[:2]).max() >= 0.08:
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        Image.fromarray(scene).save(args.out / "hand_photo.png", optimize=True)
        record = {
            "source": f"{args.data} sample {index} (handshape's synthetic render)",
            "handedness": "right",
            "joints_2d_px": truth.round(3).tolist(),
            "joints_3d_m": item["joints_3d"].numpy().astype(float).round(6).tolist(),
            "K": K.round(4).tolist(),
        }
        (args.out / "hand_photo.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"sample {index}: landmark error {error:.1f} px -> {args.out / 'hand_photo.png'}")
        return
    raise SystemExit("no sample was found clearly enough")


if __name__ == "__main__":
    main()
