"""What the synthetic hand is rendered with but never labelled: its forearm and held objects.

Both are built in the hand model's frame (the palm faces -z, fingers along +y at rest) from the
posed hand, then moved into the camera frame with the sample's camera like the hand itself.

Forearm: an elliptical tube from inside the base of the palm towards the elbow, its cross-section
fitted to the hand's wrist end (so it follows shape), widening towards the elbow, its axis the
hand's global rotation times a random wrist bend (flexion / deviation), so it bends at the wrist.
It is long enough to leave the crop in most views; a sleeve is a wider tube over its far part.

Objects, for the grasp gestures: a cylinder, cup (wide cylinder), box or ball fitted between the
fingers and the palm, or a pen through the pinch of thumb and index finger. They are allowed to
overlap the fingers a little: the z-buffer decides what is seen, and visibility labels come from
the rendered depth of everything, so hidden joints are marked hidden.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

# Which object kinds each grasp gesture may hold (gesture names of handmodel/assets/gestures.yaml).
GRASPS: dict[str, tuple[str, ...]] = {
    "cylinder_grasp": ("cylinder", "cup", "box"),
    "sphere_grasp": ("ball",),
    "half_fist": ("cylinder", "box"),
    "hook": ("cylinder",),
    "fist": ("pen", "cylinder"),
    "tripod_grasp": ("pen", "ball"),
    "writing": ("pen",),
    "pinch": ("pen",),
    "key_grip": ("box",),
}
# Rest-pose cross-section of the base of the palm: vertices below this height (model y, metres).
_WRIST_BAND = -0.012


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh: vertices (N, 3) float64, faces (F, 3) int."""

    vertices: np.ndarray
    faces: np.ndarray


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """(3, 3) rotation by `angle` rad about the unit `axis` (Rodrigues)."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def axis_angle_matrix(rotvec: np.ndarray) -> np.ndarray:
    """(3, 3) rotation of an axis-angle vector (3,); numpy, for single small rotations where a
    torch call costs more than the arithmetic."""
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    return _rotation(np.asarray(rotvec, np.float64) / angle, angle)


def wrist_bend(flexion: float, deviation: float) -> np.ndarray:
    """(3, 3): the forearm's rotation relative to the hand's root frame (model axes: x across
    the palm, y along the fingers, z out of the back of the hand)."""
    return _rotation(np.array([1.0, 0.0, 0.0]), flexion) @ _rotation(
        np.array([0.0, 0.0, 1.0]), deviation
    )


@functools.cache
def _tube_faces(segments: int, rings: int) -> np.ndarray:
    """Triangles of `tube`: the side, then the caps (centres at the last two vertices)."""
    r, k = np.meshgrid(np.arange(rings - 1), np.arange(segments), indexing="ij")
    a, b = r * segments + k, r * segments + (k + 1) % segments
    c, d = a + segments, b + segments
    side = np.stack([np.stack([a, b, d], -1), np.stack([a, d, c], -1)], axis=2).reshape(-1, 3)
    n, k, last = rings * segments, np.arange(segments), (rings - 1) * segments
    bottom = np.stack([np.full(segments, n), (k + 1) % segments, k], axis=1)
    top = np.stack([np.full(segments, n + 1), last + k, last + (k + 1) % segments], axis=1)
    caps = np.stack([bottom, top], axis=1).reshape(-1, 3)
    faces = np.concatenate([side, caps]).astype(np.int64)
    faces.flags.writeable = False
    return faces


def tube(
    length: float, radii: tuple[float, float], taper: float, segments: int = 16, rings: int = 5
) -> Mesh:
    """A closed elliptical tube along +z from 0 to `length`, radii (x, y) at z = 0 growing
    linearly by `taper` to its end; outward-facing triangles (counter-clockwise)."""
    angle = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    z = np.linspace(0, length, rings)
    scale = 1 + (taper - 1) * z / length
    ring = np.stack([radii[0] * np.cos(angle), radii[1] * np.sin(angle)], axis=1)
    side = np.concatenate(
        [(scale[:, None, None] * ring).reshape(-1, 2), np.repeat(z, segments)[:, None]], axis=1
    )
    centres = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, length]])
    return Mesh(np.concatenate([side, centres]), _tube_faces(segments, rings))


@functools.cache
def _unit_ball() -> Mesh:
    import trimesh

    ball = trimesh.creation.icosphere(subdivisions=2)
    return Mesh(np.asarray(ball.vertices, float), np.asarray(ball.faces, np.int64))


@functools.cache
def _unit_box() -> Mesh:
    import trimesh

    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    return Mesh(np.asarray(box.vertices, float), np.asarray(box.faces, np.int64))


def _frame(axis: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """(3, 3) rotation whose columns are x, y, z with z along `axis`, x as close to `hint`."""
    z = axis / np.linalg.norm(axis)
    x = hint - z * (hint @ z)
    if np.linalg.norm(x) < 1e-9:
        x = np.cross(z, [1.0, 0.0, 0.0] if abs(z[0]) < 0.9 else [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def wrist_section(rest_vertices: np.ndarray) -> np.ndarray:
    """Indices of the rest-pose vertices at the base of the palm (where the forearm joins)."""
    return np.flatnonzero(rest_vertices[:, 1] < _WRIST_BAND)


@dataclass(frozen=True)
class ForearmParams:
    """length (m), thickness (x wrist section), taper (end / start radius), flexion and
    deviation of the wrist (rad), sleeve_start (m from the wrist; >= length: no sleeve)."""

    length: float
    thickness: float
    taper: float
    flexion: float
    deviation: float
    sleeve_start: float


def forearm_meshes(
    params: ForearmParams,
    vertices: np.ndarray,
    section: np.ndarray,
    global_rotation: np.ndarray,
    wrist: np.ndarray,
) -> tuple[Mesh, Mesh | None]:
    """The forearm (and its sleeve, or None) in the model frame of the posed hand.

    vertices (N, 3): the posed hand; section: `wrist_section` indices; global_rotation (3, 3)
    the hand's root rotation; wrist (3,) the posed wrist joint.
    """
    local = (vertices[section] - wrist) @ global_rotation  # undo the root rotation
    lo, hi = local.min(axis=0), local.max(axis=0)
    centre = np.array([0.5 * (lo[0] + hi[0]), 0.0, 0.5 * (lo[2] + hi[2])])
    radii = (0.5 * (hi[0] - lo[0]) * params.thickness, 0.5 * (hi[2] - lo[2]) * params.thickness)
    bend = wrist_bend(params.flexion, params.deviation)
    # Tube frame in the hand's local frame: z along the forearm (-y bent), x across the wrist.
    axes = bend @ np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]]).T
    start = centre + np.array([0.0, -0.004, 0.0])  # begins inside the palm, no gap at any bend
    rotation = global_rotation @ axes

    def place(mesh: Mesh) -> Mesh:
        return Mesh(mesh.vertices @ rotation.T + (global_rotation @ start + wrist), mesh.faces)

    arm = place(tube(params.length, radii, params.taper))
    if params.sleeve_start >= params.length:
        return arm, None
    s = params.sleeve_start
    grow = 1.12 * (1 + (params.taper - 1) * s / params.length)
    # 2 mm longer than the arm: its end cap must not share a plane with the arm's (z-fighting).
    sleeve = tube(
        params.length - s + 0.002, (grow * radii[0], grow * radii[1]), params.taper, rings=3
    )
    sleeve = Mesh(sleeve.vertices + np.array([0.0, 0.0, s]), sleeve.faces)
    return arm, place(sleeve)


def object_mesh(kind: str, joints: np.ndarray, rng: np.random.Generator) -> Mesh:
    """An object of `kind` held by the posed hand with joints (21, 3) (model frame, metres)."""
    tips = joints[[8, 12, 16, 20]]
    mcps = joints[[5, 9, 13, 17]]
    across = joints[17] - joints[5]  # index to little MCP: the axis of a power grasp
    if kind == "pen":
        centre = 0.5 * (joints[4] + joints[8])
        direction = joints[5] - joints[0] + 0.6 * np.cross(across, joints[8] - joints[4])
        radius, length = rng.uniform(0.004, 0.007), rng.uniform(0.12, 0.16)
        mesh = tube(length, (radius, radius), 1.0, segments=10, rings=2)
        frame = _frame(direction, across)
        shift = rng.uniform(0.25, 0.6) * length
        return Mesh((mesh.vertices - [0, 0, shift]) @ frame.T + centre, mesh.faces)
    inner = np.concatenate([joints[[6, 7, 10, 11, 14, 15, 18, 19]], tips])
    centre = 0.5 * (inner.mean(axis=0) + mcps.mean(axis=0))
    reach = np.median(np.linalg.norm(inner - centre, axis=1))
    radius = max(0.015, 0.9 * reach)
    if kind == "ball":
        return Mesh(_unit_ball().vertices * radius + centre, _unit_ball().faces)
    frame = _frame(across, joints[9] - joints[0])
    length = rng.uniform(0.12, 0.22)
    if kind == "box":
        unit = _unit_box()
        size = np.array([2 * radius, 1.6 * radius * rng.uniform(0.7, 1.2), length])
        return Mesh((unit.vertices * size) @ frame.T + centre, unit.faces)
    if kind == "cup":
        radius, length = 1.2 * radius, rng.uniform(0.09, 0.12)
    mesh = tube(length, (radius, radius), rng.uniform(1.0, 1.15), segments=20, rings=2)
    offset = np.array([0.0, 0.0, length * rng.uniform(0.35, 0.65)])
    return Mesh((mesh.vertices - offset) @ frame.T + centre, mesh.faces)
