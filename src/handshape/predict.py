"""Inference on photographs: a crop around the hand -> mesh, joints and an overlay.

The network predicts uv in the crop and scale-normalised relative depth. Placing the hand in
metric camera space needs what the paper assumes given at test time: the camera's focal length,
the root joint's depth and the hand scale. Defaults: a focal length equal to the image's longer
side (about 53 degrees field of view), 0.5 m root depth and the hand model's own scale; every
output records the values used.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import trimesh
from PIL import Image

from handshape.atomic import atomic_write, atomic_write_text
from handshape.geometry.camera import uv_to_pixels
from handshape.handmodel.model import HandModel
from handshape.nets.network import HandNet
from handshape.render.annotate import draw_mesh_overlay

if TYPE_CHECKING:
    from handshape.export import OnnxHandNet


@dataclass(frozen=True)
class Crop:
    """A square window of the photograph: top-left corner and side, in image pixels."""

    x0: int
    y0: int
    side: int

    @classmethod
    def around(
        cls,
        box: tuple[float, float, float, float] | None,
        width: int,
        height: int,
        margin: float = 1.3,
    ) -> Crop:
        """The square centred on `box` (x0, y0, x1, y1), `margin` times its longer side; the
        whole image's centred square when no box is given."""
        if box is None:
            side = min(width, height)
            return cls((width - side) // 2, (height - side) // 2, side)
        x0, y0, x1, y1 = box
        if not all(math.isfinite(v) for v in box):
            raise ValueError(f"hand box {box}: coordinates must be finite numbers")
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"hand box {box}: need x0 < x1 and y0 < y1")
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            raise ValueError(
                f"hand box {box} lies wholly outside the {width}x{height} image (pixels: x to "
                "the right, y down, from the top-left corner)"
            )
        side = round(margin * max(x1 - x0, y1 - y0))
        # Whole pixels: the window cut from the image is exactly the one K and to_image assume.
        return cls(round((x0 + x1 - side) / 2), round((y0 + y1 - side) / 2), side)

    def to_image(self, crop_px: np.ndarray, size: int) -> np.ndarray:
        """Crop pixel coordinates (..., 2) at network resolution -> image pixels."""
        s = self.side / size
        return (crop_px + 0.5) * s - 0.5 + np.array([self.x0, self.y0])


def _read_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from err


@torch.inference_mode()
def predict_image(
    net: HandNet | OnnxHandNet,
    cfg: dict[str, Any],
    image_path: Path,
    out: Path,
    box: tuple[float, float, float, float] | None = None,
    focal: float | None = None,
    root_depth: float = 0.5,
    hand_scale: float | None = None,
    mesh_format: str = "ply",
) -> dict[str, Path]:
    """Predict one photograph; writes NAME.{ply|obj} (not for a pose-only network),
    NAME_joints.json and NAME_overlay.png; returns their paths by kind."""
    image = _read_image(image_path)
    width, height = image.size
    try:
        crop = Crop.around(box, width, height)
    except ValueError as err:
        raise ValueError(f"{image_path}: {err}") from err
    size = net.input_size
    window = image.crop(
        (crop.x0, crop.y0, crop.x0 + crop.side, crop.y0 + crop.side)
    ).resize((size, size), Image.BILINEAR)
    tensor = torch.from_numpy(np.array(window)).permute(2, 0, 1).float().div(255)[None]
    result = net(tensor)

    model = HandModel.load(cfg["handmodel"]["mano"])
    scale = hand_scale or model.rest_scale
    focal = focal or float(max(width, height))
    # Intrinsics of the network's crop, derived from the photograph's camera.
    s = size / crop.side
    K = torch.tensor(
        [
            [focal * s, 0, (width / 2 - crop.x0 + 0.5) * s - 0.5],
            [0, focal * s, (height / 2 - crop.y0 + 0.5) * s - 0.5],
            [0, 0, 1.0],
        ]
    )[None]
    lifted = net.lift(result, K, torch.tensor([root_depth]), torch.tensor([scale]))
    joints = lifted.joints[0].numpy()
    joints_img = crop.to_image(uv_to_pixels(result.joints[0, :, :2], size).numpy(), size)
    stem = image_path.stem
    paths = {"joints": out / f"{stem}_joints.json", "overlay": out / f"{stem}_overlay.png"}
    verts_img = None
    if result.vertices is not None:
        verts_img = crop.to_image(uv_to_pixels(result.vertices[0, :, :2], size).numpy(), size)
        assert lifted.vertices is not None
        mesh = trimesh.Trimesh(lifted.vertices[0].numpy(), model.data.faces, process=False)
        paths["mesh"] = out / f"{stem}.{mesh_format}"
        atomic_write(paths["mesh"], lambda tmp: mesh.export(tmp, file_type=mesh_format))
    record = {
        "image": str(image_path),
        "crop_xy_side": [crop.x0, crop.y0, crop.side],
        "assumed": {"focal_px": focal, "root_depth_m": root_depth, "hand_scale_m": scale},
        "joints_2d_px": joints_img.tolist(),
        "joints_3d_m": joints.tolist(),
        "joints_uvd": result.joints[0].tolist(),
    }
    atomic_write_text(paths["joints"], json.dumps(record, indent=1))
    overlay = draw_mesh_overlay(np.asarray(image), verts_img, model.data.faces, joints_img)
    atomic_write(paths["overlay"], lambda tmp: Image.fromarray(overlay).save(tmp, format="PNG"))
    return paths
