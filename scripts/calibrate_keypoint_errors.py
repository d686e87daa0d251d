"""How MediaPipe's landmarks err on handshape's rendered hands: what the keypoint network's
simulated errors (config data.keypoints.errors) were sized from.

    .venv/bin/python scripts/calibrate_keypoint_errors.py --data data/synthetic-quick/val

On each rendered validation sample (its true 2D joints known) the hand finder reads the hand
(its box given where detection misses it), and the landmarks' errors are measured in the
hand's upright keypoint square, in units of the side of the true joints' box: the median error
per joint and its robust spread (1.4826 x MAD) over the hands read well (error < 0.12), the
share of gross errors (> 0.25) per joint, and how MediaPipe's relative depth z follows the true
weak-perspective one ((Z - Z_wrist) f / Z_wrist): gain and correlation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from handshape.data.keypoint_errors import weak_perspective_depth
from handshape.data.keypoint_inputs import keypoint_square
from handshape.data.synth.reader import SyntheticDataset
from handshape.inference.hands import HandFinder, box_iou

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "synthetic-quick" / "val")
    parser.add_argument("--samples", type=int, default=512)
    args = parser.parse_args()
    samples = SyntheticDataset(args.data, train=False)
    finder = HandFinder.load()
    detected, rel, errors, depths = 0, [], [], []
    for index in range(min(args.samples, len(samples))):
        item = samples[index]
        image = (item["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        truth = item["joints_2d"].numpy().astype(np.float64)
        box = np.concatenate([truth.min(0), truth.max(0)])
        side = float((box[2:] - box[:2]).max())
        hands = finder.find(image)
        best = max(hands, key=lambda h: box_iou(h.box, box), default=None)
        if best is not None and box_iou(best.box, box) >= 0.3:
            detected += 1
        else:
            hands = finder.find(image, boxes=[box])
            if not hands:
                continue
            best = hands[0]
        A, square = keypoint_square(torch.from_numpy(truth[None]).float(), 1)
        turn = (A[0, :2, :2] * square[0]).numpy()  # the upright square's axes
        rel.append((best.landmarks[:, :2] - truth) @ turn.T / side)
        errors.append(float(np.linalg.norm(best.landmarks[:, :2] - truth, axis=1).mean() / side))
        true_z = weak_perspective_depth(item["joints_3d"][None].float(), item["K"][None].float())
        depths.append((true_z[0].numpy(), best.landmarks[:, 2], errors[-1] < 0.12))
    rel_a, err = np.array(rel), np.array(errors)
    good = rel_a[err < 0.12]
    median = np.median(good, axis=0)
    spread = 1.4826 * np.median(np.abs(good - median), axis=0)
    wp = np.concatenate([d[0] for d in depths if d[2]])
    mp = np.concatenate([d[1] for d in depths if d[2]])
    result = {
        "samples": len(err),
        "detected": detected,
        "mean_error": float(err.mean()),
        "median_error": float(np.median(err)),
        "p90_error": float(np.percentile(err, 90)),
        "median_offset_upright": median.round(3).tolist(),
        "robust_spread": spread.mean(1).round(3).tolist(),
        "gross_share": (np.linalg.norm(rel_a, axis=2) > 0.25).mean(0).round(3).tolist(),
        "depth_gain": float((wp * mp).sum() / (wp * wp).sum()),
        "depth_correlation": float(np.corrcoef(wp, mp)[0, 1]),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
