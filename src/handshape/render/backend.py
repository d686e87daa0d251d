"""Headless OpenGL platform selection and numpy-2 compatibility for pyrender.

PyOpenGL reads ``PYOPENGL_PLATFORM`` exactly once, when ``OpenGL`` is first imported,
and pyrender's ``OffscreenRenderer`` reads it again when it creates its context. Without
the variable pyrender falls back to pyglet, which needs an X display, so on a headless
machine the variable must be set before the first ``import pyrender``. Use
:func:`import_pyrender` instead of a bare import to get this right.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
import warnings
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["configure_headless", "import_pyrender", "install_numpy_shims"]

# Sonames to try when ``find_library`` comes back empty (it shells out to ldconfig,
# which minimal containers sometimes lack even though the library itself is present).
_EGL_SONAMES: tuple[str, ...] = ("libEGL.so.1", "libEGL.so")
_OSMESA_SONAMES: tuple[str, ...] = ("libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so")

_INSTALL_HINT = (
    "No headless OpenGL library could be loaded. On Debian/Ubuntu install EGL with\n"
    "    apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 libgl1\n"
    "or, as a software-only fallback, OSMesa with\n"
    "    apt-get install libosmesa6 && pip install 'PyOpenGL>=3.1.10'\n"
    "(pyrender pins PyOpenGL 3.1.0, whose OSMesa support fails here). Alternatively set\n"
    "PYOPENGL_PLATFORM yourself to force a platform."
)


def _can_load(name: str, sonames: tuple[str, ...]) -> bool:
    """Return True if the shared library ``name`` (e.g. ``"EGL"``) can be dlopen'ed."""
    candidates: list[str] = []
    found = ctypes.util.find_library(name)
    if found:
        candidates.append(found)
    candidates.extend(sonames)
    for candidate in candidates:
        try:
            ctypes.CDLL(candidate)
        except OSError:
            continue
        return True
    return False


def configure_headless() -> str:
    """Choose a headless PyOpenGL platform and export it as ``PYOPENGL_PLATFORM``.

    A value the user already set is respected as is (lower-cased only for the return
    value), so ``PYOPENGL_PLATFORM=osmesa`` can force software rendering even where EGL
    exists. Otherwise EGL is preferred (GPU or Mesa llvmpipe, fast) over OSMesa.

    Must run before ``OpenGL``/``pyrender`` are first imported; calling it later still
    sets the variable but warns, because PyOpenGL has already bound its platform.

    Returns:
        The platform name in effect, e.g. ``"egl"``.

    Raises:
        RuntimeError: If neither libEGL nor libOSMesa can be loaded; the message names
            the Debian packages to install.
    """
    explicit = os.environ.get("PYOPENGL_PLATFORM")
    if explicit:
        return explicit.lower()

    if _can_load("EGL", _EGL_SONAMES):
        platform = "egl"
    elif _can_load("OSMesa", _OSMESA_SONAMES):
        platform = "osmesa"
    else:
        raise RuntimeError(_INSTALL_HINT)

    if "OpenGL" in sys.modules:
        warnings.warn(
            f"PyOpenGL was imported before configure_headless(); PYOPENGL_PLATFORM={platform}"
            " may not take effect. Import handshape.render first.",
            RuntimeWarning,
            stacklevel=2,
        )
    os.environ["PYOPENGL_PLATFORM"] = platform
    return platform


def install_numpy_shims() -> None:
    """Restore numpy aliases that pyrender still uses but numpy 2 removed.

    pyrender 0.1.45 computes ``Mesh.bounds`` with ``np.infty``, an alias dropped in
    numpy 2.0; without it every scene with a mesh fails with AttributeError. The alias
    is only added when missing, so numpy 1.x is left untouched.
    """
    if not hasattr(np, "infty"):
        np.infty = np.inf  # type: ignore[attr-defined]


def _share_egl_display() -> None:
    """Stop one pyrender EGL context from tearing down every other one.

    pyrender 0.1.45's ``EGLPlatform.delete_context`` calls ``eglTerminate`` on the
    display, but all contexts of a device share one EGLDisplay, so closing any renderer
    invalidates every other live renderer (the next ``eglMakeCurrent`` fails with
    EGL_BAD_DISPLAY). The patch reference-counts contexts and only terminates the display
    when the last one is deleted; earlier deletions just destroy their own context.
    """
    from pyrender.platforms import egl

    platform_cls: Any = egl.EGLPlatform
    if getattr(platform_cls, "_handshape_shared_display", False):
        return
    original_init = platform_cls.init_context
    original_delete = platform_cls.delete_context
    lock = threading.Lock()
    live = 0

    def init_context(self: Any) -> None:
        nonlocal live
        original_init(self)
        with lock:
            live += 1

    def delete_context(self: Any) -> None:
        nonlocal live
        if self._egl_display is None:
            return
        with lock:
            live = max(live - 1, 0)
            last = live == 0
        if last:
            original_delete(self)
            return
        from OpenGL.EGL import EGL_NO_CONTEXT, EGL_NO_SURFACE, eglDestroyContext, eglMakeCurrent

        if self._egl_context is not None:
            # Release first: a destroyed context that is still current lingers until the
            # thread switches away from it.
            eglMakeCurrent(self._egl_display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT)
            eglDestroyContext(self._egl_display, self._egl_context)
            self._egl_context = None
        self._egl_display = None

    platform_cls.init_context = init_context
    platform_cls.delete_context = delete_context
    platform_cls._handshape_shared_display = True


def import_pyrender() -> ModuleType:
    """Configure a headless platform, apply the compatibility patches, import pyrender.

    Patches: the numpy-2 aliases (:func:`install_numpy_shims`), pyglet headless (pyrender's
    viewer needs no X libraries then) and, on EGL, shared-display reference counting so several
    renderers can coexist (see ``_share_egl_display``).

    Returns:
        The imported ``pyrender`` module.
    """
    platform = configure_headless()
    install_numpy_shims()
    if platform == "egl":
        # pyrender imports its viewer, whose pyglet window class loads X11 libraries unless
        # pyglet is headless (on EGL): a server without them (a GPU image) fails at import.
        import pyglet

        pyglet.options["headless"] = True
    import pyrender

    if platform == "egl":
        _share_egl_display()
    return pyrender


# Applied on import as well: pyrender may be imported elsewhere after this module (e.g. by
# a notebook), and the alias is harmless on any numpy version.
install_numpy_shims()
