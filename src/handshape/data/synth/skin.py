"""Procedural skin for the synthetic hands: per-vertex albedo, no UV map.

The hand model has no texture coordinates, and at about 1,000 vertices a per-vertex colour is as
fine as the mesh can show. Fixed per model (`skin_maps`, computed once from the rest template):
where the creases at the finger joints are (palm side), the knuckles and fingertips (which look
redder), the nails (back of each last bone) and the palm (lighter than the back of the hand,
markedly so on dark skin). Per sample (`skin_albedo`): a smooth 3D noise field over the rest
surface (so the blotches move with the skin, not with the camera) and random strengths of each
feature. Colours are linear RGB; pyrender multiplies the shaded colour by the vertex colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from handshape.handmodel.anatomy import anatomical_frames
from handshape.joints import JOINT_PARENTS, KINEMATIC_TO_JOINT, TIP_JOINTS

# Linear RGB of a nail plate and of flushed skin, relative to the base tone.
_NAIL = np.array([0.85, 0.68, 0.64])
_FLUSH = np.array([1.08, 0.78, 0.76])
_PALM = np.array([0.86, 0.62, 0.55])


@dataclass(frozen=True)
class SkinMaps:
    """Weights in [0, 1] per rest vertex (N,), and the rest vertices (N, 3) for the noise."""

    rest: np.ndarray
    crease: np.ndarray
    flush: np.ndarray
    nail: np.ndarray
    palm: np.ndarray


def _nearest_bone(points: np.ndarray, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest finger bone of each point and the position along it (0 at its base, 1 at its
    end): (N, 3), (21, 3) -> bone child joint (N,), t (N,)."""
    children = np.array([j for j in range(21) if JOINT_PARENTS[j] > 0 or j in (1, 5, 9, 13, 17)])
    a = joints[[JOINT_PARENTS[j] for j in children]]  # (B, 3)
    b = joints[children]
    ab = b - a
    t = np.einsum("nbc,bc->nb", points[:, None] - a[None], ab) / np.sum(ab * ab, axis=1)
    closest = a[None] + np.clip(t, 0, 1)[..., None] * ab[None]
    nearest = np.argmin(np.linalg.norm(points[:, None] - closest, axis=2), axis=1)
    rows = np.arange(len(points))
    return children[nearest], t[rows, nearest]


def skin_maps(
    rest_vertices: np.ndarray, rest_normals: np.ndarray, rest_joints: np.ndarray
) -> SkinMaps:
    """Feature weights of a hand mesh in its rest pose.

    rest_vertices (N, 3), rest_normals (N, 3) unit, rest_joints (21, 3) in project order.
    """
    frames = anatomical_frames(rest_joints)
    # Back-of-hand direction per joint: the abduction column points away from where flexion
    # curls (anatomy.py); for the wrist, the palm's back (+z of the model: the palm faces -z).
    dorsal_of_joint = np.zeros((21, 3))
    dorsal_of_joint[0] = (0.0, 0.0, 1.0)
    for k, j in enumerate(KINEMATIC_TO_JOINT):
        if k:
            dorsal_of_joint[j] = frames[k][:, 1]
    for tip in TIP_JOINTS:
        dorsal_of_joint[tip] = dorsal_of_joint[tip - 1]
    child, t = _nearest_bone(rest_vertices, rest_joints)
    parent = np.array([JOINT_PARENTS[c] for c in child])
    facing = np.einsum("nc,nc->n", rest_normals, dorsal_of_joint[parent])
    dorsal = np.clip(facing, 0, 1)
    palmar = np.clip(-facing, 0, 1)
    is_finger_bone = parent > 0
    bone_len = np.linalg.norm(rest_joints[child] - rest_joints[parent], axis=1)
    # Distance (m) to the nearest finger joint along the bone: creases and knuckles sit there.
    to_joint = np.minimum(t, 1 - t) * bone_len
    at_joint = np.exp(-((to_joint / 0.004) ** 2)) * is_finger_bone
    crease = at_joint * palmar
    is_tip_bone = np.isin(child, TIP_JOINTS)
    fingertip = np.clip((t - 0.4) / 0.6, 0, 1) * is_tip_bone
    flush = np.clip(at_joint * dorsal + fingertip, 0, 1)
    nail = (is_tip_bone & (t > 0.35) & (t < 0.97) & (facing > 0.55)).astype(float)
    palm = palmar * (parent == 0)
    return SkinMaps(rest_vertices, crease, flush, nail, np.maximum(palm, 0.6 * palmar))


def noise_field(points: np.ndarray, rng: np.random.Generator, waves: int = 8) -> np.ndarray:
    """A smooth random scalar field, roughly in [-1, 1]: (N, 3) metres -> (N,).

    A sum of plane waves with random directions, wavelengths of 2.5-15 cm and phases.
    """
    directions = rng.standard_normal((waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    frequency = 2 * np.pi / rng.uniform(0.01, 0.08, size=waves)
    phase = rng.uniform(0, 2 * np.pi, size=waves)
    field = np.sin(points @ (directions * frequency[:, None]).T + phase) @ np.ones(waves)
    return field / np.sqrt(waves / 2)


def skin_albedo(
    maps: SkinMaps, base: np.ndarray, rng: np.random.Generator, settings: dict[str, Any]
) -> np.ndarray:
    """Per-vertex linear albedo (N, 3) from a linear base colour (3,) and the skin settings
    (configs/data/synthetic.yaml: `skin`)."""
    base = np.asarray(base, dtype=np.float64)
    if not settings.get("enabled", True):
        return np.broadcast_to(base, maps.rest.shape).copy()
    albedo = base * (1 + settings["noise"] * noise_field(maps.rest, rng))[:, None]
    crease = settings["creases"] * rng.uniform(0.5, 1.0) * maps.crease
    albedo *= (1 - crease)[:, None]
    flush = settings["flush"] * rng.uniform(0.3, 1.0) * maps.flush
    albedo = albedo * (1 + flush[:, None] * (_FLUSH - 1))
    palm = maps.palm * rng.uniform(0.3, 0.8)
    # Palms carry little melanin: blend towards a light pink, in proportion to how dark the
    # base is.
    lighter = np.clip(_PALM * (0.7 + 0.3 * base.max()), base, None)
    albedo = albedo + (palm * (1 - base.mean()))[:, None] * (lighter - albedo)
    nail_colour = 0.3 * base + 0.7 * _NAIL * rng.uniform(0.85, 1.05)
    nail = maps.nail * settings["nails"]
    albedo = albedo + nail[:, None] * (nail_colour - albedo)
    return np.clip(albedo, 0.0, 1.0)
