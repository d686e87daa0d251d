"""The kinds of error a landmark network makes, simulated on true keypoints.

The keypoint network is trained on the hand model's joints, never on a detector's output, so it
must learn to expect a detector's mistakes from these (all sizes relative to the side of the
true keypoints' box, each sample drawing its own):

- jitter: Gaussian noise per keypoint, its spread log-uniform in `jitter` per sample (some hands
  come out sharp, some blurred), fingertips `tip_factor` times wider;
- a misplaced crop: the landmark network reads a crop that sits off the hand and shifts, scales
  and turns all its keypoints a little (`shift`, `scale`, `rotate` in degrees);
- a swapped pair: with probability `swap` two neighbouring fingers trade keypoints;
- a lost finger: with probability `drop` one finger's keypoints (not its base) collapse towards
  its base, as a finger hidden behind the palm or an object is often drawn folded, and get a
  low confidence;
- confidence: each hand's keypoints get one score in `confidence` (MediaPipe reports one per
  hand), lower for wrong fingers;
- depth: the landmark network's z is the relative depth in the units of x under weak
  perspective, (Z - Z_wrist) f / Z_wrist, times a factor in `depth_scale`, plus noise of
  `depth_noise`; with probability `no_depth` it is absent (zeros), so a network can take
  keypoints without depths too.

`simulate` is a pure function of its inputs and a torch.Generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch

TIPS = (4, 8, 12, 16, 20)


@dataclass(frozen=True)
class KeypointErrors:
    """Sizes of the simulated errors (config `data.keypoints.errors`; module docstring)."""

    jitter: tuple[float, float]
    tip_factor: float
    shift: float
    scale: float
    rotate: float
    swap: float
    drop: float
    confidence: tuple[float, float]
    depth_scale: tuple[float, float]
    depth_noise: float
    no_depth: float

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str) -> KeypointErrors:
        names = {f.name for f in fields(cls)}
        if set(values) != names:
            raise ValueError(
                f"{source}: expected the settings {sorted(names)}, got {sorted(values)}"
            )
        out: dict[str, Any] = {}
        for name, value in values.items():
            if isinstance(value, list | tuple):
                lo, hi = (float(v) for v in value)
                if not 0 <= lo <= hi:
                    raise ValueError(f"{source}.{name} must be [min, max] with 0 <= min <= max")
                out[name] = (lo, hi)
            else:
                out[name] = float(value)
                if out[name] < 0:
                    raise ValueError(f"{source}.{name} must not be negative")
        for name in ("swap", "drop", "no_depth"):
            if out[name] > 1:
                raise ValueError(f"{source}.{name} is a probability, got {out[name]}")
        if out["jitter"][0] <= 0:
            raise ValueError(f"{source}.jitter must be [min, max] with 0 < min")
        return cls(**out)

    @classmethod
    def none(cls) -> KeypointErrors:
        """No error at all: the true keypoints, full confidence, weak-perspective depths."""
        return cls((1e-12, 1e-12), 1.0, 0, 0, 0, 0, 0, (1.0, 1.0), (1.0, 1.0), 0, 0)


def _uniform(lo: float, hi: float, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=gen)


def weak_perspective_depth(joints_3d: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(B, 21) relative depths in image pixels, (Z - Z_wrist) f / Z_wrist, of (B, 21, 3)
    camera-frame joints under intrinsics K (B, 3, 3)."""
    z = joints_3d[..., 2]
    return (z - z[:, :1]) * K[:, None, 0, 0] / z[:, :1]


def simulate(
    keypoints: torch.Tensor,
    joints_3d: torch.Tensor,
    K: torch.Tensor,
    errors: KeypointErrors,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(keypoints (B, 21, 2), confidence (B, 21), depth (B, 21)) as a landmark network might
    report them, from the true (B, 21, 2) image keypoints of (B, 21, 3) camera-frame joints
    seen through K (B, 3, 3)."""
    b, j = keypoints.shape[:2]
    true = keypoints.float()
    lo, hi = true.amin(1), true.amax(1)
    side = (hi - lo).amax(1)[:, None, None]  # (B, 1, 1)
    centre = ((lo + hi) / 2)[:, None]
    depth = weak_perspective_depth(joints_3d.float(), K.float())
    out = true.clone()

    # A misplaced crop: one similarity for the whole hand.
    angle = torch.deg2rad(_uniform(-errors.rotate, errors.rotate, (b,), gen))
    factor = 1 + _uniform(-errors.scale, errors.scale, (b,), gen)
    c, s = angle.cos() * factor, angle.sin() * factor
    turn = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    shift = _uniform(-errors.shift, errors.shift, (b, 1, 2), gen) * side
    out = (out - centre) @ turn.transpose(1, 2) + centre + shift

    # Jitter, log-uniform in spread per hand, wider at the fingertips.
    spread = torch.exp(_uniform(math.log(errors.jitter[0]), math.log(errors.jitter[1]), (b,), gen))
    per_joint = torch.ones(j)
    per_joint[list(TIPS)] = errors.tip_factor
    noise = torch.randn(b, j, 2, generator=gen) * per_joint[None, :, None]
    out = out + noise * (spread[:, None, None] * side)

    confidence = _uniform(*errors.confidence, (b, 1), gen).expand(b, j).clone()
    fingers = torch.arange(1, j).view(5, 4)  # each finger's joints, base to tip

    # Two neighbouring fingers trade keypoints (base joints included).
    swap = torch.rand(b, generator=gen) < errors.swap
    first = torch.randint(1, 4, (b,), generator=gen)  # index-middle, middle-ring, ring-little
    for k in torch.nonzero(swap).flatten().tolist():
        a, bb = fingers[first[k]], fingers[first[k] + 1]
        out[k, a], out[k, bb] = out[k, bb].clone(), out[k, a].clone()
        depth[k, a], depth[k, bb] = depth[k, bb].clone(), depth[k, a].clone()
        confidence[k, a] *= 0.5
        confidence[k, bb] *= 0.5

    # A lost finger folds onto its base.
    drop = torch.rand(b, generator=gen) < errors.drop
    which = torch.randint(0, 5, (b,), generator=gen)
    fold = torch.rand(b, generator=gen)
    for k in torch.nonzero(drop).flatten().tolist():
        joints = fingers[which[k]]
        base = out[k, joints[0]]
        out[k, joints[1:]] = base + (out[k, joints[1:]] - base) * fold[k] * 0.5
        depth[k, joints[1:]] = depth[k, joints[0]].clone()
        confidence[k, joints] *= 0.3

    # The landmark network's depths.
    gain = _uniform(*errors.depth_scale, (b, 1), gen)
    depth = depth * gain + torch.randn(b, j, generator=gen) * errors.depth_noise * side[..., 0]
    depth = depth - depth[:, :1]  # relative to the wrist, as MediaPipe's
    absent = torch.rand(b, generator=gen) < errors.no_depth
    depth[absent] = 0.0
    return out, confidence, depth
