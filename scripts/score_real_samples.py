"""Score an inference bundle on the real photographs of shared/real_samples by their 2D joints.

    .venv/bin/python scripts/score_real_samples.py outputs/pretrain/bundle \\
        --real ../shared/real_samples --layout data/synthetic-quick/train

Reads the annotations as published (mmpose's COCO-style conversions, see each SOURCE.txt):
RHD/test_rhd.json (21 x [u, v, vis] in RHD's order: wrist, then each finger tip to base;
`hand_type` left or right) and FreiHAND/test_freihand.json (63 numbers u, v, 1 in the project
order; right hands). Each hand is cropped as handshape predict crops it: the square around the
box of its annotated joints, `--margin` times its longer side; left hands are mirrored first.

Per data set and overall: the mean 2D joint error as a fraction of the crop side and the PCK at
0.1 and 0.2 of it, for the network and for a constant: the mean hand layout of a synthetic split
(`--layout`, default the data the bundle was trained on) in the same boxes, i.e. what a network
that ignores the image at best reaches.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from handshape.data.synth.reader import SyntheticShards
from handshape.evaluate import load_network
from handshape.geometry.camera import uv_to_pixels
from handshape.predict import Crop

LOG = logging.getLogger("score_real_samples")
THRESHOLDS = (0.1, 0.2)
# RHD lists each finger tip first; the project order goes base to tip.
RHD_TO_PROJECT = np.array([0, *(1 + 4 * f + (3 - s) for f in range(5) for s in range(4))])


@dataclass(frozen=True)
class Photo:
    """One annotated hand: the image file, joints (21, 2) px in the project order, left or not."""

    dataset: str
    path: Path
    joints: np.ndarray
    left: bool


def _annotations(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        images = {int(im["id"]): im["file_name"] for im in data["images"]}
        data["_files"] = images
        return data
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a COCO-style annotation file ({err})") from err


def read_rhd(folder: Path) -> list[Photo]:
    data = _annotations(folder / "test_rhd.json")
    photos = []
    for ann in data["annotations"]:
        points = np.asarray(ann["keypoints"], dtype=np.float64).reshape(21, -1)[:, :2]
        hand = ann.get("hand_type", "right")
        if hand not in ("left", "right"):
            raise ValueError(f"{folder / 'test_rhd.json'}: hand_type {hand!r} is not left/right")
        path = folder / data["_files"][int(ann["image_id"])]
        photos.append(Photo("RHD", path, points[RHD_TO_PROJECT], hand == "left"))
    return photos


def read_freihand(folder: Path) -> list[Photo]:
    data = _annotations(folder / "test_freihand.json")
    photos = []
    for ann in data["annotations"]:
        points = np.asarray(ann["keypoints"], dtype=np.float64).reshape(21, -1)[:, :2]
        photos.append(
            Photo("FreiHAND", folder / data["_files"][int(ann["image_id"])], points, False)
        )
    return photos


def read_photos(root: Path) -> list[Photo]:
    """Every annotated hand under root (RHD/ and FreiHAND/ folders, whichever exist)."""
    photos: list[Photo] = []
    if (root / "RHD" / "test_rhd.json").exists():
        photos += read_rhd(root / "RHD")
    if (root / "FreiHAND" / "test_freihand.json").exists():
        photos += read_freihand(root / "FreiHAND")
    if not photos:
        raise FileNotFoundError(
            f"{root}: no RHD/test_rhd.json or FreiHAND/test_freihand.json to score on"
        )
    return photos


def load_image(photo: Photo) -> tuple[Image.Image, np.ndarray]:
    """The photograph as a right hand: (image, joints (21, 2) px), mirrored when left."""
    try:
        with Image.open(photo.path) as img:
            image = img.convert("RGB")
    except (OSError, ValueError) as err:
        raise ValueError(f"{photo.path}: not a readable image ({err})") from err
    joints = photo.joints.copy()
    if photo.left:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        joints[:, 0] = image.width - 1 - joints[:, 0]
    return image, joints


def box_of(joints: np.ndarray, width: int, height: int, margin: float) -> Crop:
    """The crop around the box of (21, 2) joints."""
    lo, hi = joints.min(axis=0), joints.max(axis=0)
    return Crop.around((lo[0], lo[1], hi[0] + 1e-6, hi[1] + 1e-6), width, height, margin)


def in_box(joints: np.ndarray, crop: Crop) -> np.ndarray:
    """Image pixels (21, 2) -> box coordinates in [0, 1] (top-left corner of the crop at 0)."""
    return (joints - np.array([crop.x0, crop.y0])) / crop.side


def mean_layout(split: Path, margin: float) -> np.ndarray:
    """(21, 2) mean box coordinates of the joints of a synthetic split, boxed like photographs."""
    shards = SyntheticShards(split)
    size = int(shards.manifest["config"]["size"])
    layouts = []
    for i in range(len(shards)):
        joints = shards.get(i)["joints_2d"].astype(np.float64)
        layouts.append(in_box(joints, box_of(joints, size, size, margin)))
    return np.mean(layouts, axis=0)


@torch.no_grad()
def predict_in_box(net: Any, image: Image.Image, crop: Crop) -> np.ndarray:
    """The network's 2D joints (21, 2) in image pixels for one crop."""
    size = net.input_size
    window = image.crop(
        (round(crop.x0), round(crop.y0), round(crop.x0 + crop.side), round(crop.y0 + crop.side))
    ).resize((size, size), Image.Resampling.BILINEAR)
    tensor = torch.from_numpy(np.array(window)).permute(2, 0, 1).float().div(255)[None]
    result = net(tensor)
    return crop.to_image(uv_to_pixels(result.joints[0, :, :2], size).numpy(), size)


def scores(errors: np.ndarray) -> dict[str, float]:
    """Per-joint errors (as fractions of the box side) -> mean error and PCK per threshold."""
    out = {"images": int(errors.shape[0]), "mean_error": float(errors.mean())}
    for t in THRESHOLDS:
        out[f"pck@{t}"] = float(np.mean(errors <= t))
    return out


def score(
    bundle: Path, root: Path, layout_split: Path | None, margin: float = 1.3
) -> dict[str, dict[str, dict[str, float]]]:
    """{row: {data set or 'all': scores}} for the rows 'network' and 'constant'."""
    net, cfg = load_network(bundle)
    net.eval()
    if layout_split is None:
        layout_split = Path(cfg["data"]["root"]) / "train"
    layout = mean_layout(layout_split, margin)
    photos = read_photos(root)
    errors: dict[str, dict[str, list[np.ndarray]]] = {"network": {}, "constant": {}}
    for photo in photos:
        image, truth = load_image(photo)
        crop = box_of(truth, image.width, image.height, margin)
        predicted = predict_in_box(net, image, crop)
        constant = layout * crop.side + np.array([crop.x0, crop.y0])
        for row, guess in (("network", predicted), ("constant", constant)):
            error = np.linalg.norm(guess - truth, axis=1) / crop.side
            for key in (photo.dataset, "all"):
                errors[row].setdefault(key, []).append(error)
        LOG.info("%s %s: scored", photo.dataset, photo.path.name)
    return {
        row: {key: scores(np.stack(values)) for key, values in by_set.items()}
        for row, by_set in errors.items()
    }


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = [
        "| rows | data | images | mean 2D error (x box side) | PCK@0.1 | PCK@0.2 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row, by_set in results.items():
        for key, s in by_set.items():
            lines.append(
                f"| {row} | {key} | {s['images']} | {s['mean_error']:.3f} | "
                f"{s['pck@0.1']:.3f} | {s['pck@0.2']:.3f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="an inference bundle folder (or .ckpt)")
    parser.add_argument(
        "--real",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared" / "real_samples",
        help="the real samples folder (default: shared/real_samples beside the repository)",
    )
    parser.add_argument(
        "--layout",
        type=Path,
        default=None,
        help="synthetic split for the constant layout (default: the bundle's training data)",
    )
    parser.add_argument("--margin", type=float, default=1.3, help="crop side / box side")
    parser.add_argument("--json", type=Path, default=None, help="also write the scores here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.margin < 1:
        parser.error(f"--margin {args.margin}: must be at least 1 (the crop holds the box)")
    results = score(args.bundle, args.real, args.layout, args.margin)
    print(table(results))
    if args.json is not None:
        from handshape.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
