"""The renderer behind the synthetic data set: one hand, several lights, RGBA + depth.

Single-sampled on purpose. pyrender draws into a 4x multisampled framebuffer; on the CPU (Mesa
llvmpipe) that doubles the cost of a 256x256 frame, and its resolved depth sits a fraction of a
pixel off the pixel centres, which a second depth pass would have to correct. Without
multisampling one pass gives colour, an exact mask and metric depth sampled at pixel centres;
the hand's border is softened later, when it is composited over a background
(`handshape.data.compositing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from handshape.render.backend import import_pyrender
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
    directional lights, candela for point and spot lights); cone: spot outer half-angle, rad.
    """

    kind: str
    direction: tuple[float, float, float]
    color: tuple[float, float, float]
    intensity: float
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    cone: float = 0.6


def _pose_towards(direction: np.ndarray, position: np.ndarray) -> np.ndarray:
    """(4, 4) pose whose -z axis points along `direction`, placed at `position`."""
    z = -direction / np.linalg.norm(direction)
    helper = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    pose[:3, 3] = position
    return pose


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


def _single_sample(offscreen: Any) -> None:
    """Give pyrender's main framebuffer one sample per pixel instead of four."""
    from OpenGL.GL import (
        GL_DEPTH_COMPONENT24,
        GL_RENDERBUFFER,
        GL_RGBA,
        glBindRenderbuffer,
        glRenderbufferStorageMultisample,
    )

    renderer = offscreen._renderer
    original = renderer._configure_main_framebuffer

    def configure() -> None:
        fresh = renderer._main_fb is None or renderer._main_fb_dims != (
            renderer.viewport_width,
            renderer.viewport_height,
        )
        original()
        if fresh:
            w, h = renderer.viewport_width, renderer.viewport_height
            glBindRenderbuffer(GL_RENDERBUFFER, renderer._main_cb_ms)
            glRenderbufferStorageMultisample(GL_RENDERBUFFER, 0, GL_RGBA, w, h)
            glBindRenderbuffer(GL_RENDERBUFFER, renderer._main_db_ms)
            glRenderbufferStorageMultisample(GL_RENDERBUFFER, 0, GL_DEPTH_COMPONENT24, w, h)

    renderer._configure_main_framebuffer = configure


class SyntheticRenderer:
    """Renders a hand mesh with the intrinsics of a crop: (rgba uint8, depth float32 metres).

    One OpenGL context per instance, created on first use; make one per worker process.
    """

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self._pyrender: Any | None = None
        self._offscreen: Any | None = None

    def _ensure(self) -> Any:
        if self._offscreen is None:
            self._pyrender = import_pyrender()
            self._offscreen = self._pyrender.OffscreenRenderer(self.size, self.size)
            _single_sample(self._offscreen)
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

        The id of each part travels in its vertices' alpha, which an opaque primitive writes
        to the framebuffer untouched (pyrender blends only transparent ones): one pass gives
        colour, depth and the id map. The returned alpha is 255 wherever anything was drawn.
        """
        offscreen = self._ensure()
        pyrender = self._pyrender
        assert pyrender is not None
        scene = pyrender.Scene(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=list(ambient))
        # One primitive per roughness, not per part: pyrender's cost per primitive (buffers,
        # uniforms, lights bound again) is a good part of a frame on a CPU rasteriser.
        groups: dict[float, list[Part]] = {}
        for part in parts:
            groups.setdefault(float(part.roughness), []).append(part)
        for roughness, members in groups.items():
            scene.add(pyrender.Mesh([self._primitive(members, roughness)]))
        camera = pyrender.IntrinsicsCamera(
            fx=K[0, 0], fy=K[1, 1], cx=K[0, 2] + 0.5, cy=K[1, 2] + 0.5, znear=ZNEAR, zfar=ZFAR
        )
        scene.add(camera, pose=np.eye(4))
        for light in lights:
            pose = _pose_towards(np.asarray(light.direction, float), np.asarray(light.position))
            if light.kind == "directional":
                node = pyrender.DirectionalLight(color=light.color, intensity=light.intensity)
            elif light.kind == "point":
                node = pyrender.PointLight(color=light.color, intensity=light.intensity)
            elif light.kind == "spot":
                node = pyrender.SpotLight(
                    color=light.color,
                    intensity=light.intensity,
                    innerConeAngle=0.5 * light.cone,
                    outerConeAngle=light.cone,
                )
            else:
                raise ValueError(f"unknown light kind '{light.kind}'")
            scene.add(node, pose=pose)
        color, depth = offscreen.render(scene, flags=pyrender.RenderFlags.RGBA)
        depth = np.array(depth, dtype=np.float32)
        drawn = depth > 0
        rgba = np.array(color, dtype=np.uint8)
        ids = _ID_OF_ALPHA[rgba[..., 3]] * drawn
        rgba[..., :3] *= drawn[..., None]
        rgba[..., 3] = drawn * np.uint8(255)
        return rgba, depth, ids

    def _primitive(self, parts: list[Part], roughness: float) -> Any:
        """One pyrender primitive of several parts: albedo and id per vertex (COLOR_0)."""
        pyrender = self._pyrender
        assert pyrender is not None
        positions, normals, colours, faces, start = [], [], [], [], 0
        for part in parts:
            # OpenCV camera frame -> OpenGL camera frame (the scene is built in the camera frame).
            gl = np.asarray(part.vertices, dtype=np.float64) * np.array([1.0, -1.0, -1.0])
            rgba = np.empty((len(gl), 4), np.float32)
            rgba[:, :3] = part.albedo  # (3,) or (N, 3)
            rgba[:, 3] = _ALPHA_OF_ID[part.label] / 255.0
            positions.append(gl)
            normals.append(vertex_normals(gl, part.faces))
            colours.append(rgba)
            faces.append(np.asarray(part.faces) + start)
            start += len(gl)
        material = pyrender.MetallicRoughnessMaterial(
            baseColorFactor=[1.0, 1.0, 1.0, 1.0],
            metallicFactor=0.0,
            roughnessFactor=roughness,
            alphaMode="OPAQUE",
        )
        primitive = pyrender.Primitive(
            positions=np.concatenate(positions).astype(np.float32),
            normals=np.concatenate(normals).astype(np.float32),
            indices=np.concatenate(faces),
            color_0=np.concatenate(colours),
            material=material,
        )
        # The vertex alpha is a part id, not opacity: keep pyrender from drawing the primitive
        # as transparent (blended, depth-sorted), which it decides from that alpha alone. An
        # opaque primitive writes its alpha to the framebuffer untouched.
        primitive._is_transparent = False
        return primitive

    def close(self) -> None:
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
