"""The restricted unpickler: only the caller's allow-list resolves; nothing else is run."""

from __future__ import annotations

import collections
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from handshape.safeio.pickles import (
    NUMPY_GLOBALS,
    PickleFileError,
    UnsafePickleError,
    guarded,
    load_restricted,
)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_numpy_arrays_and_containers_load_in_every_protocol(tmp_path: Path, protocol: int) -> None:
    content = {7: {"xyz": np.arange(6.0).reshape(2, 3), "s": "name", "f": 1.5}, "l": [np.int64(3)]}
    path = tmp_path / "a.pickle"
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    out = load_restricted(path)
    assert np.array_equal(out[7]["xyz"], content[7]["xyz"]) and out[7]["s"] == "name"
    assert out["l"][0] == 3


def test_code_is_refused_naming_file_and_global_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps({"a": np.zeros(2), "b": _Exploit(marker)}, protocol=2))
    with pytest.raises(UnsafePickleError) as info:
        load_restricted(path)
    assert "evil.pickle" in str(info.value)
    assert re.search(r"\b(os|posix)\.system\b", str(info.value))
    assert not marker.exists()


def test_allow_list_is_per_caller(tmp_path: Path) -> None:
    path = tmp_path / "od.pickle"
    path.write_bytes(pickle.dumps(collections.OrderedDict(a=1), protocol=2))
    with pytest.raises(UnsafePickleError, match=r"collections\.OrderedDict.*only numpy arrays"):
        load_restricted(path)
    allowed = {**NUMPY_GLOBALS, ("collections", "OrderedDict"): collections.OrderedDict}
    assert load_restricted(path, allowed) == {"a": 1}
    resolved = load_restricted(
        path, NUMPY_GLOBALS, lambda m, n: dict if n == "OrderedDict" else None
    )
    assert resolved == {"a": 1} and type(resolved) is dict


def test_python2_names_are_renamed_before_lookup(tmp_path: Path) -> None:
    # Protocol 0 as Python 2 writes a global: __builtin__.set -> builtins.set.
    path = tmp_path / "py2.pickle"
    path.write_bytes(b"c__builtin__\nset\n((lp0\nI1\natp1\nRp2\n.")
    with pytest.raises(UnsafePickleError, match=r"builtins\.set' \(stored as '__builtin__\.set'\)"):
        load_restricted(path)
    assert load_restricted(path, {("builtins", "set"): set}) == {1}


def test_allowed_functions_cannot_be_modified_by_a_pickle(tmp_path: Path) -> None:
    def helper(a: int = 1) -> int:
        return a

    path = tmp_path / "tamper.pickle"
    # GLOBAL m.helper, state (None, {"__defaults__": (5,)}), BUILD
    path.write_bytes(b"\x80\x02cm\nhelper\nN}X\x0c\x00\x00\x00__defaults__K\x05\x85s\x86b.")
    with pytest.raises(PickleFileError, match=r"tamper\.pickle"):
        load_restricted(path, {("m", "helper"): guarded(helper)})
    assert helper() == 1


@pytest.mark.parametrize("blob", [b"", b"not a pickle", pickle.dumps({"a": 1})[:-3]])
def test_broken_files_are_named(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "broken.pickle"
    path.write_bytes(blob)
    with pytest.raises(PickleFileError, match=r"broken\.pickle"):
        load_restricted(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.pickle"):
        load_restricted(tmp_path / "missing.pickle")
