"""Posed hands drawn from the hand model on the fly, in front of a camera, without rendering:
the training data of the keypoint network.

A batch is a pure function of (seed, split, index). Each hand gets shape coefficients ~ N(0,
shape_std^2), a pose from the synthetic generator's gesture variants (the split's own: validation
keeps the last variants of each gesture, as the rendered set does) perturbed within the joint
limits, or with probability `random_pose` a pose drawn anywhere inside the limits; a global
orientation uniform over all rotations (the keypoint network sees every viewpoint and roll,
unlike the quick preset's narrow rendered world); and a place in front of a pinhole camera:
the hand's centre at `distance` metres, up to `off_axis` degrees from the optical axis, so that
near, off-centre hands carry the perspective of wide-angle photographs.

The camera is virtual: K has a focal length of `FOCAL` pixels and the principal point at 0;
everything downstream works in the keypoints' own crop (`keypoint_inputs`), so only angles
matter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from handshape.data.synth.scene import SynthConfig, held_out_variant, variant_poses
from handshape.geometry.camera import project
from handshape.handmodel.model import HandModel
from handshape.handmodel.poses import GestureLibrary

FOCAL = 1000.0
SPLITS = ("train", "val")


@dataclass(frozen=True)
class PosedHandSettings:
    """What the posed-hand sampler draws (config `data.keypoints.hands`)."""

    random_pose: float  # probability of a pose anywhere inside the joint limits
    distance: tuple[float, float]  # metres from the camera to the hand's centre
    off_axis: float  # degrees: the hand's centre within this angle of the optical axis

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str) -> PosedHandSettings:
        names = set(cls.__dataclass_fields__)
        if set(values) != names:
            raise ValueError(
                f"{source}: expected the settings {sorted(names)}, got {sorted(values)}"
            )
        lo, hi = (float(v) for v in values["distance"])
        if not 0 < lo <= hi:
            raise ValueError(f"{source}.distance must be [min, max] with 0 < min <= max")
        if not 0 <= float(values["random_pose"]) <= 1:
            raise ValueError(f"{source}.random_pose must be a probability in [0, 1]")
        if not 0 <= float(values["off_axis"]) < 80:
            raise ValueError(f"{source}.off_axis must be in [0, 80) degrees")
        return cls(float(values["random_pose"]), (lo, hi), float(values["off_axis"]))


# Random streams of the keypoint network's data, each keyed by its own leading number: numpy's
# SeedSequence pads keys with zeros ([a, b] seeds as [a, b, 0]), so keys of different lengths
# alone would not keep streams apart.
HANDS_STREAM, ERRORS_STREAM, VIEW_STREAM = 1, 2, 3


def seeded_generator(stream: int, *key: int) -> torch.Generator:
    """A torch generator for random stream `stream` seeded by a tuple of integers."""
    state = np.random.SeedSequence([stream, *key]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def random_rotations(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 3, 3) rotations uniform over SO(3) (normalised Gaussian quaternions), float64."""
    q = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    w, x, y, z = (q / q.norm(dim=1, keepdim=True)).unbind(1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=1,
    ).reshape(n, 3, 3)


class PosedHands:
    """Batches of posed hands in camera space (module docstring).

    synth: the synthetic generator's settings (gesture variants, spreads, shape spread and the
    validation split's variants); settings: this sampler's own."""

    def __init__(
        self,
        model: HandModel,
        synth: SynthConfig,
        settings: PosedHandSettings,
        library: GestureLibrary | None = None,
    ) -> None:
        self.model = model.double()
        self.synth, self.settings = synth, settings
        library = library or GestureLibrary.load()
        per = synth.variants_per_gesture
        self.variants = variant_poses(self.model, library, per, synth.variant_spread)
        last = synth.validation["last_variants"]
        self._split_variants = {
            split: torch.tensor(
                [v for v in range(per) if held_out_variant(v, per, last) == (split == "val")]
            )
            for split in SPLITS
        }

    def draw(self, seed: int, split: str, index: int, size: int) -> dict[str, torch.Tensor]:
        """`size` posed hands: shape (B, S), pose (B, 16, 3) (model frame, zero global
        rotation), rotation (B, 3, 3) and translation (B, 3) from model to camera, vertices
        (B, N, 3) and joints_3d (B, 21, 3) in the camera frame (metres), K (B, 3, 3), joints_2d
        (B, 21, 2) image pixels; float32 but for the integer-free geometry computed in
        float64."""
        if split not in SPLITS:
            raise ValueError(f"unknown split '{split}' (expected one of {SPLITS})")
        gen = seeded_generator(HANDS_STREAM, seed, SPLITS.index(split), index)
        cfg, synth = self.settings, self.synth
        limits = self.model.limits
        shape = synth.shape_std * torch.randn(size, self.model.num_shapes, generator=gen)
        gestures = torch.randint(len(self.variants), (size,), generator=gen)
        choices = self._split_variants[split]
        variant = choices[torch.randint(len(choices), (size,), generator=gen)]
        around = self.variants[gestures, variant]
        pose = limits.sample(size, generator=gen, spread=synth.sample_spread, around=around)
        anywhere = limits.sample(size, generator=gen)
        pick = torch.rand(size, generator=gen, dtype=torch.float64) < cfg.random_pose
        pose = torch.where(pick[:, None, None], anywhere, pose)
        with torch.no_grad():
            out = self.model(shape=shape.double(), pose=pose)
        rotation = random_rotations(size, gen)
        centre = 0.5 * (out.vertices.amin(1) + out.vertices.amax(1))
        lo, hi = cfg.distance
        distance = lo + (hi - lo) * torch.rand(size, generator=gen, dtype=torch.float64)
        # A direction within the cone around the optical axis, uniform over its solid angle.
        cos_max = math.cos(math.radians(cfg.off_axis))
        cos_t = 1 - (1 - cos_max) * torch.rand(size, generator=gen, dtype=torch.float64)
        phi = 2 * math.pi * torch.rand(size, generator=gen, dtype=torch.float64)
        sin_t = (1 - cos_t**2).sqrt()
        direction = torch.stack([sin_t * phi.cos(), sin_t * phi.sin(), cos_t], dim=1)
        translation = direction * distance[:, None] - (rotation @ centre[:, :, None])[..., 0]

        def to_camera(points: torch.Tensor) -> torch.Tensor:
            return points @ rotation.transpose(1, 2) + translation[:, None]

        vertices, joints = to_camera(out.vertices), to_camera(out.joints)
        K = torch.tensor([[FOCAL, 0, 0], [0, FOCAL, 0], [0, 0, 1.0]], dtype=torch.float64)
        K = K.expand(size, 3, 3)
        return {
            "shape": shape.float(),
            "pose": pose.float(),
            "rotation": rotation.float(),
            "translation": translation.float(),
            "vertices": vertices.float(),
            "joints_3d": joints.float(),
            "K": K.float().contiguous(),
            "joints_2d": project(joints, K).float(),
        }
