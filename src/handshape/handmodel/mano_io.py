"""Read and write hand models in the official MANO pickle layout.

MANO ships as a Python 2 pickle that references chumpy and scipy.sparse classes. Unpickling a file
runs whatever callables it names, so user files are never given to `pickle.load`: the restricted
unpickler of `handshape.safeio.pickles`, with the allow-list below, resolves only numpy's array
reconstruction and a few harmless builtins, and replaces chumpy and scipy sparse classes with
inert placeholders that merely record their pickled state. Those placeholders are turned into
plain numpy arrays afterwards, which also means neither chumpy nor scipy has to be importable
(or even installed) to read a MANO file.

MANO orders its 16 kinematic joints wrist, index, middle, little, ring, thumb; handshape orders
them wrist, thumb, index, middle, ring, little (`handshape.joints`). The permutation
is applied here, at the file border, and nowhere else.
"""

from __future__ import annotations

import builtins
import pickle
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from handshape.handmodel.data import HandModelData
from handshape.joints import (
    KINEMATIC_PARENTS,
    MANO_TIP_VERTEX_IDS,
    MANO_TO_KINEMATIC,
    NUM_KINEMATIC,
)
from handshape.safeio import pickles
from handshape.safeio.atomic import atomic_write
from handshape.safeio.pickles import NUMPY_GLOBALS, PickleFileError, guarded, load_restricted

__all__ = [
    "MANO_ROOT_PARENT",
    "ModelFileError",
    "UnsafePickleError",
    "read_mano",
    "safe_load_pickle",
    "write_mano",
]

MANO_ROOT_PARENT = 4294967295
"""Parent id MANO stores for the root joint (uint32 -1, written into an int64 table)."""

MANO_NUM_VERTICES = 778

# A dense array built from a sparse matrix header is allocated before anything else is checked,
# so a hostile header claiming a huge shape must be refused up front (1e8 float64 = 800 MB).
_MAX_DENSE_ELEMENTS = 100_000_000

_KINEMATIC_TO_MANO: tuple[int, ...] = tuple(int(i) for i in np.argsort(MANO_TO_KINEMATIC))
"""Handshape kinematic joint k is MANO joint _KINEMATIC_TO_MANO[k]."""


class ModelFileError(PickleFileError):
    """A hand model file is unreadable: not a pickle, truncated, or not in the expected layout."""


class UnsafePickleError(ModelFileError, pickles.UnsafePickleError):
    """A pickle names a global that could execute code, so loading it was refused."""


# ---------------------------------------------------------------------------------------------
# Restricted unpickling
# ---------------------------------------------------------------------------------------------


class _Placeholder:
    """Inert stand-in for a foreign class: records constructor arguments and pickled state.

    A subclass is made per tolerated global so that the original name survives for
    error messages; no method of the original class is ever looked up or run.
    """

    global_name: ClassVar[str] = "?"

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> _Placeholder:
        # NEWOBJ calls only __new__ (REDUCE calls __new__ then the inherited no-op __init__), so
        # the attributes are set here for both routes.
        obj = super().__new__(cls)
        obj.args = args
        obj.kwargs = kwargs
        obj.state = None
        return obj

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def state_dict(self) -> dict[str, Any]:
        """The pickled instance attributes, merging the (dict, slots) pair pickle may store."""
        state = self.state
        if isinstance(state, tuple) and len(state) == 2:
            merged: dict[str, Any] = {}
            for part in state:
                if isinstance(part, dict):
                    merged.update(part)
            return merged
        return dict(state) if isinstance(state, dict) else {}


class _SparsePlaceholder(_Placeholder):
    """Stand-in for a scipy.sparse matrix or array class."""


class _ChumpyPlaceholder(_Placeholder):
    """Stand-in for any chumpy class."""


def _safe_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """Replacement for copyreg._reconstructor (protocol 0/1 and Python 2 pickles of objects).

    The real one calls base.__new__ and base.__init__ with arbitrary arguments; here only our
    placeholders may be created, and only from plain `object`.
    """
    if not (isinstance(cls, type) and issubclass(cls, _Placeholder)) or base is not object:
        raise pickle.UnpicklingError(f"copyreg._reconstructor called for {cls!r}")
    if state is not None:
        raise pickle.UnpicklingError("copyreg._reconstructor with a base-class state")
    return cls.__new__(cls)


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **NUMPY_GLOBALS,
    ("copyreg", "_reconstructor"): guarded(_safe_reconstructor),
    **{
        ("builtins", name): getattr(builtins, name)
        for name in ("object", "set", "frozenset", "bytearray", "bytes", "complex")
    },
    ("collections", "OrderedDict"): OrderedDict,
}


def _placeholder_resolver() -> Callable[[str, str], type[_Placeholder] | None]:
    """Resolve chumpy and scipy sparse classes to inert placeholders (one class per global)."""
    made: dict[str, type[_Placeholder]] = {}

    def resolve(module: str, name: str) -> type[_Placeholder] | None:
        # Every sparse format is captured (and refused later if not densifiable): those classes
        # are data containers, so the name only decides the error message, not the safety.
        is_sparse_module = module == "scipy.sparse" or module.startswith("scipy.sparse.")
        if is_sparse_module and name.endswith(("_matrix", "_array")):
            base: type[_Placeholder] = _SparsePlaceholder
        elif module == "chumpy" or module.startswith("chumpy."):
            base = _ChumpyPlaceholder
        else:
            return None
        key = f"{module}.{name}"
        if key not in made:
            made[key] = type(name, (base,), {"global_name": key})
        return made[key]

    return resolve


def _sparse_to_dense(obj: _SparsePlaceholder, path: Path) -> np.ndarray:
    """Densify a pickled scipy sparse matrix from its recorded attributes alone."""
    state = obj.state_dict()
    fmt = state.get("format") or type(obj).__name__[:3]
    shape = state.get("_shape", state.get("shape"))
    where = f"{path}: pickled {obj.global_name}"
    try:
        n_rows, n_cols = (int(s) for s in shape)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ModelFileError(f"{where} has no valid shape ({shape!r})") from None
    if n_rows < 0 or n_cols < 0 or n_rows * n_cols > _MAX_DENSE_ELEMENTS:
        raise ModelFileError(f"{where} has an unsupported shape {(n_rows, n_cols)}")
    try:
        data = np.asarray(state["data"])
        if fmt in ("csc", "csr"):
            indices = np.asarray(state["indices"], dtype=np.int64)
            indptr = np.asarray(state["indptr"], dtype=np.int64)
            n_outer = n_cols if fmt == "csc" else n_rows
            if indptr.shape != (n_outer + 1,) or np.any(np.diff(indptr) < 0) or indptr[0] != 0:
                raise ModelFileError(f"{where} has an inconsistent indptr")
            outer = np.repeat(np.arange(n_outer), np.diff(indptr))
            rows, cols = (indices, outer) if fmt == "csc" else (outer, indices)
        elif fmt == "coo":
            # Newer scipy keeps the index arrays as a 'coords' pair, older as 'row' and 'col'.
            row, col = state["coords"] if "coords" in state else (state["row"], state["col"])
            rows = np.asarray(row, dtype=np.int64)
            cols = np.asarray(col, dtype=np.int64)
        else:
            raise ModelFileError(f"{where} has unsupported sparse format {fmt!r}")
    except KeyError as err:
        raise ModelFileError(f"{where} lacks attribute {err.args[0]!r}") from None
    if not (data.ndim == rows.ndim == cols.ndim == 1 and len(data) == len(rows) == len(cols)):
        raise ModelFileError(f"{where} has mismatched data/index lengths")
    if np.any((rows < 0) | (rows >= n_rows) | (cols < 0) | (cols >= n_cols)):
        raise ModelFileError(f"{where} has indices outside its shape")
    dense = np.zeros((n_rows, n_cols), dtype=data.dtype)
    # Sparse matrices sum duplicate entries, so accumulate instead of assigning.
    np.add.at(dense, (rows, cols), data)
    return dense


def _chumpy_to_array(obj: _ChumpyPlaceholder, path: Path, memo: dict[int, Any]) -> np.ndarray:
    """A chumpy leaf variable (Ch) keeps its value in attribute 'x'; anything else is a graph."""
    x = _convert(obj.state_dict().get("x"), path, memo)
    if not isinstance(x, np.ndarray):
        raise ModelFileError(
            f"{path}: pickled chumpy object {obj.global_name} holds no plain array 'x' (it is "
            "probably a derived chumpy expression); convert the file with chumpy installed first"
        )
    return x


def _convert(obj: Any, path: Path, memo: dict[int, Any]) -> Any:
    """Replace placeholders by numpy arrays throughout dicts, lists, tuples and object arrays."""
    if isinstance(obj, (str, bytes, int, float, bool, complex, type(None))):
        return obj
    key = id(obj)
    if key in memo:
        return memo[key]
    out: Any
    if isinstance(obj, _SparsePlaceholder):
        out = _sparse_to_dense(obj, path)
    elif isinstance(obj, _ChumpyPlaceholder):
        out = _chumpy_to_array(obj, path, memo)
    elif isinstance(obj, dict):
        # Registered before recursing so self-referencing containers terminate.
        out = type(obj)() if isinstance(obj, OrderedDict) else {}
        memo[key] = out
        for k, v in obj.items():
            out[_convert(k, path, memo)] = _convert(v, path, memo)
    elif isinstance(obj, list):
        out = []
        memo[key] = out
        out.extend(_convert(v, path, memo) for v in obj)
    elif isinstance(obj, tuple):
        out = tuple(_convert(v, path, memo) for v in obj)
    elif isinstance(obj, np.ndarray) and obj.dtype == object:
        out = np.empty(obj.shape, dtype=object)
        memo[key] = out
        for index, value in np.ndenumerate(obj):
            out[index] = _convert(value, path, memo)
    else:
        out = obj
    memo[key] = out
    return out


def safe_load_pickle(path: Path) -> Any:
    """Load a pickle that may only contain numpy arrays, scipy sparse and chumpy arrays.

    Sparse matrices come back dense and chumpy variables as their value, both as numpy arrays,
    without importing scipy or chumpy. The restricted unpickling is `handshape.safeio.pickles`'s.

    Raises:
        FileNotFoundError: the file does not exist.
        UnsafePickleError: the pickle names any other global (it could run code when loaded).
        ModelFileError: the file is not a pickle, is truncated, or holds malformed objects.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"hand model file not found: {path}")
    try:
        raw = load_restricted(
            path,
            _ALLOWED_GLOBALS,
            _placeholder_resolver(),
            what="numpy arrays, scipy sparse matrices and chumpy arrays",
        )
    except pickles.UnsafePickleError as err:
        raise UnsafePickleError(str(err)) from err
    except PickleFileError as err:
        raise ModelFileError(str(err)) from err
    try:
        return _convert(raw, path, {})
    except ModelFileError:
        raise
    except RecursionError:
        raise ModelFileError(f"{path}: pickle is nested too deeply") from None
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as err:
        # Malformed placeholder state fails in many ways; none of them is the caller's fault.
        raise ModelFileError(f"{path}: malformed pickle ({type(err).__name__}: {err})") from err


# ---------------------------------------------------------------------------------------------
# MANO layout
# ---------------------------------------------------------------------------------------------


def _block_index(joint_order: Sequence[int], size: int) -> np.ndarray:
    """Column index that gathers the per-joint blocks (joints 1..15) in `joint_order[1:]`."""
    return np.concatenate([size * (j - 1) + np.arange(size) for j in joint_order[1:]])


# Reading gathers MANO blocks in handshape order; writing gathers handshape blocks in MANO order.
_POSE9_READ = _block_index(_KINEMATIC_TO_MANO, 9)
_POSE3_READ = _block_index(_KINEMATIC_TO_MANO, 3)
_POSE9_WRITE = _block_index(MANO_TO_KINEMATIC, 9)
_POSE3_WRITE = _block_index(MANO_TO_KINEMATIC, 3)


def _field(
    data: dict[str, Any], key: str, path: Path, shape: tuple[int | None, ...], dtype: type
) -> np.ndarray:
    """Fetch `data[key]` as an array of `dtype` whose shape matches (None = any size)."""
    if key not in data:
        raise ModelFileError(f"{path}: MANO file lacks key '{key}'")
    try:
        arr = np.asarray(data[key], dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"{path}: key '{key}' is not a numeric array ({err})") from None
    ok = arr.ndim == len(shape) and all(
        w is None or g == w for g, w in zip(arr.shape, shape, strict=True)
    )
    if not ok:
        want = "(" + ", ".join("*" if w is None else str(w) for w in shape) + ")"
        raise ModelFileError(f"{path}: key '{key}' has shape {arr.shape}, expected {want}")
    return arr


def _indices(arr: np.ndarray, key: str, path: Path, bound: int) -> np.ndarray:
    """Integer-valued, in-range vertex indices as int64."""
    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        raise ModelFileError(f"{path}: key '{key}' must hold integer indices")
    out = arr.astype(np.int64)
    if np.any((out < 0) | (out >= bound)):
        raise ModelFileError(f"{path}: key '{key}' has indices outside [0, {bound})")
    return out


def _parents_from_kintree(table: np.ndarray, path: Path) -> np.ndarray:
    """Handshape-order parents from MANO's kintree_table (row 0 parent ids, row 1 joint ids)."""
    ids = table[1]
    if sorted(ids.tolist()) != list(range(NUM_KINEMATIC)):
        raise ModelFileError(f"{path}: kintree_table row 1 is not a permutation of 0..15")
    mano_parent = np.empty(NUM_KINEMATIC, dtype=np.int64)
    mano_parent[ids] = table[0]
    parents = np.empty(NUM_KINEMATIC, dtype=np.int64)
    for mano_joint, mano_par in enumerate(mano_parent.tolist()):
        # Any id outside the joint range marks the root (MANO writes uint32 -1).
        is_root = not 0 <= mano_par < NUM_KINEMATIC
        parents[MANO_TO_KINEMATIC[mano_joint]] = -1 if is_root else MANO_TO_KINEMATIC[mano_par]
    if parents.tolist() != list(KINEMATIC_PARENTS):
        raise ModelFileError(
            f"{path}: kintree_table does not describe MANO's hand skeleton (after reordering to "
            f"handshape's joints the parents are {parents.tolist()}, expected "
            f"{list(KINEMATIC_PARENTS)})"
        )
    return parents


def _check_style(data: dict[str, Any], path: Path) -> None:
    """Refuse blend-shape conventions whose posedirs would mean something else."""
    for key, want in (("bs_style", "lbs"), ("bs_type", "lrotmin")):
        value = data.get(key, want)
        if not (isinstance(value, str) and value == want):
            raise ModelFileError(f"{path}: key '{key}' is {value!r}; only {want!r} is supported")


def read_mano(path: Path) -> HandModelData:
    """Read a MANO model pickle (official layout, or as written by `write_mano`).

    Joints are permuted from MANO's order into handshape's. Fingertip vertices come from the
    optional 'tip_vertex_ids' key (handshape's extension, thumb..little) or, for the 778-vertex
    MANO mesh, from `MANO_TIP_VERTEX_IDS`. 'hands_components' and 'hands_mean' are optional
    (identity basis and zero mean when absent).

    Raises:
        FileNotFoundError, UnsafePickleError, ModelFileError: see `safe_load_pickle`; a
            ModelFileError also names the missing or malformed key.
    """
    path = Path(path)
    data = safe_load_pickle(path)
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: expected a dict of MANO arrays, got {type(data).__name__}")
    _check_style(data, path)

    v_template = _field(data, "v_template", path, (None, 3), np.float64)
    n = v_template.shape[0]
    shapedirs = _field(data, "shapedirs", path, (n, 3, None), np.float64)
    posedirs = _field(data, "posedirs", path, (n, 3, 9 * (NUM_KINEMATIC - 1)), np.float64)
    j_regressor = _field(data, "J_regressor", path, (NUM_KINEMATIC, n), np.float64)
    weights = _field(data, "weights", path, (n, NUM_KINEMATIC), np.float64)
    kintree = _field(data, "kintree_table", path, (2, NUM_KINEMATIC), np.int64)
    faces = _indices(_field(data, "f", path, (None, 3), np.float64), "f", path, n)

    parents = _parents_from_kintree(kintree, path)
    kin_to_mano = list(_KINEMATIC_TO_MANO)

    if "tip_vertex_ids" in data:
        tips = _field(data, "tip_vertex_ids", path, (5,), np.float64)
        tip_vertex_ids = _indices(tips, "tip_vertex_ids", path, n)
    elif n == MANO_NUM_VERTICES:
        tip_vertex_ids = np.array(MANO_TIP_VERTEX_IDS, dtype=np.int64)
    else:
        raise ModelFileError(
            f"{path}: key 'tip_vertex_ids' is required for a mesh of {n} vertices (the built-in "
            f"fingertip ids only fit MANO's {MANO_NUM_VERTICES}-vertex mesh)"
        )

    extras: dict[str, Any] = {}
    if "hands_components" in data:
        components = _field(data, "hands_components", path, (None, 45), np.float64)
        extras["hands_components"] = components[:, _POSE3_READ]
    if "hands_mean" in data:
        extras["hands_mean"] = _field(data, "hands_mean", path, (45,), np.float64)[_POSE3_READ]
    if "shape_names" in data:
        names = data["shape_names"]
        if not isinstance(names, (list, tuple)) or not all(isinstance(s, str) for s in names):
            raise ModelFileError(f"{path}: key 'shape_names' must be a list of strings")
        if names and len(names) != shapedirs.shape[2]:
            raise ModelFileError(
                f"{path}: key 'shape_names' has {len(names)} names for "
                f"{shapedirs.shape[2]} shape coefficients"
            )
        extras["shape_names"] = tuple(names)

    return HandModelData(
        v_template=v_template,
        faces=faces,
        shapedirs=shapedirs,
        posedirs=posedirs[..., _POSE9_READ],
        j_regressor=j_regressor[kin_to_mano],
        weights=weights[:, kin_to_mano],
        tip_vertex_ids=tip_vertex_ids,
        parents=parents,
        **extras,
    )


def _mano_dict(model: HandModelData) -> dict[str, Any]:
    """The official MANO layout of `model`, joints in MANO's order."""
    # Imported here so that reading never needs scipy; only writing has to produce real classes.
    import scipy.sparse

    if np.asarray(model.parents).tolist() != list(KINEMATIC_PARENTS):
        raise ValueError(
            "write_mano needs handshape's standard hand skeleton; model.parents is "
            f"{np.asarray(model.parents).tolist()}"
        )
    mano_to_kin = list(MANO_TO_KINEMATIC)
    mano_parents = [
        MANO_ROOT_PARENT if model.parents[k] < 0 else _KINEMATIC_TO_MANO[int(model.parents[k])]
        for k in mano_to_kin
    ]
    kintree_table = np.array([mano_parents, list(range(NUM_KINEMATIC))], dtype=np.int64)
    return {
        "v_template": np.asarray(model.v_template),
        "shapedirs": np.asarray(model.shapedirs),
        "posedirs": np.asarray(model.posedirs)[..., _POSE9_WRITE],
        "J_regressor": scipy.sparse.csc_matrix(np.asarray(model.j_regressor)[mano_to_kin]),
        "weights": np.asarray(model.weights)[:, mano_to_kin],
        "kintree_table": kintree_table,
        "f": np.asarray(model.faces).astype(np.uint32),
        "hands_components": np.asarray(model.hands_components)[:, _POSE3_WRITE],
        "hands_mean": np.asarray(model.hands_mean)[_POSE3_WRITE],
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "tip_vertex_ids": np.asarray(model.tip_vertex_ids, dtype=np.int64),
        "shape_names": list(model.shape_names),
    }


def write_mano(model: HandModelData, path: Path) -> None:
    """Write `model` in the official MANO pickle layout (protocol 2), atomically.

    Joints are permuted into MANO's order, J_regressor is stored as a scipy csc_matrix and the
    root's parent as 4294967295, like the official files; 'tip_vertex_ids' (thumb..little) and
    'shape_names' are added so that handshape's own models survive the round trip. The file is
    written next to its destination and renamed into place, so a failure never leaves a partial
    file at `path`.
    """
    payload = _mano_dict(model)

    def dump(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            pickle.dump(payload, handle, protocol=2)

    atomic_write(Path(path), dump, durable=True)
