"""Scene sampling for the synthetic data: every sample is a pure function of (seed, split, index).

A scene is a hand (shape coefficients, a perturbed variant of a library gesture), a camera (one of
a fixed set of viewpoints around the hand, a roll, a distance, intrinsics that centre the hand in
the crop with random scale and offset), one of the lighting set-ups and a skin tone. Validation
scenes use held-out viewpoints and gesture variants, as the paper's validation set does.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from handshape.handmodel.model import HandModel
from handshape.handmodel.poses import GestureLibrary

SPLITS = ("train", "val")


@dataclass(frozen=True)
class SynthConfig:
    """Settings of the generator; see configs/data/synthetic.yaml for their meaning."""

    size: int
    shard_size: int
    viewpoints: int
    view_axis: tuple[float, float, float]
    view_cone: float
    variants_per_gesture: int
    variant_spread: float
    sample_spread: float
    lighting_setups: int
    shape_std: float
    distance: tuple[float, float]
    fill: tuple[float, float]
    offset_jitter: float
    roll: float
    skin_tones: tuple[tuple[float, float, float], ...]
    skin_variation: float
    visibility_margin: float
    validation: dict[str, int]

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> SynthConfig:
        names = set(cls.__dataclass_fields__)
        unknown, missing = set(values) - names, names - set(values)
        if unknown or missing:
            raise ValueError(f"{source}: unknown keys {sorted(unknown)}, missing {sorted(missing)}")
        v = dict(values)
        v["distance"] = tuple(v["distance"])
        v["fill"] = tuple(v["fill"])
        v["view_axis"] = tuple(float(a) for a in v["view_axis"])
        if len(v["view_axis"]) != 3 or not np.any(v["view_axis"]):
            raise ValueError(f"{source}: view_axis must be a non-zero 3-vector")
        if not 0 < v["view_cone"] <= 180:
            raise ValueError(f"{source}: view_cone must lie in (0, 180] degrees")
        v["skin_tones"] = tuple(tuple(t) for t in v["skin_tones"])
        v["validation"] = dict(v["validation"])
        for key in ("distance", "fill"):
            lo, hi = v[key]
            if not 0 < lo <= hi:
                raise ValueError(f"{source}: {key} must be [min, max] with 0 < min <= max")
        if v["distance"][1] > 5.0:
            # Depth is stored as uint16 steps of 0.1 mm, which ends at 6.55 m.
            raise ValueError(f"{source}: distance above 5 m is not supported")
        return cls(**v)

    @classmethod
    def load(cls, path: Path, overrides: dict[str, Any] | None = None) -> SynthConfig:
        """The settings of a YAML file, with ``overrides`` (e.g. an experiment's) on top."""
        try:
            values = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ValueError(f"{path}: cannot read the synthetic data config ({err})") from err
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of settings")
        unknown = set(overrides or {}) - set(values)
        if unknown:
            raise ValueError(f"{path}: overrides name unknown settings {sorted(unknown)}")
        return cls.from_dict({**values, **(overrides or {})}, str(path))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["distance"], d["fill"] = list(self.distance), list(self.fill)
        d["view_axis"] = list(self.view_axis)
        d["skin_tones"] = [list(t) for t in self.skin_tones]
        return d


@dataclass(frozen=True)
class Scene:
    """Everything needed to render (and re-render) one sample.

    shape (S,), pose (16, 3) axis-angle; rotation (3, 3) and translation (3,) map model
    coordinates to the OpenCV camera frame (x right, y down, z forward); K (3, 3) intrinsics;
    vertices (N, 3) and joints (21, 3): the posed hand in that camera frame, metres.
    """

    split: str
    index: int
    gesture: int
    variant: int
    viewpoint: int
    roll: float
    distance: float
    lighting: int
    skin_tone: int
    skin_rgb: tuple[float, float, float]
    roughness: float
    shape: np.ndarray
    pose: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    K: np.ndarray
    vertices: np.ndarray
    joints: np.ndarray


def fibonacci_directions(count: int) -> np.ndarray:
    """`count` unit vectors spread evenly over the sphere: (count, 3)."""
    i = np.arange(count) + 0.5
    z = 1 - 2 * i / count
    phi = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _camera_rotation(direction: np.ndarray, roll: float) -> np.ndarray:
    """Rotation (3, 3) from model to OpenCV camera coordinates for a camera placed along
    `direction` from the hand, looking at it, rolled by `roll` radians about its axis."""
    forward = -direction  # the camera looks back at the hand
    helper = np.array([0.0, 0.0, 1.0]) if abs(forward[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    right = np.cross(forward, helper)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c, s = np.cos(roll), np.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    return np.stack([right, down, forward], axis=0)


class SceneSampler:
    """Draws scenes for one configuration and hand model."""

    def __init__(
        self, config: SynthConfig, model: HandModel, library: GestureLibrary | None = None
    ) -> None:
        self.config = config
        self.model = model.double()
        self.library = library or GestureLibrary.load()
        self.directions = fibonacci_directions(config.viewpoints)

    @cached_property
    def _variant_poses(self) -> torch.Tensor:
        """(G, V, 16, 3): each gesture's variants, fixed by (gesture, variant) alone."""
        limits = self.model.limits
        base = self.library.pose_tensor(limits).double()
        out = []
        for g in range(len(base)):
            gen = torch.Generator().manual_seed(1_000_003 * (g + 1))
            around = base[g : g + 1].expand(self.config.variants_per_gesture, -1, -1)
            variants = limits.sample(
                len(around), generator=gen, spread=self.config.variant_spread, around=around
            )
            variants[0] = base[g]  # variant 0 is the gesture itself
            out.append(variants)
        return torch.stack(out)

    def held_out(self, viewpoint: int | None = None, variant: int | None = None) -> bool:
        """Whether a viewpoint or gesture variant belongs to the validation split."""
        val = self.config.validation
        if viewpoint is not None:
            return viewpoint % val["viewpoint_every"] == 0
        assert variant is not None
        return variant >= self.config.variants_per_gesture - val["last_variants"]

    @functools.cache  # noqa: B019 - two splits per sampler; the sampler lives as long
    def _choices(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Viewpoints and gesture variants a split may use."""
        axis = np.asarray(self.config.view_axis) / np.linalg.norm(self.config.view_axis)
        inside = self.directions @ axis >= np.cos(np.deg2rad(self.config.view_cone)) - 1e-9
        views = np.flatnonzero(inside)
        variants = np.arange(self.config.variants_per_gesture)
        want = split == "val"
        views = views[[self.held_out(viewpoint=int(v)) == want for v in views]]
        variants = variants[[self.held_out(variant=int(v)) == want for v in variants]]
        if not len(views):
            raise ValueError(f"no {split} viewpoint lies within view_cone; widen it")
        return views, variants

    def sample(self, seed: int, split: str, index: int) -> Scene:
        if split not in SPLITS:
            raise ValueError(f"unknown split '{split}' (expected one of {SPLITS})")
        cfg = self.config
        rng = np.random.default_rng([seed, SPLITS.index(split), index])
        views, variants = self._choices(split)
        gesture = int(rng.integers(len(self.library.names)))
        variant = int(rng.choice(variants))
        viewpoint = int(rng.choice(views))
        roll = float(np.deg2rad(rng.uniform(-cfg.roll, cfg.roll)))
        distance = float(rng.uniform(*cfg.distance))
        lighting = int(rng.integers(cfg.lighting_setups))
        tone = int(rng.integers(len(cfg.skin_tones)))
        skin = np.clip(
            np.asarray(cfg.skin_tones[tone]) * (1 + cfg.skin_variation * rng.standard_normal(3)),
            0,
            1,
        )
        roughness = float(rng.uniform(0.45, 0.8))
        shape = cfg.shape_std * rng.standard_normal(self.model.num_shapes)

        limits = self.model.limits
        around = self._variant_poses[gesture, variant][None]
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        pose = limits.sample(1, generator=gen, spread=cfg.sample_spread, around=around)[0]

        with torch.no_grad():
            out = self.model(torch.from_numpy(shape)[None], pose[None])
        points = out.vertices[0].numpy()
        centre = 0.5 * (points.min(axis=0) + points.max(axis=0))
        rotation = _camera_rotation(self.directions[viewpoint], roll)
        translation = np.array([0.0, 0.0, distance]) - rotation @ centre
        cam = points @ rotation.T + translation
        uv = cam[:, :2] / cam[:, 2:]
        lo, hi = uv.min(axis=0), uv.max(axis=0)
        focal = rng.uniform(*cfg.fill) * cfg.size / float((hi - lo).max())
        offset = rng.uniform(-cfg.offset_jitter, cfg.offset_jitter, size=2) * cfg.size
        principal = cfg.size / 2 - 0.5 + offset - focal * 0.5 * (lo + hi)
        K = np.array([[focal, 0, principal[0]], [0, focal, principal[1]], [0, 0, 1.0]])
        joints = out.joints[0].numpy() @ rotation.T + translation
        return Scene(
            split,
            index,
            gesture,
            variant,
            viewpoint,
            roll,
            distance,
            lighting,
            tone,
            (float(skin[0]), float(skin[1]), float(skin[2])),
            roughness,
            shape,
            pose.numpy(),
            rotation,
            translation,
            K,
            cam,
            joints,
        )
