"""Old import paths of modules that moved into packages: they keep working, with a warning.

`MOVED` maps each old name to its new one. `install` (called by `handshape/__init__.py`) puts a
finder on `sys.meta_path` that answers an old name by importing the new module and handing back
that very module object (so `handshape.metrics is handshape.evaluation.metrics`), after a
DeprecationWarning naming the new path, attributed to the line that imported the old one.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

MOVED: dict[str, str] = {
    "handshape.atomic": "handshape.safeio.atomic",
    "handshape.safe_pickle": "handshape.safeio.pickles",
    "handshape.metrics": "handshape.evaluation.metrics",
    "handshape.protocols": "handshape.evaluation.protocols",
    "handshape.predictions": "handshape.evaluation.predictions",
    "handshape.published": "handshape.evaluation.published",
    "handshape.pck_figure": "handshape.evaluation.pck_figure",
    "handshape.evaluate": "handshape.evaluation.evaluate",
    "handshape.benchmarks": "handshape.evaluation.benchmarks",
    "handshape.figures": "handshape.evaluation.figures",
    "handshape.losses": "handshape.lit.losses",
    "handshape.pipeline": "handshape.lit.pipeline",
    "handshape.export": "handshape.inference.export",
}

__all__ = ["MOVED", "install"]


class _MovedLoader(importlib.abc.Loader):
    """Loads an old name as the module at its new one."""

    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} has moved to {self.new}; import {self.new} instead",
            DeprecationWarning,
            stacklevel=2,  # warnings skips the import machinery's frames: the importer
        )
        module = importlib.import_module(self.new)
        self._spec = module.__spec__  # the import system sets module.__spec__ to the old one
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._spec  # already executed under its new name: restore its spec


class _MovedFinder(importlib.abc.MetaPathFinder):
    """Finds the old names of `MOVED` (nothing else)."""

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedLoader(new))


def install() -> None:
    """Put the finder on `sys.meta_path` once (again after a reload of the package)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
