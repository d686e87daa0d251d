"""Joint limits, the random pose sampler and the named gesture library.

A pose is (..., 16, 3) axis-angle, the root's global rotation first, then each finger joint's
rotation relative to its parent, as MANO. Limits and gestures are written in anatomical
coordinates: the rotation vector expressed in the joint's rest frame (flex, abd, twist), see
`handshape.handmodel.anatomy`. Clamping those coordinates is the projection onto the limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from handshape.handmodel.anatomy import anatomical_frames
from handshape.joints import FINGERS, NUM_KINEMATIC

ASSETS = Path(__file__).parent / "assets"
LIMITS_PATH = ASSETS / "joint_limits.yaml"
GESTURES_PATH = ASSETS / "gestures.yaml"

KINEMATIC_NAMES: tuple[str, ...] = (
    "wrist",
    *(
        f"{finger}_{joint}"
        for finger in FINGERS
        for joint in (("cmc", "mcp", "ip") if finger == "thumb" else ("mcp", "pip", "dip"))
    ),
)


@dataclass(frozen=True)
class JointLimits:
    """Box limits on the anatomical rotation coordinates of the 15 finger joints.

    frames: (16, 3, 3) rest frames, columns (flex, abd, twist); lower, upper: (16, 3) radians, the
    root row unbounded.
    """

    frames: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor

    @classmethod
    def load(cls, rest_joints: np.ndarray, path: Path = LIMITS_PATH) -> JointLimits:
        """Limits from a YAML file (degrees) for a model whose rest joints (21, 3) are given."""
        try:
            table = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ValueError(f"{path}: cannot read joint limits ({err})") from err
        if not isinstance(table, dict):
            raise ValueError(f"{path}: expected a mapping of joint names to limits")
        lower = np.full((NUM_KINEMATIC, 3), -np.inf)
        upper = np.full((NUM_KINEMATIC, 3), np.inf)
        for k, name in enumerate(KINEMATIC_NAMES[1:], start=1):
            if not isinstance(table.get(name), dict):
                raise ValueError(f"{path}: no limits for joint '{name}'")
            for c, axis in enumerate(("flex", "abd", "twist")):
                pair = table[name].get(axis)
                if not isinstance(pair, list) or len(pair) != 2:
                    raise ValueError(f"{path}: {name}.{axis} must be [min, max] in degrees")
                lo, hi = pair
                if lo > hi:
                    raise ValueError(f"{path}: {name}.{axis} has min {lo} > max {hi}")
                lower[k, c], upper[k, c] = np.deg2rad(lo), np.deg2rad(hi)
        frames = anatomical_frames(rest_joints)
        return cls(torch.from_numpy(frames), torch.from_numpy(lower), torch.from_numpy(upper))

    def _cast(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(t.to(like) for t in (self.frames, self.lower, self.upper))  # type: ignore[return-value]

    def to_anatomical(self, pose: torch.Tensor) -> torch.Tensor:
        """(..., 16, 3) axis-angle -> (..., 16, 3) (flex, abd, twist) coordinates, radians."""
        frames, _, _ = self._cast(pose)
        return torch.einsum("jab,...ja->...jb", frames, pose)

    def from_anatomical(self, anatomical: torch.Tensor) -> torch.Tensor:
        """(..., 16, 3) (flex, abd, twist) radians -> (..., 16, 3) axis-angle."""
        frames, _, _ = self._cast(anatomical)
        return torch.einsum("jab,...jb->...ja", frames, anatomical)

    def project(self, pose: torch.Tensor) -> torch.Tensor:
        """The nearest pose within the limits (in anatomical coordinates); the root is free."""
        _, lower, upper = self._cast(pose)
        return self.from_anatomical(torch.clamp(self.to_anatomical(pose), lower, upper))

    def violation(self, pose: torch.Tensor) -> torch.Tensor:
        """How far (radians) each pose lies outside the limits: (..., 16, 3) -> (...,)."""
        _, lower, upper = self._cast(pose)
        a = self.to_anatomical(pose)
        excess = torch.relu(lower - a) + torch.relu(a - upper)
        return excess.flatten(-2).amax(-1)

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        spread: float = 1.0,
        around: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Random poses within the limits, float64 (n, 16, 3), with zero global rotation.

        Without `around`: uniform over the box of anatomical coordinates. With `around` (n, 16, 3):
        each coordinate perturbed uniformly by up to `spread` times its range, then projected.
        """
        lower, upper = self.lower[1:], self.upper[1:]
        u = torch.rand((n, NUM_KINEMATIC - 1, 3), generator=generator, dtype=torch.float64)
        if around is None:
            fingers = lower + u * (upper - lower)
        else:
            centre = self.to_anatomical(around.double())[:, 1:]
            fingers = centre + (2 * u - 1) * spread * (upper - lower)
            fingers = torch.maximum(torch.minimum(fingers, upper), lower)
        anatomical = torch.cat([torch.zeros(n, 1, 3, dtype=torch.float64), fingers], dim=1)
        return self.from_anatomical(anatomical)


@dataclass(frozen=True)
class GestureLibrary:
    """Named hand gestures in anatomical degrees: name -> (16, 3) (flex, abd, twist)."""

    gestures: dict[str, np.ndarray]

    @classmethod
    def load(cls, path: Path = GESTURES_PATH) -> GestureLibrary:
        try:
            table = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ValueError(f"{path}: cannot read gestures ({err})") from err
        if not isinstance(table, dict) or not table:
            raise ValueError(f"{path}: expected a non-empty mapping of gesture names to poses")
        return cls({name: _parse_gesture(path, name, spec or {}) for name, spec in table.items()})

    @property
    def names(self) -> list[str]:
        return list(self.gestures)

    def anatomical(self, name: str) -> np.ndarray:
        if name not in self.gestures:
            raise KeyError(f"unknown gesture '{name}'; known: {', '.join(self.gestures)}")
        return self.gestures[name]

    def pose(self, name: str, limits: JointLimits) -> torch.Tensor:
        """The gesture as axis-angle (16, 3), float64, zero global rotation."""
        return limits.from_anatomical(torch.from_numpy(np.deg2rad(self.anatomical(name))))

    def pose_tensor(self, limits: JointLimits) -> torch.Tensor:
        """Every gesture, in library order: (G, 16, 3)."""
        return torch.stack([self.pose(name, limits) for name in self.gestures])


def _parse_gesture(path: Path, name: str, spec: dict) -> np.ndarray:
    """One gesture from YAML.

    Per finger either a list of three flexions (base to tip), or a mapping with `flex` (three
    values) and optional `abd` / `twist` (three values, or one for the base joint); the thumb may
    instead give `cmc`, `mcp`, `ip` each as [flex, abd, twist]. Missing fingers stay straight.
    """
    out = np.zeros((NUM_KINEMATIC, 3))
    for finger, value in spec.items():
        if finger not in FINGERS:
            raise ValueError(f"{path}: gesture '{name}' names unknown finger '{finger}'")
        rows = slice(1 + 3 * FINGERS.index(finger), 4 + 3 * FINGERS.index(finger))
        if isinstance(value, list):
            value = {"flex": value}
        if not isinstance(value, dict):
            raise ValueError(f"{path}: gesture '{name}', finger '{finger}': expected list or map")
        if finger == "thumb" and "cmc" in value:
            for k, joint in enumerate(("cmc", "mcp", "ip")):
                angles = value.get(joint, [0, 0, 0])
                if not isinstance(angles, list) or len(angles) != 3:
                    raise ValueError(
                        f"{path}: gesture '{name}', thumb.{joint}: need [flex, abd, twist]"
                    )
                out[rows.start + k] = angles
            continue
        for c, axis in enumerate(("flex", "abd", "twist")):
            v = value.get(axis, 0)
            v = [v, 0, 0] if np.isscalar(v) else v
            if len(v) != 3:
                raise ValueError(f"{path}: gesture '{name}', {finger}.{axis}: need 3 values")
            out[rows, c] = v
    return out
