"""A contact sheet of `handshape predict` overlays (every *_overlay.png of a folder), to look at.

.venv/bin/python scripts/predict_sheet.py outputs/predict-samples --out sheet.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

HEIGHT = 240


def sheet(folder: Path, out: Path, columns: int = 5) -> Path:
    paths = sorted(folder.glob("*_overlay.png"))
    if not paths:
        raise SystemExit(f"{folder}: no *_overlay.png to put on a sheet")
    tiles = []
    for path in paths:
        with Image.open(path) as image:
            tile = image.convert("RGB")
        tile = tile.resize((round(tile.width * HEIGHT / tile.height), HEIGHT), Image.LANCZOS)
        ImageDraw.Draw(tile).text((4, 4), path.stem.removesuffix("_overlay"), fill=(255, 255, 0))
        tiles.append(tile)
    rows = [tiles[i : i + columns] for i in range(0, len(tiles), columns)]
    width = max(sum(t.width for t in row) for row in rows)
    canvas = Image.new("RGB", (width, HEIGHT * len(rows)), "white")
    for r, row in enumerate(rows):
        x = 0
        for tile in row:
            canvas.paste(tile, (x, r * HEIGHT))
            x += tile.width
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(f"wrote {sheet(args.folder, args.out)}")


if __name__ == "__main__":
    main()
