"""Prediction files: what `handshape eval --predictions` scores and `--save-predictions` writes.

Any method's outputs in these layouts are scored under the identical protocol as handshape's
own (`handshape.evaluation.protocols`). All coordinates are metres, in the data set's own
camera frame.

FreiHAND: the official `pred.json` of the FreiHAND evaluation server (lmb-freiburg/freihand,
pred.py), a JSON array of two arrays, one entry per evaluation sample in index order::

    [
      [ [[x, y, z], ... 21 joints], ... one per sample ],
      [ [[x, y, z], ... V vertices], ... one per sample ]
    ]

Joints in FreiHAND's (= the project's) order; vertices usually MANO's 778 (another count is
allowed, one count for every sample: then only joint numbers and F-scores are comparable).

RHD and STB: a JSON object from sample id to 21 joints::

    {"12": [[x, y, z], ... 21 joints], ...}                       (RHD)
    {"B1Counting/0": [[x, y, z], ...], "B1Random/1499": ..., ...}  (STB)

- RHD ids are the annotation pickle's integer keys written in decimal ("12", not "00012").
- STB ids are "<sequence>/<frame>": sequence B1..B6 followed by Counting or Random, frame
  0..1499 (the N of SK_color_N.png).
- Joints in the project's order (wrist; thumb, index, middle, ring, little, each base to tip),
  in that set's own camera frame (RHD: its camera; STB: the SK colour camera) and handedness:
  not mirrored, so a left hand stays a left hand.

Reading validates the layout and every number and raises `PredictionFileError` naming the file
and what is wrong (the first bad entry); writing goes through `handshape.safeio.atomic`, so a
file is either complete or absent. Whether the ids cover a data set is checked by `check_ids`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from handshape.joints import NUM_JOINTS
from handshape.safeio.atomic import atomic_write_text

__all__ = [
    "PredictionFileError",
    "check_ids",
    "read_freihand_predictions",
    "read_joint_predictions",
    "write_freihand_predictions",
    "write_joint_predictions",
]

# A coordinate beyond this many metres from the camera is not a hand: most likely millimetres.
MAX_ABS_METRES = 20.0
_STB_ID = re.compile(r"^B[1-6](Counting|Random)/(0|[1-9][0-9]*)$")
STB_FRAMES = 1500


class PredictionFileError(ValueError):
    """A prediction file that is not in the documented layout (the message names the file)."""


# --------------------------------------------------------------------------- JSON plumbing


def _refuse_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name}")


def _unique_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"sample id {key!r} appears twice")
        out[key] = value
    return out


def _load_json(path: Path) -> object:
    if not path.is_file():
        raise PredictionFileError(f"{path}: prediction file not found")
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f, parse_constant=_refuse_constant, object_pairs_hook=_unique_object)
    except json.JSONDecodeError as err:
        raise PredictionFileError(
            f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from err
    except (ValueError, UnicodeDecodeError) as err:
        raise PredictionFileError(f"{path}: {err}") from err


def _points(value: object, count: int | None, path: Path, what: str) -> np.ndarray:
    """One sample's (count, 3) points from nested JSON lists, or an error naming `what`."""
    try:
        arr = np.asarray(value)
    except ValueError:  # ragged
        arr = np.empty(0, dtype=object)
    # numpy turns true/false into 1/0 silently; JSON booleans are not coordinates.
    bad = arr.dtype.kind not in "iuf" or arr.ndim != 2 or arr.shape[1] != 3
    if bad or any(type(c) is bool for point in value for c in point):  # type: ignore[union-attr]
        raise PredictionFileError(
            f"{path}: {what} must be a list of [x, y, z] number triples, got "
            f"{_describe(value)}"
        )
    if count is not None and arr.shape[0] != count:
        raise PredictionFileError(f"{path}: {what} has {arr.shape[0]} points, expected {count}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():  # json reads 1e999 as inf
        raise PredictionFileError(f"{path}: {what} has a non-finite number")
    if np.abs(arr).max(initial=0.0) > MAX_ABS_METRES:
        raise PredictionFileError(
            f"{path}: {what} has a coordinate of {np.abs(arr).max():.4g}: coordinates must be "
            f"metres (millimetres?)"
        )
    return arr


def _describe(value: object) -> str:
    if isinstance(value, list):
        inner = f" of {type(value[0]).__name__}" if value else ""
        return f"a list of {len(value)}{inner}"
    return type(value).__name__


def _as_float_list(points: np.ndarray) -> list:
    # tolist() gives Python floats, which json writes with repr precision: a write / read round
    # trip is exact.
    return np.asarray(points, dtype=np.float64).tolist()


# --------------------------------------------------------------------------- FreiHAND


def read_freihand_predictions(
    path: str | Path, num_samples: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read a FreiHAND `pred.json` (layout in the module docstring).

    Args:
        path: the file.
        num_samples: the number of samples the evaluation split has (3960 for FreiHAND's
            evaluation set); None accepts any count.

    Returns:
        joints (N, 21, 3) and vertices (N, V, 3), float64 metres.

    Raises:
        PredictionFileError: naming the file and the first thing that is wrong.
    """
    path = Path(path)
    data = _load_json(path)
    if not (isinstance(data, list) and len(data) == 2 and all(isinstance(x, list) for x in data)):
        raise PredictionFileError(
            f"{path}: expected FreiHAND's layout [joints list, vertices list], got "
            f"{_describe(data)}"
        )
    joints_in, verts_in = data
    if len(joints_in) != len(verts_in):
        raise PredictionFileError(
            f"{path}: {len(joints_in)} joint entries but {len(verts_in)} vertex entries"
        )
    if num_samples is not None and len(joints_in) != num_samples:
        raise PredictionFileError(
            f"{path}: {len(joints_in)} samples, the evaluation split has {num_samples}"
        )
    if not joints_in:
        raise PredictionFileError(f"{path}: no samples")
    joints = np.stack(
        [_points(j, NUM_JOINTS, path, f"joints of sample {i}") for i, j in enumerate(joints_in)]
    )
    first = _points(verts_in[0], None, path, "vertices of sample 0")
    verts = np.stack(
        [first]
        + [
            _points(v, first.shape[0], path, f"vertices of sample {i}")
            for i, v in enumerate(verts_in[1:], start=1)
        ]
    )
    return joints, verts


def write_freihand_predictions(
    path: str | Path, joints: np.ndarray, vertices: np.ndarray
) -> Path:
    """Write FreiHAND's `pred.json` atomically.

    Args:
        path: output file.
        joints: (N, 21, 3) metres, camera frame, the project's (= FreiHAND's) joint order.
        vertices: (N, V, 3) metres (MANO's 778 for vertex-to-vertex errors).

    Returns:
        The path written.
    """
    joints = np.asarray(joints, dtype=np.float64)
    vertices = np.asarray(vertices, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must be (N, 21, 3), got {joints.shape}")
    if vertices.ndim != 3 or vertices.shape[0] != joints.shape[0] or vertices.shape[2] != 3:
        raise ValueError(f"vertices must be ({joints.shape[0]}, V, 3), got {vertices.shape}")
    if not (np.isfinite(joints).all() and np.isfinite(vertices).all()):
        raise ValueError("predictions contain NaN or infinite values")
    payload = [[_as_float_list(j) for j in joints], [_as_float_list(v) for v in vertices]]
    return atomic_write_text(Path(path), json.dumps(payload, separators=(",", ":")))


# --------------------------------------------------------------------------- RHD / STB


def _id_problem(key: str, dataset: str) -> str | None:
    """What is wrong with a sample id of `dataset`, or None."""
    if dataset == "rhd":
        if not (key.isascii() and key.isdigit() and str(int(key)) == key):
            return (
                f"RHD sample id {key!r} is not an annotation key written in decimal "
                f"(e.g. '12', no leading zeros)"
            )
    elif dataset == "stb":
        if _STB_ID.match(key) is None or int(key.split("/")[1]) >= STB_FRAMES:
            return (
                f"STB sample id {key!r} is not '<sequence>/<frame>' with a sequence B1..B6 + "
                f"Counting/Random and a frame 0..{STB_FRAMES - 1} (e.g. 'B1Random/17')"
            )
    else:
        raise ValueError(f"dataset must be 'rhd' or 'stb', got {dataset!r}")
    return None


def read_joint_predictions(path: str | Path, dataset: str) -> dict[str, np.ndarray]:
    """Read an RHD or STB prediction file (layout in the module docstring).

    Args:
        path: the file.
        dataset: "rhd" or "stb" (decides which sample ids are valid).

    Returns:
        sample id -> (21, 3) float64 joints in metres, in the file's order.

    Raises:
        PredictionFileError: naming the file and the first thing that is wrong.
    """
    path = Path(path)
    _id_problem("0", dataset)  # an unknown data set name fails before the file is read
    data = _load_json(path)
    if not isinstance(data, dict):
        raise PredictionFileError(
            f"{path}: expected a JSON object from sample id to 21 x 3 joints, got "
            f"{_describe(data)}"
        )
    if not data:
        raise PredictionFileError(f"{path}: no samples")
    out: dict[str, np.ndarray] = {}
    for key, value in data.items():
        problem = _id_problem(key, dataset)
        if problem:
            raise PredictionFileError(f"{path}: {problem}")
        out[key] = _points(value, NUM_JOINTS, path, f"joints of sample {key!r}")
    return out


def write_joint_predictions(
    path: str | Path, predictions: Mapping[str, np.ndarray], dataset: str
) -> Path:
    """Write an RHD or STB prediction file atomically.

    Args:
        path: output file.
        predictions: sample id -> (21, 3) joints in metres (ids as in the module docstring).
        dataset: "rhd" or "stb".

    Returns:
        The path written.
    """
    path = Path(path)
    payload: dict[str, list] = {}
    for key, joints in predictions.items():
        problem = _id_problem(str(key), dataset)
        if problem:
            raise ValueError(problem)
        j = np.asarray(joints, dtype=np.float64)
        if j.shape != (NUM_JOINTS, 3) or not np.isfinite(j).all():
            raise ValueError(f"joints of sample {key!r} must be finite (21, 3), got {j.shape}")
        payload[str(key)] = _as_float_list(j)
    return atomic_write_text(path, json.dumps(payload, separators=(",", ":")))


def check_ids(found: Iterable[str], expected: Iterable[str], path: str | Path) -> None:
    """Refuse a prediction file that does not cover exactly the evaluation split's samples.

    Raises:
        PredictionFileError: naming the file, the counts and a few missing / unexpected ids.
    """
    found_set, expected_set = set(found), set(expected)
    missing = sorted(expected_set - found_set, key=_natural)
    extra = sorted(found_set - expected_set, key=_natural)
    if not missing and not extra:
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} sample(s) missing (e.g. {', '.join(missing[:3])})")
    if extra:
        parts.append(f"{len(extra)} not in the split (e.g. {', '.join(extra[:3])})")
    raise PredictionFileError(f"{path}: " + "; ".join(parts))


def _natural(key: str) -> tuple:
    return tuple(int(x) if x.isdigit() else x for x in re.split(r"(\d+)", key))
