"""Qualitative figures in the style of the paper's Fig. 7 and Fig. 10.

For each validation image and each checkpoint (head): the input with the predicted mesh and
joints drawn on it, then the predicted mesh rendered from two other viewpoints; a last block
shows the ground truth the same way. notebooks/qualitative.ipynb calls `qualitative_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import default_collate

from handshape.data.synth.reader import SyntheticDataset
from handshape.evaluation.evaluate import predict_batch
from handshape.handmodel.model import HandModel
from handshape.nets.bundle import load_network
from handshape.render.contact_sheet import contact_sheet, render_views
from handshape.render.offscreen import MeshRenderer
from handshape.render.overlays import overlay_row

__all__ = ["OTHER_VIEWS", "qualitative_figure"]

# (azimuth, elevation) in degrees around the mesh: from the side and from above.
OTHER_VIEWS: tuple[tuple[float, float], ...] = ((90.0, 0.0), (0.0, 60.0))


def qualitative_figure(
    checkpoints: Mapping[str, Path], data: Path, out: Path, count: int = 3, size: int = 160
) -> Path:
    """Write the figure to ``out`` (PNG) and return its path.

    Args:
        checkpoints: label -> bundle folder or .ckpt (e.g. {"Graph CNN": ..., "MANO": ...}).
        data: a synthetic split folder (e.g. data/synthetic-quick/val).
        out: the PNG to write.
        count: validation images (rows of tiles).
        size: side of every tile in pixels.
    """
    if not checkpoints:
        raise ValueError("give at least one checkpoint")
    dataset = SyntheticDataset(Path(data), train=False)
    batch = default_collate([dataset[i] for i in range(min(count, len(dataset)))])
    tiles: list[tuple[str, list[np.ndarray]]] = []
    faces = None
    gt = None
    with MeshRenderer(size, size) as renderer:
        for label, checkpoint in checkpoints.items():
            net, cfg = load_network(Path(checkpoint))
            faces = HandModel.load(cfg["handmodel"]["mano"]).data.faces
            gt, pred = predict_batch(net, cfg, batch)
            if pred.vertices is None:
                raise ValueError(f"{checkpoint}: a pose-only network ({label}) has no mesh to draw")
            tiles += _sample_tiles(label, gt, pred.vertices, pred.joints, faces, renderer, size)
        assert gt is not None and faces is not None
        tiles += _sample_tiles(
            "ground truth", gt, gt["vertices"], gt["joints_3d"], faces, renderer, size
        )
    return contact_sheet(tiles, out, columns=len(batch["image"]))


def _sample_tiles(
    label: str,
    gt: dict[str, torch.Tensor],
    vertices: torch.Tensor,
    joints: torch.Tensor,
    faces: np.ndarray,
    renderer: MeshRenderer,
    size: int,
) -> list[tuple[str, list[np.ndarray]]]:
    """One tile per sample: the overlay, then the mesh from the other viewpoints."""
    count = len(vertices)
    overlays = overlay_row(gt, vertices, joints, faces, count)
    side = overlays.shape[0]
    tiles = []
    for i in range(count):
        overlay = overlays[:, i * side : (i + 1) * side]
        overlay = np.asarray(Image.fromarray(overlay).resize((size, size)))
        mesh = vertices[i].detach().double().numpy()
        # Far enough for any prediction, however wrong its size: the views frame the mesh.
        radius = float(np.linalg.norm(mesh - mesh.mean(0), axis=1).max())
        views = render_views(renderer, mesh, faces, OTHER_VIEWS, distance=3 * max(radius, 0.05))
        tiles.append((f"{label} #{i}", [overlay, *views]))
    return tiles
