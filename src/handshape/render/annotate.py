"""Drawing 2D joints and skeletons on images, for figures and contact sheets."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from handshape.joints import JOINT_PARENTS

# One colour per finger (thumb..little), the wrist in white.
FINGER_COLORS: tuple[tuple[int, int, int], ...] = (
    (230, 60, 60),
    (240, 170, 30),
    (60, 190, 80),
    (50, 140, 230),
    (170, 80, 220),
)


def joint_color(joint: int) -> tuple[int, int, int]:
    return (255, 255, 255) if joint == 0 else FINGER_COLORS[(joint - 1) // 4]


def draw_skeleton(
    image: np.ndarray,
    joints_2d: np.ndarray,
    visibility: np.ndarray | None = None,
    radius: float = 2.0,
    width: int = 2,
) -> np.ndarray:
    """Image (H, W, 3) uint8 with the 21-joint skeleton drawn on a copy.

    joints_2d: (21, 2) pixel coordinates (pixel centres at integers); visibility: (21,) bool,
    hidden joints are drawn hollow.
    """
    canvas = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    draw = ImageDraw.Draw(canvas)
    # PIL truncates float coordinates; round so each joint lands on its nearest pixel.
    points = [tuple(float(round(float(c))) for c in p) for p in np.asarray(joints_2d)]
    for j, parent in enumerate(JOINT_PARENTS):
        if parent >= 0:
            draw.line([points[parent], points[j]], fill=joint_color(j), width=width)
    for j, (u, v) in enumerate(points):
        box = (u - radius, v - radius, u + radius, v + radius)
        visible = True if visibility is None else bool(visibility[j])
        draw.ellipse(box, fill=joint_color(j) if visible else None, outline=joint_color(j))
    return np.asarray(canvas)


def draw_mesh_overlay(
    image: np.ndarray,
    vertices_px: np.ndarray | None,
    faces: np.ndarray,
    joints_px: np.ndarray | None,
) -> np.ndarray:
    """Image (H, W, 3) uint8 with a mesh wireframe (translucent) and the skeleton drawn on it.

    vertices_px: (N, 2) pixel coordinates, or None for the skeleton alone (a pose-only
    network); joints_px: (21, 2) pixel coordinates, or None for the mesh alone; faces: (F, 3).
    """
    merged = np.ascontiguousarray(image, dtype=np.uint8)
    if vertices_px is not None:
        canvas = Image.fromarray(merged).convert("RGBA")
        layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        pairs = np.asarray(faces)[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
        for a, b in np.unique(np.sort(pairs, 1), axis=0):
            draw.line([tuple(vertices_px[a]), tuple(vertices_px[b])], fill=(80, 200, 255, 90))
        merged = np.asarray(Image.alpha_composite(canvas, layer).convert("RGB"))
    if joints_px is None:
        return merged
    width = max(1, round(max(image.shape[:2]) / 200))
    return draw_skeleton(merged, joints_px, radius=1.5 * width, width=width)
