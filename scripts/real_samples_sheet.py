"""Contact sheet of the real samples' ground truth drawn on the readers' crops (to look at).

    PYTHONPATH=src .venv/bin/python scripts/real_samples_sheet.py --out /tmp/real_samples.png

Reads shared/real_samples (beside the repository): the RHD photographs rebuilt into the RHD
layout in a temporary folder (tests/data/real_formats.py) and read by RHDDataset; FreiHAND's 8
training images with mmpose's keypoints, cropped from those keypoints; STB's one SK colour frame
with Ge et al.'s first B1Counting and B1Random boxes (its sequence is unknown, so the boxes may
not fit it), mirrored as the reader does. Never commit the output: it shows the photographs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from handshape.data import crop as cropping  # noqa: E402
from handshape.data.real import read_image  # noqa: E402
from handshape.data.rhd import RHDDataset  # noqa: E402
from handshape.data.stb import load_boxes  # noqa: E402
from handshape.render.annotate import draw_skeleton  # noqa: E402
from handshape.render.contact_sheet import contact_sheet  # noqa: E402
from real_formats import rebuild_rhd_from_json  # noqa: E402

log = logging.getLogger("real_samples_sheet")


def rhd_tiles(samples: Path, size: int) -> list[tuple[str, list[np.ndarray]]]:
    tiles = []
    with tempfile.TemporaryDirectory() as tmp:
        kinds = rebuild_rhd_from_json(samples / "RHD", Path(tmp), "training")
        dataset = RHDDataset(Path(tmp), "training", size=size)
        for i in range(len(dataset)):
            item = dataset[i]
            image = (item["image"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            drawn = draw_skeleton(image, item["joints_2d"].numpy(), item["visibility"].numpy())
            key = int(item["sample_id"])
            tiles.append(
                (f"RHD {key} ({kinds[key]}{', mirrored' if item['mirrored'] else ''})", [drawn])
            )
    return tiles


def freihand_tiles(samples: Path, size: int) -> list[tuple[str, list[np.ndarray]]]:
    coco = json.loads((samples / "FreiHAND" / "test_freihand.json").read_text())
    keypoints = {a["image_id"]: np.reshape(a["keypoints"], (21, 3)) for a in coco["annotations"]}
    tiles = []
    for image_id in sorted(keypoints, key=lambda i: (i % 32560, i)):
        image = read_image(samples / "FreiHAND" / f"{image_id:08d}.jpg")
        uv = keypoints[image_id][:, :2]
        A = cropping.crop_transform(cropping.box_from_joints(uv, 1.5), size)
        crop = cropping.crop_image(image, A, size)
        drawn = draw_skeleton(crop, cropping.transform_points(A, uv))
        idx, version = image_id % 32560, image_id // 32560
        tiles.append((f"FreiHAND {idx} v{version}", [drawn]))
    return tiles


def stb_tiles(samples: Path, size: int) -> list[tuple[str, list[np.ndarray]]]:
    image = read_image(samples / "STB" / "stb_SK_color_0.png")
    boxes = load_boxes(samples / "STB" / "STB_eval_bboxes.mat", 3000)
    tiles = [("STB SK_color_0 (whole)", [cropping.crop_image(image, np.diag([0.4, 0.4, 1]), size)])]
    width = image.shape[1]
    mirrored = cropping.mirror_image(image)
    for row, name in ((0, "B1Counting/0"), (1500, "B1Random/0")):
        x, y, w, h = boxes[row]
        box = cropping.box_from_xywh(np.array([width - x - w, y, w, h]))
        A = cropping.crop_transform(box, size)
        tiles.append((f"STB box {name}, mirrored", [cropping.crop_image(mirrored, A, size)]))
    return tiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, default=REPO.parent / "shared" / "real_samples")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    tiles = (
        rhd_tiles(args.samples, args.size)
        + freihand_tiles(args.samples, args.size)
        + stb_tiles(args.samples, args.size)
    )
    contact_sheet(tiles, args.out, columns=4, title="real samples: ground truth on the crops")
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
