"""The renderer behind the synthetic data set: hand, forearm and objects, RGBA + depth + ids.

Drawn with a handful of raw GL calls (`handshape.render.direct`) in a context from pyrender's
platform layer: pyrender's own scene graph cost more Python per frame than the rasteriser
spent drawing. Single-sampled on purpose: 4x multisampling on the CPU (Mesa llvmpipe) doubles
the cost of a 256x256 frame, and its resolved depth sits a fraction of a pixel off the pixel
centres. Without it one pass gives colour, exact masks and metric depth sampled at pixel
centres; the border is softened later, when the render is composited over a background
(`handshape.data.compositing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from handshape.render.backend import import_pyrender
from handshape.render.direct import DirectDraw, projection_matrix
from handshape.render.offscreen import ZFAR, ZNEAR

# Part ids of the id map: the alpha channel of the render carries them (see `render_parts`).
BACKGROUND, HAND, FOREARM, OBJECT = 0, 1, 2, 3
_ALPHA_OF_ID = {HAND: 255, FOREARM: 170, OBJECT: 85}
# Alpha -> id by the nearest of those values (a rounding step off still decodes right).
_ID_OF_ALPHA = (4 - np.rint(np.arange(256) / 85.0)).clip(1, 3).astype(np.uint8)


@dataclass(frozen=True)
class Part:
    """One mesh of a scene: vertices (N, 3) in the OpenCV camera frame, faces (F, 3); albedo:
    (3,) or per vertex (N, 3), linear RGB; roughness; label: HAND, FOREARM or OBJECT."""

    vertices: np.ndarray
    faces: np.ndarray
    albedo: np.ndarray
    roughness: float
    label: int


@dataclass(frozen=True)
class Light:
    """A light attached to the camera (so every viewpoint is lit as designed).

    kind: "directional", "point" or "spot"; direction: (3,) where the light travels, in
    OpenGL camera coordinates (-z is forward); position: (3,) for point and spot lights, camera
    coordinates in metres; color: linear RGB in [0, 1]; intensity: pyrender units (lux for
    directional lights, candela for point and spot lights); cone: spot outer half-angle, rad;
    shadow: None if the light casts no shadow, 0 for a hard shadow, > 0 for a soft one whose
    penumbra has this radius in metres at the receiver (`handshape.render.direct`).
    """

    kind: str
    direction: tuple[float, float, float]
    color: tuple[float, float, float]
    intensity: float
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    cone: float = 0.6
    shadow: float | None = None


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals: (N, 3), (F, 3) -> (N, 3)."""
    v = vertices[faces]
    face_normals = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])  # length = 2 * area
    # bincount sums per vertex several times faster than np.add.at.
    n = len(vertices)
    normals = np.stack(
        [
            sum(np.bincount(faces[:, k], face_normals[:, c], minlength=n) for k in range(3))
            for c in range(3)
        ],
        axis=1,
    )
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-20)


class SyntheticRenderer:
    """Renders a hand mesh with the intrinsics of a crop: (rgba uint8, depth float32 metres).

    One OpenGL context per instance, created on first use; make one per worker process.
    shadow_map_size: the side, in texels, of the shadow map of each shadow-casting light.
    """

    def __init__(self, size: int, shadow_map_size: int = 512) -> None:
        self.size = int(size)
        self.shadow_map_size = int(shadow_map_size)
        self._pyrender: Any | None = None
        self._offscreen: Any | None = None
        self._direct: DirectDraw | None = None

    def _ensure(self) -> Any:
        if self._offscreen is None:
            self._pyrender = import_pyrender()
            # Only for its GL context (EGL or OSMesa); the drawing is DirectDraw's.
            self._offscreen = self._pyrender.OffscreenRenderer(self.size, self.size)
        return self._offscreen

    def render(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        K: np.ndarray,
        skin: tuple[float, float, float],
        lights: list[Light],
        ambient: np.ndarray,
        roughness: float = 0.6,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Render vertices given in the camera frame (OpenCV: x right, y down, z forward).

        vertices (N, 3) metres; faces (F, 3); K (3, 3) intrinsics of this size, pixel centres at
        integer coordinates; skin: linear RGB base colour; ambient: (3,) linear RGB.
        Returns rgba (S, S, 4) uint8 with alpha 255 on the hand and 0 elsewhere (colour 0 there),
        and depth (S, S) float32: camera z in metres at each pixel centre, 0 off the hand.
        """
        part = Part(vertices, faces, np.asarray(skin, np.float64), roughness, HAND)
        rgba, depth, _ = self.render_parts([part], K, lights, ambient)
        return rgba, depth

    def render_parts(
        self, parts: list[Part], K: np.ndarray, lights: list[Light], ambient: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render several meshes in one pass: (rgba (S, S, 4) uint8, depth (S, S) float32
        metres, ids (S, S) uint8 with the `Part.label` seen at each pixel, 0 for none).

        The id of each part travels in its vertices' alpha, which the shader writes to the
        framebuffer untouched (no blending): one pass gives colour, depth and the id map. The
        returned alpha is 255 wherever anything was drawn.
        """
        offscreen = self._ensure()
        offscreen._platform.make_current()  # another renderer may have drawn in between
        if self._direct is None:
            self._direct = DirectDraw(self.size, self.shadow_map_size)
        vertices = np.concatenate([self._vertex_data(part) for part in parts])
        starts = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
        faces = np.concatenate(
            [np.asarray(p.faces) + s for p, s in zip(parts, starts, strict=True)]
        )
        projection = projection_matrix(np.asarray(K, np.float64), self.size, ZNEAR, ZFAR)
        color, depth = self._direct.draw(
            vertices, faces, projection, list(lights), np.asarray(ambient), ZNEAR, ZFAR
        )
        depth = np.array(depth, dtype=np.float32)
        drawn = depth > 0
        rgba = np.array(color, dtype=np.uint8)
        ids = _ID_OF_ALPHA[rgba[..., 3]] * drawn
        rgba[..., :3] *= drawn[..., None]
        rgba[..., 3] = drawn * np.uint8(255)
        return rgba, depth, ids

    @staticmethod
    def _vertex_data(part: Part) -> np.ndarray:
        """(N, 11) float32: OpenGL camera-frame position, normal, albedo, id alpha, roughness."""
        # OpenCV camera frame -> OpenGL camera frame (the scene is built in the camera frame).
        gl = np.asarray(part.vertices, dtype=np.float64) * np.array([1.0, -1.0, -1.0])
        out = np.empty((len(gl), 11), np.float32)
        out[:, :3] = gl
        out[:, 3:6] = vertex_normals(gl, np.asarray(part.faces))
        out[:, 6:9] = part.albedo  # (3,) or (N, 3)
        out[:, 9] = _ALPHA_OF_ID[part.label] / 255.0
        out[:, 10] = part.roughness
        return out

    def close(self) -> None:
        self._direct = None  # its GL objects go with the context
        if self._offscreen is not None:
            offscreen, self._offscreen = self._offscreen, None
            offscreen.delete()

    def __enter__(self) -> SyntheticRenderer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
