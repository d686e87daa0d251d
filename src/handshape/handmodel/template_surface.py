"""The surface of handshape's hand template: the rest skeleton from assets/design.yaml, a signed
distance function (a rounded palm slab and a thenar ellipsoid, smoothly blended with tapered
capsules along the finger bones), meshed with marching cubes, decimated to about a thousand
vertices by quadric simplification, then relaxed along the surface and projected back onto it,
which evens out the triangles. `template_builder` rigs the mesh into the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import fast_simplification
import numpy as np
import scipy.sparse as sp
from skimage.measure import marching_cubes

from handshape.joints import FINGERS, NUM_JOINTS

__all__ = ["HandSDF", "Skeleton", "build_mesh", "build_skeleton", "unit", "vertex_neighbours"]


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _rotate(v: np.ndarray, axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate vector v about a unit axis (Rodrigues)."""
    a = np.deg2rad(degrees)
    return v * np.cos(a) + np.cross(axis, v) * np.sin(a) + axis * (axis @ v) * (1 - np.cos(a))


@dataclass(frozen=True)
class Skeleton:
    """Rest skeleton: joints (21, 3) in project order, radius at each joint (21,), and the end of
    each finger's bone axis (5, 3), one fingertip radius short of the skin at the tip."""

    joints: np.ndarray
    radii: np.ndarray
    axis_ends: np.ndarray


def build_skeleton(design: dict) -> Skeleton:
    hand_length = design["hand_length"]
    joints = np.zeros((NUM_JOINTS, 3))
    radii = np.zeros(NUM_JOINTS)
    axis_ends = np.zeros((5, 3))
    palmar = np.array([0.0, 0.0, -1.0])
    for f, name in enumerate(FINGERS):
        spec = design["fingers"][name]
        a, t = np.deg2rad(spec["direction"]), np.deg2rad(spec["tilt"])
        d = np.array([-np.sin(a) * np.cos(t), np.cos(a) * np.cos(t), -np.sin(t)])
        # The thumb curls across the palm, the fingers straight towards it.
        towards = unit(palmar + np.array([1.0, 0.0, 0.0])) if name == "thumb" else palmar
        base = 1 + 4 * f
        joints[base] = spec["base"]
        radii[base : base + 4] = spec["radii"]
        for k in range(3):
            flex_axis = unit(np.cross(d, towards))
            d = _rotate(d, flex_axis, spec["curl"][k])
            length = spec["lengths"][k] * hand_length
            if k < 2:
                joints[base + k + 1] = joints[base + k] + length * d
            else:
                tip_radius = spec["radii"][3]
                axis_ends[f] = joints[base + 2] + (length - tip_radius) * d
                joints[base + 3] = joints[base + 2] + length * d
    radii[0] = 0.02
    return Skeleton(joints, radii, axis_ends)


# ----------------------------------------------------------------------------------------------
# Signed distance function of the hand surface (negative inside).


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: blends two distance fields over a band of width k."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def _tapered_capsule(
    p: np.ndarray, a: np.ndarray, b: np.ndarray, ra: float, rb: float
) -> np.ndarray:
    """Approximate distance to a capsule whose radius goes linearly from ra at a to rb at b."""
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    closest = a + t[:, None] * ab
    return np.linalg.norm(p - closest, axis=1) - (ra + t * (rb - ra))


def _polygon_sdf(xy: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Signed distance to a simple polygon in the plane (negative inside): (P, 2) -> (P,)."""
    d = np.full(len(xy), np.inf)
    inside = np.zeros(len(xy), dtype=bool)
    for i in range(len(poly)):
        a, b = poly[i], poly[(i + 1) % len(poly)]
        e = b - a
        w = xy - a
        t = np.clip((w @ e) / (e @ e), 0.0, 1.0)
        d = np.minimum(d, np.linalg.norm(w - t[:, None] * e, axis=1))
        crosses = (a[1] > xy[:, 1]) != (b[1] > xy[:, 1])
        x_at = a[0] + (xy[:, 1] - a[1]) * e[0] / np.where(e[1] == 0, 1e-30, e[1])
        inside ^= crosses & (xy[:, 0] < x_at)
    return np.where(inside, -d, d)


class HandSDF:
    """The hand's signed distance field, split into labelled parts for skinning."""

    def __init__(self, design: dict, skeleton: Skeleton) -> None:
        self.design = design
        self.skeleton = skeleton
        palm = design["palm"]
        self.outline = np.asarray(palm["outline"], dtype=np.float64)
        knots = np.asarray(palm["half_thickness"], dtype=np.float64)
        self.thickness_y, self.thickness_v = knots[:, 0], knots[:, 1]
        self.rounding = palm["rounding"]
        thenar = palm["thenar"]
        self.thenar_centre = np.asarray(thenar["centre"], dtype=np.float64)
        self.thenar_radii = np.asarray(thenar["radii"], dtype=np.float64)
        ang = np.deg2rad(thenar["angle"])
        self.thenar_rot = np.array(
            [[np.cos(ang), -np.sin(ang), 0], [np.sin(ang), np.cos(ang), 0], [0, 0, 1]]
        )
        self.blend = design["mesh"]["blend"]

    def palm(self, p: np.ndarray) -> np.ndarray:
        d_xy = _polygon_sdf(p[:, :2], self.outline)
        half = np.interp(p[:, 1], self.thickness_y, self.thickness_v)
        d_z = np.abs(p[:, 2]) - half
        w = np.stack([d_xy, d_z], axis=1)
        slab = np.minimum(w.max(axis=1), 0.0) + np.linalg.norm(np.maximum(w, 0.0), axis=1)
        return slab - self.rounding

    def thenar(self, p: np.ndarray) -> np.ndarray:
        q = (p - self.thenar_centre) @ self.thenar_rot
        # Scaled-sphere distance: exact on the surface, which is all the level set needs.
        k = np.linalg.norm(q / self.thenar_radii, axis=1)
        return (k - 1.0) * self.thenar_radii.min()

    def bones(self, p: np.ndarray) -> np.ndarray:
        """Distance to each of the 15 finger bone capsules: (P, 3) -> (P, 15)."""
        s = self.skeleton
        out = np.empty((len(p), 15))
        for f in range(5):
            base = 1 + 4 * f
            for k in range(3):
                a = s.joints[base + k]
                b = s.joints[base + k + 1] if k < 2 else s.axis_ends[f]
                out[:, 3 * f + k] = _tapered_capsule(
                    p, a, b, s.radii[base + k], s.radii[base + k + 1]
                )
        return out

    def parts(self, p: np.ndarray) -> np.ndarray:
        """Distance to every part: (P, 17) columns palm, thenar, then the 15 bones (thumb first)."""
        return np.concatenate([self.palm(p)[:, None], self.thenar(p)[:, None], self.bones(p)], 1)

    def __call__(self, p: np.ndarray) -> np.ndarray:
        parts = self.parts(p)
        body = _smooth_min(parts[:, 0], parts[:, 1], 0.008)
        fingers = parts[:, 2:].min(axis=1)
        return _smooth_min(body, fingers, self.blend)

    def outline_points(self) -> np.ndarray:
        """The palm outline's corners as 3D points (for bounding boxes)."""
        return np.concatenate([self.outline, np.zeros((len(self.outline), 1))], axis=1)

    def gradient(self, p: np.ndarray, h: float = 1e-4) -> np.ndarray:
        g = np.stack([(self(p + h * e) - self(p - h * e)) / (2 * h) for e in np.eye(3)], axis=1)
        return unit(g)


# ----------------------------------------------------------------------------------------------
# Meshing.


def _mesh_sdf(sdf: HandSDF, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    s = sdf.skeleton
    pts = np.concatenate([s.joints, s.axis_ends, sdf.outline_points()], axis=0)
    lo = pts.min(axis=0) - 0.03
    hi = pts.max(axis=0) + 0.03
    axes = [np.arange(lo[i], hi[i], spacing) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    values = np.concatenate([sdf(chunk) for chunk in np.array_split(grid, 32)])
    volume = values.reshape(len(axes[0]), len(axes[1]), len(axes[2]))
    verts, faces, _, _ = marching_cubes(volume, level=0.0, spacing=(spacing,) * 3)
    return verts + lo, faces.astype(np.int64)


def _signed_volume(v: np.ndarray, f: np.ndarray) -> float:
    return float(np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6)


def vertex_neighbours(faces: np.ndarray, n: int) -> sp.csr_matrix:
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    adj = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64)
    return adj


def _vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, f[:, k], fn)
    return unit(vn)


def _face_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)


def _relax(v: np.ndarray, f: np.ndarray, sdf: HandSDF, iterations: int) -> np.ndarray:
    """Tangential Laplacian smoothing with projection back onto the surface: evens out the
    triangle sizes left by decimation without shrinking the hand.

    Decimation leaves long slivers on flat areas; a plain Laplacian step can push a vertex past
    its neighbours and fold the surface, so moves that turn a face by more than ~45 degrees are
    undone for that face's vertices.
    """
    adj = vertex_neighbours(f, len(v))
    inv_deg = 1.0 / np.asarray(adj.sum(axis=1)).ravel()
    for _ in range(iterations):
        n = _vertex_normals(v, f)
        step = (adj @ v) * inv_deg[:, None] - v
        step -= (step * n).sum(axis=1, keepdims=True) * n
        moved = v + 0.5 * step
        for _ in range(2):
            moved = moved - sdf(moved)[:, None] * sdf.gradient(moved)
        before = _face_normals(v, f)
        for _ in range(20):
            folded = (before * _face_normals(moved, f)).sum(axis=1) < 0.7
            if not folded.any():
                break
            stuck = np.unique(f[folded])
            moved[stuck] = v[stuck]
        v = moved
    return v


def build_mesh(design: dict, sdf: HandSDF) -> tuple[np.ndarray, np.ndarray]:
    spec = design["mesh"]
    v, f = _mesh_sdf(sdf, spec["grid_spacing"])
    target_faces = 2 * spec["target_vertices"] - 4  # closed genus-0 surface: F = 2V - 4
    v, f = fast_simplification.simplify(
        v.astype(np.float64), f, target_reduction=1.0 - target_faces / len(f), agg=5
    )
    v = np.asarray(v, dtype=np.float64)
    f = np.asarray(f, dtype=np.int64)
    if _signed_volume(v, f) < 0:
        f = f[:, ::-1].copy()
    v = _relax(v, f, sdf, spec["relax_iterations"])
    return v, f
