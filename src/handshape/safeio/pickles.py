"""Restricted unpickling: load a pickle that may only name the globals its caller allows.

Unpickling runs whatever callables a file names, so user files (MANO models, RHD annotations) are
never given to `pickle.load`. `load_restricted` resolves a global only through the caller's
allow-list (and an optional resolver for inert placeholders); any other global is refused with an
error naming the file and the global, before anything it names is imported or called.

Python 2 pickles store numpy array data as Python 2 `str` objects; they are read with
``encoding='latin1'``, which maps those bytes one to one (any other encoding corrupts them).
Python 2 global names (``copy_reg``, ``__builtin__``) are renamed to Python 3 ones before lookup.
"""

from __future__ import annotations

import _compat_pickle
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = [
    "NUMPY_GLOBALS",
    "PickleFileError",
    "UnsafePickleError",
    "guarded",
    "load_restricted",
]

Resolver = Callable[[str, str], Any]
"""(module, name) -> an object to use for that global, or None to refuse it."""


class PickleFileError(ValueError):
    """A pickle is unreadable: not a pickle, truncated, or holding malformed objects."""


class UnsafePickleError(PickleFileError):
    """A pickle names a global that is not allowed (it could run code), so loading was refused."""


class _Guarded:
    """Wraps an allowed Python function so that a pickle can call it but not modify it.

    The BUILD opcode sets attributes on whatever object is on the stack, a global included; on a
    plain function that could rewrite its __defaults__ or __kwdefaults__ for the whole process.
    Builtin functions and C types are immutable and need no wrapper.
    """

    __slots__ = ("_func",)

    def __init__(self, func: Callable[..., Any]) -> None:
        self._func = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._func(*args, **kwargs)

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError(f"pickle tried to modify {self._func.__name__}")


def guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` wrapped so that a pickle may call it but never set attributes on it."""
    return _Guarded(func)


def _safe_latin1_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Replacement for _codecs.encode, which Python 3 protocol-2 pickles use to store bytes.

    Only the latin-1 round trip that pickle itself emits is honoured; other codecs are refused
    rather than reasoned about.
    """
    if not isinstance(obj, str) or encoding.replace("-", "").lower() != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return obj.encode("latin-1", errors)


# Take numpy's own helpers from what numpy itself pickles, so that the module that holds them
# (numpy.core in 1.x, numpy._core in 2.x) never has to be imported by name.
_NUMPY_RECONSTRUCT: Callable[..., np.ndarray] = np.zeros(1).__reduce__()[0]
_NUMPY_SCALAR: Callable[..., Any] = np.float64(0).__reduce__()[0]
_NUMPY_FROMBUFFER: Callable[..., Any] = np.zeros(1).__reduce_ex__(5)[0]


def _safe_numpy_reconstruct(cls: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's _reconstruct, restricted to plain ndarrays (no arbitrary subclass __new__)."""
    if cls is not np.ndarray:
        raise pickle.UnpicklingError(f"numpy _reconstruct of {cls!r}")
    return _NUMPY_RECONSTRUCT(cls, shape, dtype)


_NUMPY_MODULES = (
    "numpy.core.multiarray",
    "numpy._core.multiarray",
    "numpy.core._multiarray_umath",
    "numpy._core._multiarray_umath",
)
_NUMPY_NUMERIC_MODULES = ("numpy.core.numeric", "numpy._core.numeric")

NUMPY_GLOBALS: Mapping[tuple[str, str], Any] = MappingProxyType(
    {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        **{
            (module, "_reconstruct"): _Guarded(_safe_numpy_reconstruct) for module in _NUMPY_MODULES
        },
        **{(module, "scalar"): _NUMPY_SCALAR for module in _NUMPY_MODULES},
        ("_codecs", "encode"): _Guarded(_safe_latin1_encode),
        # Protocol 5 stores contiguous arrays through _frombuffer.
        **{
            (module, "_frombuffer"): _Guarded(_NUMPY_FROMBUFFER)
            for module in _NUMPY_NUMERIC_MODULES
        },
    }
)
"""The globals plain numpy arrays, dtypes and scalars need, in every protocol and numpy version
(read-only: callers build their own allow-lists from it).

Containers (dict, list, tuple), str, bytes, int, float and bool are opcodes, not globals."""


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """The Python 3 spelling of a global from a Python 2 pickle (copy_reg, __builtin__, ...).

    The default find_class applies this renaming itself, but an override receives raw names; the
    table is the one the pickle module uses, and renaming only changes which entry is looked up.
    """
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allowed globals, never imports anything."""

    def __init__(
        self,
        file: Any,
        path: Path,
        allowed: Mapping[tuple[str, str], Any],
        resolve: Resolver | None,
        what: str,
    ) -> None:
        super().__init__(file, encoding="latin1")
        self._path, self._allowed, self._resolve, self._what = path, allowed, resolve, what

    def find_class(self, module: str, name: str) -> Any:
        stored = f"{module}.{name}"
        module, name = _python3_name(module, name)
        found = self._allowed.get((module, name))
        if found is None and self._resolve is not None:
            found = self._resolve(module, name)
        if found is not None:
            return found
        renamed = "" if stored == f"{module}.{name}" else f" (stored as '{stored}')"
        raise UnsafePickleError(
            f"{self._path}: refusing to unpickle global '{module}.{name}'{renamed}: only "
            f"{self._what} are allowed in this file"
        )


def load_restricted(
    path: Path,
    allowed: Mapping[tuple[str, str], Any] = NUMPY_GLOBALS,
    resolve: Resolver | None = None,
    what: str = "numpy arrays",
) -> Any:
    """Unpickle `path` resolving globals only through `allowed` (then `resolve`).

    Args:
        path: the pickle (any protocol; Python 2 pickles are read with encoding='latin1').
        allowed: (module, name) in Python 3 spelling -> the object to use for it.
        resolve: consulted for globals not in `allowed`; returns None to refuse.
        what: names what is allowed, for the refusal message.

    Raises:
        FileNotFoundError: no such file.
        UnsafePickleError: the pickle names a global not allowed (nothing it names is run).
        PickleFileError: not a pickle, truncated or malformed; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        with path.open("rb") as f:
            return _RestrictedUnpickler(f, path, allowed, resolve, what).load()
    except PickleFileError:
        raise
    except RecursionError:
        raise PickleFileError(f"{path}: pickle is nested too deeply") from None
    except (pickle.UnpicklingError, EOFError) as err:
        raise PickleFileError(f"{path}: not a valid pickle or truncated ({err})") from err
    except (
        ValueError, TypeError, AttributeError, IndexError, KeyError, UnicodeError, OverflowError,
        MemoryError,
    ) as err:  # fmt: skip
        # Garbage bytes make the unpickler fail in many ways; none of them is the caller's fault.
        raise PickleFileError(
            f"{path}: not a valid pickle or truncated ({type(err).__name__}: {err})"
        ) from err
