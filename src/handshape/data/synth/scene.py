"""Scene sampling for the synthetic data: every sample is a pure function of (seed, split, index).

A scene is a hand (shape coefficients, a perturbed variant of a library gesture), a camera (one of
a fixed set of viewpoints around the hand, a roll, a distance, intrinsics that centre the hand in
the crop with random scale and offset), one of the lighting set-ups and a skin tone. Validation
scenes use held-out viewpoints and gesture variants, as the paper's validation set does.

Rendered but never labelled: a forearm (length, thickness, taper, wrist bend, sleeve), an object
for grasp gestures and the seed of the skin pattern (handshape.data.synth.props, .skin). They
are drawn from a random stream of their own, and the camera's view mode (egocentric, third
person or any, `view_prior`) from another, so switching any of them off changes no label.
The view prior needs the forearm's direction, which is why the wrist bend is drawn even when
the forearm is not rendered.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from handshape.data.compositing import build_augmentation
from handshape.data.synth.props import GRASPS, axis_angle_matrix, wrist_bend
from handshape.handmodel.model import HandModel
from handshape.handmodel.poses import GestureLibrary

SPLITS = ("train", "val")


# Sections whose keys are settings of their own: a file or an override naming another key there
# is refused (the camera section is an augmentation list in the format of the compositing).
NESTED_SETTINGS = ("view_prior", "forearm", "skin", "objects", "shadows", "validation")
SHADOW_SETTINGS = {"enabled", "soft", "softness", "map_size"}


def _merge_settings(
    values: dict[str, Any], overrides: dict[str, Any], source: str, prefix: str = ""
) -> dict[str, Any]:
    """`overrides` merged into `values` section by section (a nested setting overrides only
    itself); a name `values` lacks is refused."""
    merged = dict(values)
    for key, value in overrides.items():
        if key not in values:
            raise ValueError(f"{source}: overrides name unknown settings ['{prefix}{key}']")
        nested = prefix + key in NESTED_SETTINGS or prefix
        if nested and isinstance(values[key], dict) and isinstance(value, dict):
            merged[key] = _merge_settings(values[key], value, source, f"{prefix}{key}.")
        else:
            merged[key] = value
    return merged


def _check_shadows(shadows: dict[str, Any], source: str) -> None:
    """Refuse a `shadows` section that is incomplete or out of range, naming the setting."""
    if set(shadows) != SHADOW_SETTINGS:
        raise ValueError(
            f"{source}: shadows needs exactly the settings {sorted(SHADOW_SETTINGS)}, "
            f"got {sorted(shadows)}"
        )
    if not isinstance(shadows["enabled"], bool):
        raise ValueError(f"{source}: shadows.enabled must be true or false")
    soft = shadows["soft"]
    if isinstance(soft, bool) or not isinstance(soft, int | float) or not 0 <= soft <= 1:
        raise ValueError(f"{source}: shadows.soft must be a probability in [0, 1], got {soft}")
    softness = shadows["softness"]
    if (
        not isinstance(softness, list | tuple)
        or len(softness) != 2
        or not all(isinstance(s, int | float) and not isinstance(s, bool) for s in softness)
        or not 0 < softness[0] <= softness[1] <= 0.05
    ):
        raise ValueError(
            f"{source}: shadows.softness must be [min, max] metres with "
            f"0 < min <= max <= 0.05, got {softness}"
        )
    size = shadows["map_size"]
    if isinstance(size, bool) or not isinstance(size, int) or not 64 <= size <= 4096:
        raise ValueError(f"{source}: shadows.map_size must be an integer in [64, 4096], got {size}")


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
    view_prior: dict[str, float]
    forearm: dict[str, Any]
    skin: dict[str, Any]
    objects: dict[str, Any]
    shadows: dict[str, Any]
    background_light: float
    camera: dict[str, Any]
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
        for key in ("view_prior", "forearm", "skin", "objects", "shadows", "camera"):
            if not isinstance(v[key], dict):
                raise ValueError(f"{source}: {key} must be a mapping of settings")
            v[key] = dict(v[key])
        prior = v["view_prior"]
        if set(prior) != {"egocentric", "third_person"} or not (
            min(prior.values()) >= 0 and sum(prior.values()) <= 1
        ):
            raise ValueError(
                f"{source}: view_prior needs egocentric and third_person probabilities "
                f">= 0 with a sum <= 1, got {prior}"
            )
        _check_shadows(v["shadows"], source)
        try:  # built by every reader of the set: a bad transform fails here, before rendering
            build_augmentation(v["camera"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: camera: {err}") from err
        if not 0 <= v["background_light"] <= 1:
            raise ValueError(f"{source}: background_light must lie in [0, 1]")
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
        return cls.from_dict(_merge_settings(values, overrides or {}, str(path)), str(path))

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
    # What is rendered but not labelled (handshape.data.synth.props), drawn from a stream of
    # its own so that switching any of it off leaves every label above unchanged.
    view_mode: int = 0  # index into VIEW_MODES
    forearm: np.ndarray = field(default_factory=lambda: np.zeros(6))  # ForearmParams fields
    sleeve_rgb: np.ndarray = field(default_factory=lambda: np.zeros(3))  # sRGB
    object_kind: int = -1  # index into OBJECT_KINDS, -1: none
    object_rgb: np.ndarray = field(default_factory=lambda: np.zeros(3))  # sRGB
    object_roughness: float = 0.5
    object_seed: int = 0
    skin_seed: int = 0
    # The key light's shadow: -1 none, 0 hard, > 0 soft with this penumbra radius (metres).
    shadow_softness: float = -1.0


VIEW_MODES = ("uniform", "egocentric", "third_person")
OBJECT_KINDS = ("cylinder", "cup", "box", "ball", "pen")


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


def variant_poses(
    model: HandModel, library: GestureLibrary, per_gesture: int, spread: float
) -> torch.Tensor:
    """(G, V, 16, 3) float64: V variants of each library gesture inside the joint limits, each
    fixed by (gesture, variant) alone; variant 0 is the gesture itself."""
    limits = model.limits
    base = library.pose_tensor(limits).double()
    out = []
    for g in range(len(base)):
        gen = torch.Generator().manual_seed(1_000_003 * (g + 1))
        around = base[g : g + 1].expand(per_gesture, -1, -1)
        variants = limits.sample(len(around), generator=gen, spread=spread, around=around)
        variants[0] = base[g]
        out.append(variants)
    return torch.stack(out)


def held_out_variant(variant: int, per_gesture: int, last_variants: int) -> bool:
    """Whether gesture variant `variant` is kept for validation (the last `last_variants`)."""
    return variant >= per_gesture - last_variants


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
        cfg = self.config
        return variant_poses(self.model, self.library, cfg.variants_per_gesture, cfg.variant_spread)

    def held_out(self, viewpoint: int | None = None, variant: int | None = None) -> bool:
        """Whether a viewpoint or gesture variant belongs to the validation split."""
        val = self.config.validation
        if viewpoint is not None:
            return viewpoint % val["viewpoint_every"] == 0
        assert variant is not None
        return held_out_variant(variant, self.config.variants_per_gesture, val["last_variants"])

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

    def _props(self, seed: int, split: str, index: int, gesture: int) -> dict[str, Any]:
        """Forearm, object and skin-pattern draws, from their own stream (see Scene)."""
        cfg = self.config
        rng = np.random.default_rng([seed, SPLITS.index(split), index, 1])
        arm = cfg.forearm
        length = rng.uniform(*arm["length"])
        sleeve = rng.uniform(*arm["sleeve_start"]) if rng.random() < arm["sleeve"] else length + 1
        forearm = np.array(
            [
                length,
                rng.uniform(*arm["thickness"]),
                rng.uniform(*arm["taper"]),
                np.deg2rad(rng.uniform(-arm["flexion"], arm["flexion"])),
                np.deg2rad(rng.uniform(-arm["deviation"], arm["deviation"])),
                sleeve,
            ]
        )
        # Cloth: mostly muted colours, some saturated.
        sleeve_rgb = np.clip(rng.uniform(0.05, 0.9) * (1 + rng.uniform(-0.6, 0.6, 3)), 0, 1)
        kinds = GRASPS.get(self.library.names[gesture], ("",))
        # Drawn whether objects are on or not: the draws after these must not depend on it.
        chance, pick = rng.random(), int(rng.integers(len(kinds)))
        holds = cfg.objects["enabled"] and kinds[0] and chance < cfg.objects["probability"]
        kind = OBJECT_KINDS.index(kinds[pick]) if holds else -1
        object_rgb = rng.uniform(0.05, 0.95, 3)
        return {
            "forearm": forearm,
            "sleeve_rgb": sleeve_rgb,
            "object_kind": kind,
            "object_rgb": object_rgb,
            "object_roughness": float(rng.uniform(0.2, 0.9)),
            "object_seed": int(rng.integers(2**62)),
            "skin_seed": int(rng.integers(2**62)),
        }

    def _shadow(self, seed: int, split: str, index: int) -> float:
        """The key light's shadow (Scene.shadow_softness), from a stream of its own."""
        cfg = self.config.shadows
        rng = np.random.default_rng([seed, SPLITS.index(split), index, 3])
        soft, softness = rng.random() < cfg["soft"], rng.uniform(*cfg["softness"])
        if not cfg["enabled"]:
            return -1.0
        return float(softness) if soft else 0.0

    def _view(
        self,
        rng: np.random.Generator,
        split: str,
        root: np.ndarray,
        forearm: np.ndarray,
    ) -> tuple[int, int, float]:
        """(view mode, viewpoint, roll in rad) under the view prior.

        root (3, 3): the hand's global rotation; forearm: Scene.forearm. Egocentric cameras
        stand behind the forearm and above the back of the hand; third-person ones in front of
        the palm or the back. Both pick the split's viewpoint nearest to that direction and roll
        the camera so that the forearm leaves the picture downwards (+- a jitter, within roll).
        """
        cfg = self.config
        views, _ = self._choices(split)
        prior = cfg.view_prior
        u = rng.random()
        mode = 1 if u < prior["egocentric"] else 2 if u < sum(prior.values()) else 0
        if mode == 0:
            viewpoint = int(rng.choice(views))
            return 0, viewpoint, float(np.deg2rad(rng.uniform(-cfg.roll, cfg.roll)))
        bend = wrist_bend(float(forearm[3]), float(forearm[4]))
        along = root @ bend @ np.array([0.0, -1.0, 0.0])  # from the wrist towards the elbow
        back = root @ bend @ np.array([0.0, 0.0, 1.0])  # the back of the hand (palm: -z)
        if mode == 1:
            elevation = np.deg2rad(rng.uniform(50, 85))
            want = np.cos(elevation) * along + np.sin(elevation) * back
            jitter = 25.0
        else:
            tilt = rng.standard_normal(3) * 0.45
            want = (back if rng.random() < 0.5 else -back) + tilt - along * 0.3
            jitter = 60.0
        viewpoint = int(views[np.argmax(self.directions[views] @ want)])
        camera = _camera_rotation(self.directions[viewpoint], 0.0)
        x, y = (camera @ along)[:2]
        roll = np.arctan2(-x, y)  # the forearm's image direction turned to straight down
        spread = min(jitter, cfg.roll)
        return mode, viewpoint, float(roll + np.deg2rad(rng.uniform(-spread, spread)))

    def sample(self, seed: int, split: str, index: int) -> Scene:
        if split not in SPLITS:
            raise ValueError(f"unknown split '{split}' (expected one of {SPLITS})")
        cfg = self.config
        rng = np.random.default_rng([seed, SPLITS.index(split), index])
        _, variants = self._choices(split)
        gesture = int(rng.integers(len(self.library.names)))
        variant = int(rng.choice(variants))
        distance = float(rng.uniform(*cfg.distance))
        lighting = int(rng.integers(cfg.lighting_setups))
        tone = int(rng.integers(len(cfg.skin_tones)))
        skin = np.clip(
            np.asarray(cfg.skin_tones[tone]) * (1 + cfg.skin_variation * rng.standard_normal(3)),
            0,
            1,
        )
        roughness = float(rng.uniform(*cfg.skin["roughness"]))
        shape = cfg.shape_std * rng.standard_normal(self.model.num_shapes)

        limits = self.model.limits
        around = self._variant_poses[gesture, variant][None]
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        pose = limits.sample(1, generator=gen, spread=cfg.sample_spread, around=around)[0]
        props = self._props(seed, split, index, gesture)
        root = axis_angle_matrix(pose[0].numpy())
        view_rng = np.random.default_rng([seed, SPLITS.index(split), index, 2])
        view_mode, viewpoint, roll = self._view(view_rng, split, root, props["forearm"])
        shadow_softness = self._shadow(seed, split, index)

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
            view_mode=view_mode,
            shadow_softness=shadow_softness,
            **props,
        )
