"""`handshape predict`: photographs, folders and videos -> every hand's mesh, joints and an
overlay, with nothing but torch, OpenCV, Pillow and the networks imported.

For an input NAME (in OUT):
- a photograph: NAME.json, a mesh per hand NAME_hand<k>.<ply|obj>, NAME_overlay.png with every
  hand drawn; NAME.json = {"image", "model", "hands": [{"handedness", "score", "box_xyxy",
  "joints_2d_px", "joints_3d_m", "landmarks_px", "mesh", "camera"}]} (joints in the project's
  order, 3D in the photograph's camera frame, `camera` the values used: focal length and its
  source, principal point, root depth, hand scale);
- a video: NAME_overlay.mp4 and NAME.jsonl, one line per frame {"frame", "time_s", "hands"}
  (each hand as above without a mesh file, with its track number), the landmarks smoothed by a
  One Euro filter unless `smooth` is off.

Every file is written under a temporary name and renamed; if an input fails half-way, what was
written for it is removed. No hand is not a failure: an empty `hands` list.
"""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from handshape.inference.camera import Camera
from handshape.inference.hands import Hand, HandFinder, HandTracker
from handshape.inference.media import VideoReader, VideoWriter, read_image
from handshape.inference.mesh_files import write_mesh
from handshape.inference.meshes import HandMesh, ImageMesher, KeypointMesher
from handshape.inference.smoothing import OneEuro
from handshape.render.annotate import draw_mesh_overlay
from handshape.safeio.atomic import atomic_write, atomic_write_text

MODELS = ("keypoints", "image")
# Measured on shared/real_samples (docs/benchmarks.md): the keypoint network is better.
DEFAULT_MODEL = "keypoints"
ASSETS = Path(__file__).resolve().parent / "assets"
# Where each model's bundle is looked for without --checkpoint, and what makes one.
DEFAULT_BUNDLES = {
    "keypoints": (
        ASSETS / "keypoints",
        "make pretrain-lift` (then --checkpoint outputs/lift/bundle",
    ),
    "image": (Path("outputs/pretrain/bundle"), "make pretrain"),
}

Mesher = Callable[[np.ndarray, list[Hand], Camera, "float | None"], list[HandMesh]]


def default_bundle(model: str) -> Path:
    """The bundle `predict --model MODEL` uses without --checkpoint; FileNotFoundError naming
    the command that makes it when it is missing."""
    path, command = DEFAULT_BUNDLES[model]
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"{path}: no {model} network bundle here; `{command}` makes one (or give --checkpoint)"
        )
    return path


def load_mesher(model: str, checkpoint: Path | None, hand_scale: float | None, refine: float):
    """The mesher of `model` from `checkpoint` (default: `default_bundle`)."""
    if model not in MODELS:
        raise ValueError(f"--model must be one of {', '.join(MODELS)}, got '{model}'")
    cls = KeypointMesher if model == "keypoints" else ImageMesher
    bundle = checkpoint if checkpoint is not None else default_bundle(model)
    try:
        mesher = cls.load(bundle, hand_scale, refine)
    except (ValueError, FileNotFoundError) as err:
        raise ValueError(f"--checkpoint: {err}") from err
    wants = "keypoints" if model == "keypoints" else "image"
    if mesher.cfg["model"].get("input", "image") != wants:
        raise ValueError(
            f"--checkpoint: {bundle} holds a network that reads "
            f"{mesher.cfg['model'].get('input', 'image')}, not {wants} (--model {model})"
        )
    return mesher


def hand_record(mesh: HandMesh, camera: Camera) -> dict[str, Any]:
    hand = mesh.hand
    return {
        "handedness": hand.handedness,
        "score": round(hand.presence, 4),
        "box_xyxy": [round(float(v), 2) for v in hand.box],
        "joints_2d_px": np.round(mesh.joints_2d, 2).tolist(),
        "joints_3d_m": np.round(mesh.joints_3d, 5).tolist(),
        "landmarks_px": np.round(hand.landmarks[:, :2], 2).tolist(),
        "camera": {
            **camera.record(),
            "root_depth_m": round(mesh.root_depth, 4),
            "hand_scale_m": round(mesh.hand_scale, 5),
        },
    }


def overlay(image: np.ndarray, meshes: list[HandMesh], camera: Camera) -> np.ndarray:
    """The image with every hand's mesh (wireframe) and joints drawn."""
    K = camera.K().double().numpy()
    for mesh in meshes:
        vertices_px = None
        if mesh.vertices is not None:
            homog = mesh.vertices @ K.T
            vertices_px = homog[:, :2] / homog[:, 2:3]
        image = draw_mesh_overlay(image, vertices_px, mesh.faces, mesh.joints_2d)
    return image


@dataclass
class Predictor:
    """Finds hands and meshes them; writes what `handshape predict` writes (module docstring).

    focal: pixels (None: EXIF, else the image's longer side); root_depth: metres (None:
    estimated from the hand's size); boxes: hand boxes for every image (None: detected)."""

    finder: HandFinder
    mesher: Mesher
    model: str
    mesh_format: str = "ply"
    focal: float | None = None
    root_depth: float | None = None
    boxes: list[np.ndarray] | None = None
    smooth: bool = True
    timings: dict[str, float] = field(default_factory=dict)

    def image(self, path: Path, out: Path) -> tuple[Path, int]:
        """One photograph -> (its JSON, the number of hands found)."""
        image, exif_focal = read_image(path)
        height, width = image.shape[:2]
        camera = Camera.of_image(width, height, self.focal, exif_focal)
        hands = self.finder.find(image, self.boxes)
        meshes = self.mesher(image, hands, camera, self.root_depth)
        written: list[Path] = []
        try:
            records = []
            for k, mesh in enumerate(meshes):
                record = hand_record(mesh, camera)
                if mesh.vertices is not None:
                    mesh_path = out / f"{path.stem}_hand{k}.{self.mesh_format}"
                    written.append(write_mesh(mesh_path, mesh.vertices, mesh.faces))
                    record["mesh"] = mesh_path.name
                records.append(record)
            drawn = Image.fromarray(overlay(image, meshes, camera))
            overlay_path = out / f"{path.stem}_overlay.png"
            written.append(atomic_write(overlay_path, lambda tmp: drawn.save(tmp, format="PNG")))
            result = {"image": str(path), "model": self.model, "hands": records}
            written.append(
                atomic_write_text(out / f"{path.stem}.json", json.dumps(result, indent=1))
            )
        except BaseException:
            for done in written:
                done.unlink(missing_ok=True)
            raise
        # Meshes of a run that found more hands; not another input's (`a_hand.png`'s meshes).
        own_mesh = re.compile(rf"{re.escape(path.stem)}_hand\d+\.(ply|obj)")
        for stale in out.glob(f"{glob.escape(path.stem)}_hand*"):
            if own_mesh.fullmatch(stale.name) and stale not in written:
                stale.unlink()
        return written[-1], len(meshes)

    def video(self, path: Path, out: Path, progress: bool = False) -> tuple[Path, int]:
        """One video -> (its JSON-lines file, the number of frames), tracking hands frame to
        frame."""
        reader = VideoReader(path)
        tracker = HandTracker(self.finder)
        filters: dict[int, OneEuro] = {}
        lines: list[str] = []
        lines_path = out / f"{path.stem}.jsonl"
        camera: Camera | None = None
        frames = 0
        from tqdm import tqdm

        with VideoWriter(out / f"{path.stem}_overlay.mp4", reader.fps) as writer:
            for frame in tqdm(
                reader, total=reader.frames or None, disable=not progress, unit="frame"
            ):
                if camera is None:
                    camera = Camera.of_image(frame.shape[1], frame.shape[0], self.focal)
                hands = tracker.step(frame)
                if self.smooth:
                    hands = [self._smoothed(h, filters, 1.0 / reader.fps) for h in hands]
                    live = {h.track for h in hands}
                    filters = {k: f for k, f in filters.items() if k in live}
                meshes = self.mesher(frame, hands, camera, self.root_depth)
                writer.write(overlay(frame, meshes, camera))
                records = [{**hand_record(m, camera), "track": m.hand.track} for m in meshes]
                lines.append(
                    json.dumps({"frame": frames, "time_s": frames / reader.fps, "hands": records})
                )
                frames += 1
            atomic_write_text(lines_path, "\n".join(lines) + "\n")
        return lines_path, frames

    @staticmethod
    def _smoothed(hand: Hand, filters: dict[int, OneEuro], dt: float) -> Hand:
        from dataclasses import replace

        one_euro = filters.setdefault(hand.track, OneEuro(min_cutoff=1.5, beta=0.02))
        return replace(hand, landmarks=one_euro(hand.landmarks, dt))
