"""The README's picture (docs/predict_example.png): `handshape predict` on a scene of two of
handshape's own rendered hands, a right one and its mirror image (a left one), with every
hand's mesh and joints drawn, and the meshes seen from above in the camera frame.

    .venv/bin/python scripts/readme_figure.py

(Not a real photograph: those of shared/real_samples may not be redistributed here; `make
predict-samples` draws them locally.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from handshape.inference.camera import Camera
from handshape.inference.hands import HandFinder
from handshape.inference.predict import default_bundle, load_mesher, overlay
from handshape.render.annotate import draw_mesh_overlay

REPO = Path(__file__).resolve().parents[1]


def top_view(meshes: list, size: int) -> np.ndarray:
    """The meshes seen from above (x right, z up the picture), orthographic, on white."""
    canvas = np.full((size, size, 3), 255, np.uint8)
    points = np.concatenate([m.vertices for m in meshes])
    centre, extent = points.mean(0), np.ptp(points, axis=0).max() * 1.2
    for mesh in meshes:
        xz = (mesh.vertices[:, [0, 2]] - centre[[0, 2]]) / extent * size + size / 2
        xz[:, 1] = size - xz[:, 1]
        joints = (mesh.joints_3d[:, [0, 2]] - centre[[0, 2]]) / extent * size + size / 2
        joints[:, 1] = size - joints[:, 1]
        canvas = draw_mesh_overlay(canvas, xz, mesh.faces, joints)
    return canvas


def main() -> None:
    photo = np.asarray(Image.open(REPO / "tests" / "fixtures" / "hand_photo.png").convert("RGB"))
    # The render's right 300 x 300 holds the hand; two of them side by side keep the hands
    # large enough for the detector's whole-picture look (192 px across the 600 px scene).
    square = photo[:300, -300:]
    scene = np.ascontiguousarray(np.concatenate([square, square[:, ::-1]], axis=1))
    finder = HandFinder.load()
    mesher = load_mesher("keypoints", default_bundle("keypoints"), None, 1.0)
    camera = Camera.of_image(scene.shape[1], scene.shape[0])
    meshes = mesher(scene, finder.find(scene), camera)
    drawn = overlay(scene, meshes, camera)
    side = top_view(meshes, scene.shape[0])
    figure = Image.fromarray(np.concatenate([drawn, side], axis=1))
    draw = ImageDraw.Draw(figure)
    for mesh in meshes:
        x0, y0, _, _ = mesh.hand.box
        draw.text((x0, max(0, y0 - 14)), mesh.hand.handedness, fill=(255, 255, 0))
    draw.text((scene.shape[1] + 6, 6), "seen from above", fill=(0, 0, 0))
    out = REPO / "docs" / "predict_example.png"
    figure.save(out, optimize=True)
    print(f"wrote {out}: {len(meshes)} hands")


if __name__ == "__main__":
    main()
