"""Offscreen rendering of a triangle mesh to RGB and metric depth.

Conventions: camera poses are world-from-camera 4x4 matrices in the OpenGL convention
(camera looks down its -z axis, +y is up, +x is right), which is what pyrender expects.
Depth is the camera-space z distance in metres (not the ray length), 0 where no surface
was hit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import trimesh

from handshape.render.backend import import_pyrender

__all__ = [
    "DEFAULT_AMBIENT",
    "DEFAULT_LIGHTS",
    "SKIN_COLOR",
    "ZFAR",
    "ZNEAR",
    "CameraLight",
    "MeshRenderer",
    "look_at",
]

Color = tuple[float, float, float]

#: A light-medium skin tone as sRGB in [0, 1] (what a colour picker shows).
SKIN_COLOR: Color = (0.87, 0.68, 0.58)

# Hands are seen from a few cm to a couple of metres. A 1 cm near plane keeps the 24-bit
# depth buffer precise (about 0.4 um at 25 cm) while still allowing close-ups.
ZNEAR: float = 0.01
ZFAR: float = 10.0

#: Ambient intensity; lifts the shadowed side so finger gaps never go pure black.
DEFAULT_AMBIENT: float = 0.3


@dataclass(frozen=True)
class CameraLight:
    """A directional light attached to the camera.

    Lights move with the camera so every viewpoint of a contact sheet is lit the same way
    and no view ends up looking at the unlit side of the hand.

    Attributes:
        direction: (3,) direction the light travels, in camera coordinates (OpenGL: +x
            right, +y up, -z forward). ``(0, 0, -1)`` is a headlight.
        intensity: Light intensity in pyrender units (roughly lux for directional lights).
        color: RGB in [0, 1], used as a linear light colour.
    """

    direction: tuple[float, float, float]
    intensity: float
    color: Color = (1.0, 1.0, 1.0)


#: Key light from the upper left behind the viewer plus a weaker fill from the lower
#: right: the classic two-light rig that gives the fingers shape without harsh shadows.
DEFAULT_LIGHTS: tuple[CameraLight, ...] = (
    CameraLight(direction=(0.45, -0.55, -1.0), intensity=2.2),
    CameraLight(direction=(-0.7, 0.25, -0.6), intensity=0.8),
)


def _normalize(v: npt.ArrayLike, what: str) -> np.ndarray:
    """Return ``v`` as a unit float64 vector, rejecting (near) zero vectors."""
    arr = np.asarray(v, dtype=np.float64).reshape(3)
    norm = float(np.linalg.norm(arr))
    if norm < 1e-12:
        raise ValueError(f"{what} must be a non-zero vector, got {arr.tolist()}")
    return arr / norm


def _frame_from_z(z_axis: np.ndarray, up_hint: np.ndarray) -> np.ndarray:
    """Return a (3, 3) right-handed rotation whose third column is ``z_axis``.

    The second column is as close to ``up_hint`` as possible. If ``up_hint`` is parallel
    to ``z_axis`` another world axis is used, so callers never get a NaN matrix.
    """
    x_axis = np.cross(up_hint, z_axis)
    if np.linalg.norm(x_axis) < 1e-6:
        # Looking straight along "up": any perpendicular choice is as good as another,
        # pick the world axis least aligned with the view for numerical stability.
        fallback = np.eye(3)[int(np.argmin(np.abs(z_axis)))]
        x_axis = np.cross(fallback, z_axis)
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(z_axis, x_axis)
    return np.column_stack([x_axis, y_axis, z_axis])


def look_at(
    eye: npt.ArrayLike,
    target: npt.ArrayLike,
    up: npt.ArrayLike = (0.0, 1.0, 0.0),
) -> np.ndarray:
    """Build a world-from-camera pose (OpenGL convention) looking from ``eye`` at ``target``.

    Args:
        eye: (3,) camera centre in world coordinates.
        target: (3,) point that projects to the principal point.
        up: (3,) approximate world up; the camera's +y is ``up`` orthogonalised against
            the viewing direction. If ``up`` is parallel to the view direction a
            perpendicular axis is chosen instead of failing.

    Returns:
        (4, 4) float64 pose whose -z axis points from ``eye`` to ``target``.
    """
    eye_arr = np.asarray(eye, dtype=np.float64).reshape(3)
    target_arr = np.asarray(target, dtype=np.float64).reshape(3)
    z_axis = _normalize(eye_arr - target_arr, "eye - target")
    pose = np.eye(4)
    pose[:3, :3] = _frame_from_z(z_axis, _normalize(up, "up"))
    pose[:3, 3] = eye_arr
    return pose


def _light_pose(direction: Sequence[float]) -> np.ndarray:
    """Return a (4, 4) camera-from-light pose for a light travelling along ``direction``.

    pyrender's directional lights shine along their node's -z axis.
    """
    z_axis = -_normalize(direction, "light direction")
    pose = np.eye(4)
    pose[:3, :3] = _frame_from_z(z_axis, np.array([0.0, 1.0, 0.0]))
    return pose


def _check_rgb(color: Sequence[float], what: str) -> list[float]:
    """Validate an RGB triple in [0, 1] and return it as a list."""
    rgb = [float(c) for c in color]
    if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
        raise ValueError(f"{what} must be 3 floats in [0, 1], got {tuple(color)}")
    return rgb


def srgb_to_linear(rgb: Sequence[float]) -> list[float]:
    """Convert sRGB components in [0, 1] to linear ones (IEC 61966-2-1 transfer curve).

    pyrender shades in linear space and applies a 1/2.2 gamma on output, so passing an
    sRGB colour straight through as the base colour would render it washed out.
    """
    return [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]


class MeshRenderer:
    """Reusable headless renderer for single triangle meshes.

    The OpenGL context is created lazily on the first :meth:`render` (about 0.1 s) and
    reused afterwards (milliseconds per frame on a GPU, tens of ms on CPU-only Mesa
    llvmpipe), so keep one instance around for batches.
    Instances are not thread-safe: an OpenGL context is current on one thread at a time.

    Example:
        >>> with MeshRenderer(256, 256) as r:  # doctest: +SKIP
        ...     rgb, depth = r.render(verts, faces, look_at((0, 0, 0.4), (0, 0, 0)), yfov=0.6)
    """

    def __init__(self, width: int = 256, height: int = 256) -> None:
        """Remember the viewport size; no OpenGL work happens until the first render.

        Args:
            width: Image width in pixels.
            height: Image height in pixels.
        """
        self._width, self._height = self._check_size(width, height)
        self._pyrender: Any | None = None
        self._renderer: Any | None = None

    @staticmethod
    def _check_size(width: int, height: int) -> tuple[int, int]:
        if int(width) <= 0 or int(height) <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        return int(width), int(height)

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return self._width

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return self._height

    def resize(self, width: int, height: int) -> None:
        """Change the output size; the existing context is kept (framebuffers are resized).

        Args:
            width: New image width in pixels.
            height: New image height in pixels.
        """
        self._width, self._height = self._check_size(width, height)
        if self._renderer is not None:
            self._renderer.viewport_width = self._width
            self._renderer.viewport_height = self._height

    def _ensure_renderer(self) -> Any:
        """Create the pyrender OffscreenRenderer on first use and return it."""
        if self._renderer is None:
            self._pyrender = import_pyrender()
            self._renderer = self._pyrender.OffscreenRenderer(self._width, self._height)
        return self._renderer

    def _camera(self, K: npt.ArrayLike | None, yfov: float | None) -> Any:
        """Build a pyrender camera from intrinsics ``K`` (3, 3) or a vertical FOV in radians."""
        pyrender = self._pyrender
        assert pyrender is not None
        if (K is None) == (yfov is None):
            raise ValueError("pass exactly one of K (3x3 intrinsics) or yfov (radians)")
        if K is not None:
            k = np.asarray(K, dtype=np.float64)
            if k.shape != (3, 3):
                raise ValueError(f"K must have shape (3, 3), got {k.shape}")
            if abs(k[0, 1]) > 1e-9:
                # pyrender's IntrinsicsCamera has no skew term; silently dropping it
                # would shift the projection.
                raise ValueError("K with non-zero skew is not supported")
            # K follows the OpenCV convention (pixel (u, v) has its centre at integer
            # coordinates, so u = fx * x / z + cx is a pixel index), whereas pyrender
            # treats cx, cy as continuous window coordinates where pixel centres sit at
            # +0.5. Shifting here keeps renders aligned with joints projected by K.
            return pyrender.IntrinsicsCamera(
                fx=k[0, 0],
                fy=k[1, 1],
                cx=k[0, 2] + 0.5,
                cy=k[1, 2] + 0.5,
                znear=ZNEAR,
                zfar=ZFAR,
            )
        assert yfov is not None
        if not 0.0 < yfov < np.pi:
            raise ValueError(f"yfov must be in (0, pi) radians, got {yfov}")
        return pyrender.PerspectiveCamera(
            yfov=float(yfov), aspectRatio=self._width / self._height, znear=ZNEAR, zfar=ZFAR
        )

    def render(
        self,
        vertices: npt.ArrayLike,
        faces: npt.ArrayLike,
        camera_pose: npt.ArrayLike,
        K: npt.ArrayLike | None = None,
        yfov: float | None = None,
        color: Sequence[float] = SKIN_COLOR,
        lights: Sequence[CameraLight] | None = None,
        ambient: float = DEFAULT_AMBIENT,
        background: Sequence[float] = (1.0, 1.0, 1.0),
        double_sided: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Render one mesh from one camera.

        Args:
            vertices: (N, 3) float vertex positions in metres, world coordinates.
            faces: (F, 3) int vertex indices per triangle.
            camera_pose: (4, 4) world-from-camera pose, OpenGL convention (see
                :func:`look_at`).
            K: (3, 3) pinhole intrinsics in pixels (fx, fy, cx, cy; zero skew) for an
                image of this renderer's size, OpenCV convention: a camera-space point
                (x, y, z) (y down, z forward) lands on pixel column ``fx * x / z + cx``
                and row ``fy * y / z + cy``, pixel centres at integers. Mutually
                exclusive with ``yfov``.
            yfov: Vertical field of view in radians. Mutually exclusive with ``K``.
            color: sRGB in [0, 1] of the skin material (converted to linear for
                shading, because pyrender gamma-encodes its output).
            lights: Camera-attached directional lights; ``None`` uses
                :data:`DEFAULT_LIGHTS`, an empty sequence gives ambient light only.
            ambient: Grey ambient light intensity.
            background: sRGB in [0, 1] of pixels where nothing was hit; written as is.
            double_sided: Disable back-face culling so open meshes (e.g. a hand with an
                open wrist) or meshes with flipped winding do not show holes.

        Returns:
            ``(rgb, depth)``: rgb is (H, W, 3) uint8 and anti-aliased, so silhouette
            pixels blend with ``background``; depth is (H, W) float32 camera-space z in
            metres sampled at pixel centres, 0 where the background shows. Both are
            fresh, writable arrays.
        """
        verts = np.asarray(vertices, dtype=np.float64)
        tris = np.asarray(faces)
        if verts.ndim != 2 or verts.shape[1] != 3:
            raise ValueError(f"vertices must have shape (N, 3), got {verts.shape}")
        if tris.ndim != 2 or tris.shape[1] != 3 or not np.issubdtype(tris.dtype, np.integer):
            raise ValueError(f"faces must be an integer array of shape (F, 3), got {tris.shape}")
        pose = np.asarray(camera_pose, dtype=np.float64)
        if pose.shape != (4, 4):
            raise ValueError(f"camera_pose must have shape (4, 4), got {pose.shape}")

        offscreen = self._ensure_renderer()
        pyrender = self._pyrender
        assert pyrender is not None
        camera = self._camera(K, yfov)

        material = pyrender.MetallicRoughnessMaterial(
            baseColorFactor=[*srgb_to_linear(_check_rgb(color, "color")), 1.0],
            metallicFactor=0.0,
            # Skin is a dielectric with a soft sheen: ~0.6 keeps a faint highlight that
            # shows the curvature of the fingers without looking plastic.
            roughnessFactor=0.6,
            doubleSided=double_sided,
        )
        # process=False keeps vertex order and count identical to the input, so smooth
        # normals come from exactly the given topology (no vertex merging).
        tm = trimesh.Trimesh(vertices=verts, faces=tris, process=False)
        mesh = pyrender.Mesh.from_trimesh(tm, material=material, smooth=True)

        scene = pyrender.Scene(
            bg_color=[*_check_rgb(background, "background"), 1.0],
            ambient_light=[float(ambient)] * 3,
        )
        mesh_node = scene.add(mesh)
        scene.add(camera, pose=pose)
        for light in DEFAULT_LIGHTS if lights is None else lights:
            scene.add(
                pyrender.DirectionalLight(
                    color=_check_rgb(light.color, "light color"), intensity=light.intensity
                ),
                pose=pose @ _light_pose(light.direction),
            )

        rgb, _ = offscreen.render(scene)
        # pyrender's colour pass is 4x multisampled and its depth is resolved by taking
        # one sample, which sits off the pixel centre (e.g. (-0.125, -0.375) px on Mesa),
        # so the depth silhouette would be biased by a fraction of a pixel relative to K.
        # The segmentation path disables multisampling; its depth-only variant samples at
        # pixel centres and costs about a fifth of the shaded pass.
        seg_flags = pyrender.RenderFlags.DEPTH_ONLY | pyrender.RenderFlags.SEG
        depth = offscreen.render(scene, flags=seg_flags, seg_node_map={mesh_node: (1, 1, 1)})
        # pyrender hands back flipped views of read-only GL buffers; copy so callers can
        # modify the results and the buffers can be released.
        return (
            np.ascontiguousarray(rgb[..., :3], dtype=np.uint8).copy(),
            np.ascontiguousarray(depth, dtype=np.float32).copy(),
        )

    def close(self) -> None:
        """Release the OpenGL context; a later :meth:`render` creates a new one."""
        if self._renderer is not None:
            renderer, self._renderer = self._renderer, None
            renderer.delete()

    def __enter__(self) -> MeshRenderer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
