"""Specification of handshape.handmodel.mano_io: safe loading and the MANO file layout."""

from __future__ import annotations

import builtins
import copyreg
import importlib.abc
import importlib.util
import os
import pickle
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse

from handshape.handmodel.data import HandModelData
from handshape.handmodel.mano_io import (
    ModelFileError,
    UnsafePickleError,
    read_mano,
    safe_load_pickle,
    write_mano,
)
from handshape.joints import (
    KINEMATIC_PARENTS,
    MANO_TIP_VERTEX_IDS,
    MANO_TO_KINEMATIC,
    NUM_KINEMATIC,
)

# The kintree_table of the official MANO_RIGHT.pkl: row 0 parents (uint32 -1 for the root),
# row 1 joint ids, joints ordered wrist, index, middle, little, ring, thumb.
OFFICIAL_KINTREE = np.array(
    [
        [4294967295, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14],
        list(range(16)),
    ]
)

ARRAY_FIELDS = (
    "v_template", "faces", "shapedirs", "posedirs", "j_regressor", "weights", "tip_vertex_ids",
    "parents", "hands_components", "hands_mean",
)  # fmt: skip


def random_model(
    seed: int = 0, n: int = 50, n_faces: int = 20, n_shapes: int = 10
) -> HandModelData:
    """Random arrays of valid shapes: sparse skinning weights and a sparse-ish joint regressor."""
    rng = np.random.default_rng(seed)
    weights = np.zeros((n, NUM_KINEMATIC))
    for row in weights:
        row[rng.choice(NUM_KINEMATIC, 4, replace=False)] = rng.uniform(0.1, 1.0, 4)
    weights /= weights.sum(axis=1, keepdims=True)
    j_regressor = np.zeros((NUM_KINEMATIC, n))
    for row in j_regressor:
        row[rng.choice(n, 6, replace=False)] = rng.uniform(0.1, 1.0, 6)
    j_regressor /= j_regressor.sum(axis=1, keepdims=True)
    return HandModelData(
        v_template=rng.normal(size=(n, 3)),
        faces=rng.integers(0, n, size=(n_faces, 3)),
        shapedirs=rng.normal(size=(n, 3, n_shapes)),
        posedirs=rng.normal(size=(n, 3, 135)),
        j_regressor=j_regressor,
        weights=weights,
        tip_vertex_ids=rng.choice(n, 5, replace=False),
        shape_names=tuple(f"shape_{i}" for i in range(n_shapes)),
        hands_components=rng.normal(size=(45, 45)),
        hands_mean=rng.normal(size=45),
    )


def load_trusted(path: Path) -> dict[str, Any]:
    """Plain pickle.load, only for files this test module wrote itself."""
    with path.open("rb") as f:
        return pickle.load(f, encoding="latin1")


def write_to(directory: Path, model: HandModelData, name: str = "hand.pkl") -> Path:
    path = directory / name
    write_mano(model, path)
    return path


def dump(obj: Any, path: Path) -> Path:
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=2)
    return path


# --- round trip and layout ---------------------------------------------------------------------


def test_write_then_read_gives_back_identical_model(tmp_path: Path) -> None:
    model = random_model()
    path = tmp_path / "hand.pkl"
    write_mano(model, path)
    back = read_mano(path)
    for name in ARRAY_FIELDS:
        assert np.array_equal(getattr(back, name), getattr(model, name)), name
    assert back.parents.tolist() == list(KINEMATIC_PARENTS)
    assert back.shape_names == model.shape_names
    assert os.listdir(tmp_path) == ["hand.pkl"]  # no temporary file left behind


def test_written_file_is_in_mano_joint_order(tmp_path: Path) -> None:
    model = random_model(seed=1)
    path = write_to(tmp_path, model)
    raw = load_trusted(path)

    assert np.array_equal(raw["kintree_table"], OFFICIAL_KINTREE)
    assert isinstance(raw["J_regressor"], scipy.sparse.csc_matrix)
    assert raw["f"].dtype == np.uint32
    assert raw["bs_style"] == "lbs"
    assert raw["bs_type"] == "lrotmin"

    j_mano = raw["J_regressor"].toarray()
    for mano_joint, kin_joint in enumerate(MANO_TO_KINEMATIC):
        assert np.array_equal(j_mano[mano_joint], model.j_regressor[kin_joint])
        assert np.array_equal(raw["weights"][:, mano_joint], model.weights[:, kin_joint])
    # Spelled out: MANO joint 1 is index1 (handshape joint 4), MANO joint 13 is thumb1 (joint 1).
    assert np.array_equal(j_mano[1], model.j_regressor[4])
    assert np.array_equal(j_mano[13], model.j_regressor[1])
    # Pose blocks are per joint 1..15: MANO's first block is index1, handshape's fourth.
    assert np.array_equal(raw["posedirs"][..., 0:9], model.posedirs[..., 27:36])
    assert np.array_equal(raw["posedirs"][..., 108:117], model.posedirs[..., 0:9])
    assert np.array_equal(raw["hands_mean"][0:3], model.hands_mean[9:12])
    assert np.array_equal(raw["hands_components"][:, 36:39], model.hands_components[:, 0:3])
    # Fingertips stay in handshape's finger order; the shape basis is not joint-indexed.
    assert np.array_equal(raw["tip_vertex_ids"], model.tip_vertex_ids)
    assert np.array_equal(raw["shapedirs"], model.shapedirs)


def test_mano_sized_mesh_without_tip_ids_uses_builtin_fingertips(tmp_path: Path) -> None:
    raw = load_trusted(write_to(tmp_path, random_model(n=778)))
    del raw["tip_vertex_ids"], raw["shape_names"]
    model = read_mano(dump(raw, tmp_path / "mano_like.pkl"))
    assert model.tip_vertex_ids.tolist() == list(MANO_TIP_VERTEX_IDS)
    assert model.shape_names == ()


def test_other_mesh_without_tip_ids_is_an_error(tmp_path: Path) -> None:
    raw = load_trusted(write_to(tmp_path, random_model(n=50)))
    del raw["tip_vertex_ids"]
    path = dump(raw, tmp_path / "no_tips.pkl")
    with pytest.raises(ModelFileError, match="tip_vertex_ids") as info:
        read_mano(path)
    assert path.name in str(info.value)


def test_old_python2_module_paths_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Official files name numpy.core, copy_reg and scipy.sparse.csc, as Python 2 pickled them."""

    class OldCsc:
        def __init__(self, state: dict[str, Any]) -> None:
            self.state = state

        def __reduce__(self) -> tuple[Any, ...]:
            return copyreg._reconstructor, (type(self), object, None), self.state

    OldCsc.__module__, OldCsc.__qualname__ = "scipy.sparse.csc", "csc_matrix"
    monkeypatch.setitem(sys.modules, "scipy.sparse.csc", types.SimpleNamespace(csc_matrix=OldCsc))

    model = random_model(seed=2)
    raw = load_trusted(write_to(tmp_path, model))
    csc = raw["J_regressor"]
    raw["J_regressor"] = OldCsc(
        {"data": csc.data, "indices": csc.indices, "indptr": csc.indptr,
         "_shape": csc.shape, "format": "csc", "maxprint": 50}
    )  # fmt: skip
    blob = pickle.dumps(raw, protocol=2)
    monkeypatch.undo()
    assert b"copy_reg\n_reconstructor" in blob
    assert b"scipy.sparse.csc\ncsc_matrix" in blob
    # GLOBAL opcodes are newline-terminated text, so renaming the module keeps the pickle valid.
    blob = blob.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert b"numpy._core" not in blob
    path = tmp_path / "old.pkl"
    path.write_bytes(blob)

    back = read_mano(path)
    assert np.array_equal(back.j_regressor, model.j_regressor)
    assert np.array_equal(back.posedirs, model.posedirs)


# --- chumpy ------------------------------------------------------------------------------------


class _BlockChumpy(importlib.abc.MetaPathFinder):
    """Makes `import chumpy` fail, as on a machine without chumpy installed."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "chumpy" or name.startswith("chumpy."):
            raise ImportError(f"{name} is not installed (blocked by the test)")
        return None


def test_chumpy_arrays_are_read_without_chumpy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Ch:
        """Looks like chumpy.ch.Ch to pickle: a leaf variable keeps its value in .x."""

        def __init__(self, x: np.ndarray) -> None:
            self.x = x
            self._dirty_vars: set[str] = set()
            self._depends_on_deps: dict[str, Any] = {}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    chumpy = types.ModuleType("chumpy")
    chumpy_ch = types.ModuleType("chumpy.ch")
    chumpy_ch.Ch = Ch  # type: ignore[attr-defined]
    chumpy.ch = chumpy_ch  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "chumpy", chumpy)
    monkeypatch.setitem(sys.modules, "chumpy.ch", chumpy_ch)

    model = random_model(seed=3)
    raw = load_trusted(write_to(tmp_path, model))
    raw["shapedirs"] = Ch(raw["shapedirs"])
    raw["posedirs"] = Ch(raw["posedirs"])
    blob = pickle.dumps(raw, protocol=2)
    assert b"chumpy.ch\nCh" in blob

    monkeypatch.undo()
    monkeypatch.setattr(sys, "meta_path", [_BlockChumpy(), *sys.meta_path])
    assert "chumpy" not in sys.modules
    with pytest.raises(ImportError):
        importlib.util.find_spec("chumpy")

    path = tmp_path / "chumpy.pkl"
    path.write_bytes(blob)
    back = read_mano(path)
    assert "chumpy" not in sys.modules
    assert "chumpy.ch" not in sys.modules
    assert np.array_equal(back.shapedirs, model.shapedirs)
    assert np.array_equal(back.posedirs, model.posedirs)


def test_chumpy_expression_without_value_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Add:
        def __init__(self, a: Any, b: Any) -> None:
            self.a, self.b = a, b

    Add.__module__, Add.__qualname__ = "chumpy.ch_ops", "add"
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch_ops", types.SimpleNamespace(add=Add))
    blob = pickle.dumps({"shapedirs": Add(np.zeros(2), np.ones(2))}, protocol=2)
    monkeypatch.undo()
    path = tmp_path / "expr.pkl"
    path.write_bytes(blob)
    with pytest.raises(ModelFileError, match=r"chumpy\.ch_ops\.add") as info:
        safe_load_pickle(path)
    assert path.name in str(info.value)


# --- refusing code execution -------------------------------------------------------------------


class _Exploit:
    """Unpickling this calls `func(*args)`: what a malicious model file would do."""

    def __init__(self, func: Any, args: tuple[Any, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.func, self.args


@pytest.mark.parametrize(
    ("make", "refused"),
    [
        (lambda m: _Exploit(os.system, (f"echo pwned > {m}",)), r"\b(os|posix|nt)\.system\b"),
        (lambda m: _Exploit(builtins.exec, (f"open({str(m)!r}, 'w')",)), r"\bbuiltins\.exec\b"),
        (lambda m: _Exploit(subprocess.call, (["touch", str(m)],)), r"\bsubprocess\.call\b"),
    ],
    ids=["os.system", "builtins.exec", "subprocess.call"],
)
def test_pickle_that_would_run_code_is_refused(tmp_path: Path, make: Any, refused: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_model.pkl"
    dump({"v_template": make(marker)}, path)

    with pytest.raises(UnsafePickleError) as info:
        read_mano(path)
    message = str(info.value)
    assert path.name in message
    assert re.search(refused, message), message
    assert isinstance(info.value, ValueError)
    assert not marker.exists()


def test_unsafe_global_nested_inside_arrays_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = dump(
        [np.zeros(3), {"x": (1, _Exploit(os.system, (f"touch {marker}",)))}], tmp_path / "n"
    )
    with pytest.raises(UnsafePickleError):
        safe_load_pickle(path)
    assert not marker.exists()


def test_pickle_cannot_modify_the_loaders_helpers(tmp_path: Path) -> None:
    """BUILD on a whitelisted global must not rewrite it (here: codecs.encode's defaults)."""
    # PROTO 2, GLOBAL _codecs.encode, state (None, {"__defaults__": ("latin1",)}), BUILD, STOP
    blob = (
        b"\x80\x02c_codecs\nencode\nN}X\x0c\x00\x00\x00__defaults__"
        b"X\x06\x00\x00\x00latin1\x85s\x86b."
    )
    path = tmp_path / "tamper.pkl"
    path.write_bytes(blob)
    with pytest.raises(ModelFileError, match=re.escape("tamper.pkl")):
        safe_load_pickle(path)
    model = random_model(seed=11)
    assert np.array_equal(read_mano(write_to(tmp_path, model)).weights, model.weights)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_safe_load_densifies_sparse_matrices_for_every_protocol(
    tmp_path: Path, protocol: int
) -> None:
    dense = np.array([[0.0, 2.0, 0.0], [3.0, 0.0, 4.0]])
    content = {
        "array": np.arange(6.0).reshape(2, 3),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
        "scalar": np.float32(2.5),
        "csc": scipy.sparse.csc_matrix(dense),
        "csr": scipy.sparse.csr_matrix(dense),
        "coo": scipy.sparse.coo_matrix(dense),
        "nested": [("name", np.ones(2))],
    }
    path = tmp_path / "content.pkl"
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    out = safe_load_pickle(path)
    for key in ("csc", "csr", "coo"):
        assert isinstance(out[key], np.ndarray)
        assert np.array_equal(out[key], dense), key
    assert np.array_equal(out["array"], content["array"])
    assert np.array_equal(out["fortran"], content["fortran"])
    assert out["fortran"].dtype == np.float32
    assert out["scalar"] == np.float32(2.5)
    assert out["nested"][0][0] == "name"
    assert np.array_equal(out["nested"][0][1], np.ones(2))


# --- broken files ------------------------------------------------------------------------------


def test_truncated_file_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    path = write_to(tmp_path, random_model(seed=4), "truncated_hand.pkl")
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelFileError, match=re.escape("truncated_hand.pkl")):
        read_mano(path)


def test_non_pickle_file_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("v_template: 1 2 3\n")
    with pytest.raises(ModelFileError, match=re.escape("notes.txt")):
        safe_load_pickle(path)


def test_missing_file_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape("no_such_hand.pkl")):
        read_mano(tmp_path / "no_such_hand.pkl")


@pytest.mark.parametrize("key", ["v_template", "weights", "J_regressor", "kintree_table", "f"])
def test_missing_key_is_named(tmp_path: Path, key: str) -> None:
    raw = load_trusted(write_to(tmp_path, random_model(seed=5)))
    del raw[key]
    path = dump(raw, tmp_path / "incomplete.pkl")
    with pytest.raises(ModelFileError, match=f"'{key}'") as info:
        read_mano(path)
    assert "incomplete.pkl" in str(info.value)


def test_wrongly_shaped_key_is_named(tmp_path: Path) -> None:
    raw = load_trusted(write_to(tmp_path, random_model(seed=6)))
    raw["weights"] = raw["weights"][:, :15]
    with pytest.raises(ModelFileError, match="'weights' has shape"):
        read_mano(dump(raw, tmp_path / "bad_shape.pkl"))


def test_kintree_of_another_skeleton_is_refused(tmp_path: Path) -> None:
    raw = load_trusted(write_to(tmp_path, random_model(seed=7)))
    raw["kintree_table"][0, 2] = 0  # index2 hung off the wrist instead of index1
    with pytest.raises(ModelFileError, match="kintree_table"):
        read_mano(dump(raw, tmp_path / "bad_tree.pkl"))


def test_not_a_dict_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="dict"):
        read_mano(dump([np.zeros(3)], tmp_path / "list.pkl"))


# --- atomic writes -----------------------------------------------------------------------------


def _failing_dump(obj: Any, file: Any, protocol: int | None = None) -> None:
    file.write(b"\x80\x02}q\x00(X")  # a few bytes of a real pickle, then the disk "fills up"
    raise OSError("No space left on device")


def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    monkeypatch.setattr(pickle, "dump", _failing_dump)
    with pytest.raises(OSError, match="No space"):
        write_mano(random_model(seed=8), out_dir / "hand.pkl")
    assert os.listdir(out_dir) == []


def test_failed_write_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = random_model(seed=9)
    path = write_to(tmp_path, old)
    before = path.read_bytes()
    monkeypatch.setattr(pickle, "dump", _failing_dump)
    with pytest.raises(OSError):
        write_mano(random_model(seed=10), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]
    assert np.array_equal(read_mano(path).v_template, old.v_template)
