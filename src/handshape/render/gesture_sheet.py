"""The hand model's contact sheet: every gesture of the library from two viewpoints."""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from handshape.handmodel.model import HandModel
from handshape.handmodel.poses import GestureLibrary
from handshape.render.contact_sheet import contact_sheet, render_views
from handshape.render.offscreen import MeshRenderer

# (azimuth, elevation) in degrees: the back of the hand from above, and the palm from the thumb's
# side, so that flexion and the thumb read clearly.
VIEWS: tuple[tuple[float, float], ...] = ((15.0, 20.0), (-120.0, -15.0))


def gesture_sheet(
    out: Path,
    model: HandModel | None = None,
    library: GestureLibrary | None = None,
    size: int = 200,
    columns: int = 6,
) -> Path:
    """Render every gesture with `model` (default: handshape's own) and write one PNG."""
    model = model or HandModel.default()
    library = library or GestureLibrary.load()
    faces = model.faces.numpy()
    poses = torch.stack([model.gesture(name, library) for name in library.names])
    with torch.no_grad():
        vertices = model(pose=poses).vertices.double().numpy()
    tiles = []
    with MeshRenderer(size, size) as renderer:
        for name, verts in tqdm(
            list(zip(library.names, vertices, strict=True)), desc="gestures", unit="gesture"
        ):
            # Turn the hand so the fingers point up in the image (+y is up for the camera).
            images = render_views(renderer, verts, faces, VIEWS, distance=0.5)
            tiles.append((name.replace("_", " "), images))
    title = f"handshape hand model: {len(tiles)} gestures, {model.num_vertices} vertices"
    return contact_sheet(tiles, Path(out), columns=columns, title=title)


__all__ = ["VIEWS", "gesture_sheet"]
