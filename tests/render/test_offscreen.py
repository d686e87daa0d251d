"""Tests for the headless backend and MeshRenderer (renders take milliseconds)."""

from __future__ import annotations

import os
import sys
import types
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import trimesh

from handshape.render import backend
from handshape.render.offscreen import MeshRenderer, look_at

SIZE = 128
FOCAL = 300.0
RADIUS = 0.05
DISTANCE = 0.3
K = np.array([[FOCAL, 0.0, 64.0], [0.0, FOCAL, 64.0], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def renderer() -> Iterator[MeshRenderer]:
    # One context for the module: creating it costs far more than a frame.
    with MeshRenderer(SIZE, SIZE) as r:
        yield r


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    # 4 subdivisions keep the chord error (~0.05 mm) far below the 1 mm depth tolerance.
    return trimesh.creation.icosphere(subdivisions=4, radius=RADIUS)


def _render_sphere(
    renderer: MeshRenderer, sphere: trimesh.Trimesh, k: np.ndarray = K
) -> tuple[np.ndarray, np.ndarray]:
    pose = look_at((0.0, 0.0, DISTANCE), (0.0, 0.0, 0.0))
    return renderer.render(sphere.vertices, sphere.faces, pose, K=k)


def test_numpy_infty_shim_present_after_import() -> None:
    assert np.infty == np.inf  # type: ignore[attr-defined]


def test_configure_headless_respects_explicit_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYOPENGL_PLATFORM", "osmesa")
    # Even with EGL loadable, a user choice must win and stay untouched.
    assert backend.configure_headless() == "osmesa"
    assert os.environ["PYOPENGL_PLATFORM"] == "osmesa"


def test_configure_headless_prefers_egl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    monkeypatch.delitem(sys.modules, "OpenGL", raising=False)
    monkeypatch.setattr(backend, "_can_load", lambda name, sonames: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about before OpenGL is imported
        assert backend.configure_headless() == "egl"
    assert os.environ["PYOPENGL_PLATFORM"] == "egl"


def test_configure_headless_warns_when_opengl_already_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    monkeypatch.setitem(sys.modules, "OpenGL", types.ModuleType("OpenGL"))
    monkeypatch.setattr(backend, "_can_load", lambda name, sonames: True)
    with pytest.warns(RuntimeWarning, match="before configure_headless"):
        backend.configure_headless()


def test_configure_headless_falls_back_to_osmesa(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    monkeypatch.delitem(sys.modules, "OpenGL", raising=False)
    monkeypatch.setattr(backend, "_can_load", lambda name, sonames: name == "OSMesa")
    assert backend.configure_headless() == "osmesa"


def test_configure_headless_names_packages_when_nothing_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    monkeypatch.setattr(backend, "_can_load", lambda name, sonames: False)
    with pytest.raises(RuntimeError, match="libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1"):
        backend.configure_headless()


def test_look_at_points_minus_z_at_target() -> None:
    pose = look_at((0.2, 0.1, 0.3), (0.0, 0.05, 0.0))
    forward = -pose[:3, 2]
    expected = np.array([-0.2, -0.05, -0.3]) / np.linalg.norm([0.2, 0.05, 0.3])
    np.testing.assert_allclose(forward, expected, atol=1e-12)
    np.testing.assert_allclose(pose[:3, :3].T @ pose[:3, :3], np.eye(3), atol=1e-12)
    assert np.linalg.det(pose[:3, :3]) == pytest.approx(1.0)
    # Straight down the up vector must still give a valid rotation, not NaNs.
    assert np.isfinite(look_at((0.0, 1.0, 0.0), (0.0, 0.0, 0.0))).all()


def test_sphere_depth_at_centre(renderer: MeshRenderer, sphere: trimesh.Trimesh) -> None:
    rgb, depth = _render_sphere(renderer, sphere)
    assert rgb.shape == (SIZE, SIZE, 3) and rgb.dtype == np.uint8
    assert depth.shape == (SIZE, SIZE) and depth.dtype == np.float32
    assert depth[64, 64] == pytest.approx(DISTANCE - RADIUS, abs=1e-3)


def test_sphere_silhouette_matches_projected_disc(
    renderer: MeshRenderer, sphere: trimesh.Trimesh
) -> None:
    _, depth = _render_sphere(renderer, sphere)
    # The tangent cone of a sphere images to a disc of radius f * r / sqrt(d^2 - r^2).
    disc_radius = FOCAL * RADIUS / np.sqrt(DISTANCE**2 - RADIUS**2)
    area = np.count_nonzero(depth > 0)
    assert area == pytest.approx(np.pi * disc_radius**2, rel=0.03)


def test_silhouette_centred_on_principal_point(
    renderer: MeshRenderer, sphere: trimesh.Trimesh
) -> None:
    # K uses OpenCV pixel-centre conventions, so the optical axis hits pixel (cx, cy).
    k = K.copy()
    k[0, 2], k[1, 2] = 60.0, 70.0
    _, depth = _render_sphere(renderer, sphere, k)
    rows, cols = np.nonzero(depth > 0)
    assert cols.mean() == pytest.approx(60.0, abs=0.1)
    assert rows.mean() == pytest.approx(70.0, abs=0.1)


def test_rgb_foreground_and_background(renderer: MeshRenderer, sphere: trimesh.Trimesh) -> None:
    rgb, depth = _render_sphere(renderer, sphere)
    fg = depth > 0
    assert (rgb[fg].max(axis=1) > 0).all(), "every covered pixel must be lit"
    # Colour is anti-aliased, so only background pixels away from the edge are exactly
    # the white clear colour.
    near_fg = fg.copy()
    for axis in (0, 1):
        for shift in (-1, 1):
            near_fg |= np.roll(fg, shift, axis=axis)
    far_bg = ~near_fg
    assert far_bg.any()
    assert (rgb[far_bg] == 255).all()
    assert (rgb[fg].astype(int).sum(axis=1) < 3 * 255).all(), "sphere must not be white"


def test_yfov_camera_and_empty_view(renderer: MeshRenderer, sphere: trimesh.Trimesh) -> None:
    pose = look_at((0.0, 0.0, DISTANCE), (0.0, 0.0, 0.0))
    _, depth = renderer.render(sphere.vertices, sphere.faces, pose, yfov=np.radians(40))
    assert depth[SIZE // 2, SIZE // 2] == pytest.approx(DISTANCE - RADIUS, abs=1e-3)
    away = look_at((0.0, 0.0, DISTANCE), (0.0, 0.0, 1.0))  # looking away from the sphere
    rgb, depth = renderer.render(sphere.vertices, sphere.faces, away, yfov=np.radians(40))
    assert not depth.any()
    assert (rgb == 255).all()


def test_render_rejects_bad_camera_arguments(
    renderer: MeshRenderer, sphere: trimesh.Trimesh
) -> None:
    pose = np.eye(4)
    with pytest.raises(ValueError, match="exactly one"):
        renderer.render(sphere.vertices, sphere.faces, pose)
    with pytest.raises(ValueError, match="exactly one"):
        renderer.render(sphere.vertices, sphere.faces, pose, K=K, yfov=0.5)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        renderer.render(sphere.vertices[:, :2], sphere.faces, pose, K=K)


def test_two_renderers_coexist(renderer: MeshRenderer, sphere: trimesh.Trimesh) -> None:
    # Closing one renderer must not invalidate another one's context (shared EGL display).
    pose = look_at((0.0, 0.0, DISTANCE), (0.0, 0.0, 0.0))
    with MeshRenderer(32, 32) as other:
        _, small = other.render(sphere.vertices, sphere.faces, pose, yfov=0.6)
        _, big = renderer.render(sphere.vertices, sphere.faces, pose, yfov=0.6)
    assert small.shape == (32, 32) and big.shape == (SIZE, SIZE)
    _, big = renderer.render(sphere.vertices, sphere.faces, pose, yfov=0.6)
    assert big[SIZE // 2, SIZE // 2] == pytest.approx(DISTANCE - RADIUS, abs=1e-3)


def test_resize_and_close_reopen(sphere: trimesh.Trimesh) -> None:
    pose = look_at((0.0, 0.0, DISTANCE), (0.0, 0.0, 0.0))
    r = MeshRenderer(64, 48)
    try:
        rgb, depth = r.render(sphere.vertices, sphere.faces, pose, yfov=0.6)
        assert rgb.shape == (48, 64, 3) and depth.shape == (48, 64)
        r.resize(40, 30)
        rgb, depth = r.render(sphere.vertices, sphere.faces, pose, yfov=0.6)
        assert rgb.shape == (30, 40, 3) and depth.shape == (30, 40)
        r.close()
        r.close()  # idempotent
        _, depth = r.render(sphere.vertices, sphere.faces, pose, yfov=0.6)
        assert depth.any()
    finally:
        r.close()
