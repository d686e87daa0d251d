"""Where a shadow map looks from: the light's view fitted to the part of the scene in the picture.

Pure geometry for `handshape.render.direct`. A directional light gets an orthographic view
along its direction; a spot or point light a perspective view from its position towards the
centre of what the camera sees (a point light is treated like a spot aimed there: its shadows
can only fall on that part anyway). Across the light's direction the view covers only the
*visible receivers* (the vertices inside the camera's picture, with a margin): the forearm runs
far out of the frame and fitting all of it would spend most of the map's texels on nothing
anyone sees. Along the light's direction it covers every vertex, so a caster outside the
picture (the forearm between a low light and the hand) still casts into it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Fraction added on each side of the visible receivers' extent: surfaces at the picture's
# border are covered, and filter taps near the map's edge stay on it.
_MARGIN = 0.05
_MAX_HALF_ANGLE = np.deg2rad(80.0)  # a perspective view wider than this wastes the map
_NEAR_MIN = 0.005  # metres: a perspective view's nearest plane


@dataclass(frozen=True)
class ShadowView:
    """The light's view of a scene.

    clip (4, 4): camera-frame points (OpenGL frame, homogeneous) -> the light's clip space,
    for drawing the shadow map. texture (4, 4): the same to [0, 1]^3 map coordinates (u, v,
    depth) after dividing by w, for looking it up. metres_per_unit: the width of the map, in
    metres, at the receivers (perspective: at the centre of the visible receivers).
    """

    clip: np.ndarray
    texture: np.ndarray
    metres_per_unit: float


def _basis(forward: np.ndarray) -> np.ndarray:
    """(3, 3) rows right, up, -forward: a right-handed view frame looking along `forward`."""
    forward = forward / np.linalg.norm(forward)
    helper = np.array([0.0, 1.0, 0.0]) if abs(forward[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    right = np.cross(forward, helper)
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return np.stack([right, up, -forward])


def _to_texture(clip: np.ndarray) -> np.ndarray:
    """Clip space -> map coordinates: NDC [-1, 1]^3 -> [0, 1]^3 (linear in homogeneous form)."""
    bias = np.array(
        [[0.5, 0, 0, 0.5], [0, 0.5, 0, 0.5], [0, 0, 0.5, 0.5], [0, 0, 0, 1.0]]
    )  # fmt: skip
    return bias @ clip


def visible_points(points: np.ndarray, projection: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """The points (N, 3), OpenGL camera frame, that the camera's `projection` (4, 4) puts in
    the picture, widened by `margin` (a fraction of its half-width); all of them if none is."""
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ projection.T
    w = homogeneous[:, 3]
    ndc = homogeneous[:, :2] / np.where(w > 1e-9, w, 1.0)[:, None]
    inside = (w > 1e-9) & np.all(np.abs(ndc) <= 1.0 + margin, axis=1)
    return points[inside] if inside.any() else points


def directional_view(
    direction: np.ndarray, points: np.ndarray, receivers: np.ndarray
) -> ShadowView:
    """Orthographic view along `direction` (3,), where the light travels; points (N, 3): every
    vertex of the scene; receivers (M, 3): the visible ones. All in the OpenGL camera frame."""
    rows = _basis(np.asarray(direction, np.float64))
    across = receivers @ rows[:2].T  # (M, 2) right, up
    lo, hi = across.min(axis=0), across.max(axis=0)
    centre = 0.5 * (lo + hi)
    half = 0.5 * float((hi - lo).max()) * (1 + 2 * _MARGIN) + 1e-4  # square: isotropic texels
    along = -(points @ rows[2])  # distance along the light's direction
    near, far = float(along.min()), float(along.max())
    pad = 0.01 * (far - near) + 1e-4
    near, far = near - pad, far + pad
    ortho = np.eye(4)
    ortho[0, 0] = ortho[1, 1] = 1.0 / half
    ortho[0, 3], ortho[1, 3] = -centre / half
    ortho[2, 2] = -2.0 / (far - near)
    ortho[2, 3] = -(far + near) / (far - near)
    view = np.eye(4)
    view[:3, :3] = rows
    clip = ortho @ view
    return ShadowView(clip, _to_texture(clip), 2.0 * half)


def perspective_view(position: np.ndarray, points: np.ndarray, receivers: np.ndarray) -> ShadowView:
    """Perspective view from `position` (3,) towards the centre of the receivers (M, 3) (the
    visible vertices), deep enough for every vertex of points (N, 3); OpenGL camera frame."""
    eye = np.asarray(position, np.float64)
    target = 0.5 * (receivers.min(axis=0) + receivers.max(axis=0))
    forward = target - eye
    distance = float(np.linalg.norm(forward))
    if distance < 1e-6:  # a light inside the scene: look along the camera's axis
        forward, distance = np.array([0.0, 0.0, -1.0]), 1.0
    rows = _basis(forward)
    local = (receivers - eye) @ rows.T
    depth = -local[:, 2]
    ahead = depth > _NEAR_MIN
    tangent = np.abs(local[ahead, :2]).max(axis=1) / depth[ahead] if ahead.any() else [1.0]
    half_angle = min(float(np.arctan(np.max(tangent))) * (1 + 2 * _MARGIN), _MAX_HALF_ANGLE)
    depths = -((points - eye) @ rows[2])
    near = max(float(depths.min()) * 0.9, _NEAR_MIN)
    far = max(float(depths.max()) * 1.05, near * 2)
    t = 1.0 / np.tan(half_angle)
    project = np.zeros((4, 4))
    project[0, 0] = project[1, 1] = t
    project[2, 2] = -(far + near) / (far - near)
    project[2, 3] = -2.0 * far * near / (far - near)
    project[3, 2] = -1.0
    view = np.eye(4)
    view[:3, :3] = rows
    view[:3, 3] = -rows @ eye
    clip = project @ view
    return ShadowView(clip, _to_texture(clip), 2.0 * distance / t)


def light_view(
    kind: str,
    direction: np.ndarray,
    position: np.ndarray,
    points: np.ndarray,
    projection: np.ndarray,
) -> ShadowView:
    """The shadow map's view for a light of `kind` ("directional", "point", "spot") of the
    scene's vertices points (N, 3) seen through the camera's `projection` (4, 4)."""
    receivers = visible_points(points, projection)
    if kind == "directional":
        return directional_view(np.asarray(direction, np.float64), points, receivers)
    if kind in ("point", "spot"):
        return perspective_view(np.asarray(position, np.float64), points, receivers)
    raise ValueError(f"unknown light kind '{kind}'")
