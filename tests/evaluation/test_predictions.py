"""Prediction files: FreiHAND's pred.json and the RHD / STB id -> joints layout, round trips and
clear errors for every kind of bad file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from handshape.evaluation.predictions import (
    PredictionFileError,
    check_ids,
    read_freihand_predictions,
    read_joint_predictions,
    write_freihand_predictions,
    write_joint_predictions,
)


def _hand(rng: np.random.Generator, n: int, points: int) -> np.ndarray:
    return rng.normal(scale=0.05, size=(n, points, 3)) + np.array([0.0, 0.0, 0.5])


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- FreiHAND


def test_freihand_round_trip_is_exact_and_the_official_layout(tmp_path) -> None:
    rng = np.random.default_rng(0)
    joints, verts = _hand(rng, 4, 21), _hand(rng, 4, 778)
    path = write_freihand_predictions(tmp_path / "pred.json", joints, verts)
    assert path == tmp_path / "pred.json"
    assert [p.name for p in tmp_path.iterdir()] == ["pred.json"]  # no temporary file left
    # The official evaluation reads json.load(f) -> [xyz list, verts list], one entry per sample.
    raw = json.loads(path.read_text())
    assert len(raw) == 2 and len(raw[0]) == 4 and len(raw[1]) == 4
    assert len(raw[0][0]) == 21 and len(raw[1][0]) == 778 and len(raw[0][0][0]) == 3
    j, v = read_freihand_predictions(path, num_samples=4)
    assert np.array_equal(j, joints) and np.array_equal(v, verts)


def test_freihand_accepts_integers_and_other_vertex_counts(tmp_path) -> None:
    joints = [[[0, 0, 1]] * 21]
    path = _write(tmp_path / "p.json", json.dumps([joints, [[[0.1, 0.2, 0.5]] * 5]]))
    j, v = read_freihand_predictions(path)
    assert j.shape == (1, 21, 3) and j.dtype == np.float64 and v.shape == (1, 5, 3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[1, 2", "not valid JSON (line 1"),
        ('{"0": []}', "expected FreiHAND's layout"),
        ("[[], [], []]", "expected FreiHAND's layout"),
        ("[[], []]", "no samples"),
        ("[[" + json.dumps([[0, 0, 1]] * 21) + "], []]", "1 joint entries but 0 vertex entries"),
        ("[[" + json.dumps([[0, 0, 1]] * 20) + "], [[[0, 0, 1]]]]", "joints of sample 0 has 20"),
        ("[[" + json.dumps([[0, 0]] * 21) + "], [[[0, 0, 1]]]]", "joints of sample 0 must be"),
        ("[[" + json.dumps([["a", 0, 1]] * 21) + "], [[[0, 0, 1]]]]", "number triples"),
        ("[[" + json.dumps([[True, 0, 1]] * 21) + "], [[[0, 0, 1]]]]", "number triples"),
        ("[[" + json.dumps([[0, 0, 1]] * 21) + "], [[[0, NaN, 1]]]]", "non-finite number NaN"),
        ("[[" + json.dumps([[0, 0, 1]] * 21) + "], [[[0, 1e999, 1]]]]", "non-finite"),
        ("[[" + json.dumps([[0, 0, 500]] * 21) + "], [[[0, 0, 1]]]]", "millimetres"),
        ("[[" + json.dumps([[0, 0, 1], [0, 1]] + [[0, 0, 1]] * 19) + "], [[[0, 0, 1]]]]",
         "joints of sample 0 must be"),
    ],
)  # fmt: skip
def test_freihand_bad_files_name_the_file_and_the_problem(tmp_path, text, message) -> None:
    path = _write(tmp_path / "bad.json", text)
    with pytest.raises(PredictionFileError, match=r"bad\.json") as err:
        read_freihand_predictions(path)
    assert message in str(err.value)


def test_freihand_sample_counts(tmp_path) -> None:
    rng = np.random.default_rng(1)
    path = write_freihand_predictions(tmp_path / "p.json", _hand(rng, 2, 21), _hand(rng, 2, 778))
    with pytest.raises(PredictionFileError, match="2 samples, the evaluation split has 3960"):
        read_freihand_predictions(path, num_samples=3960)
    # Every sample must have the first sample's vertex count.
    raw = json.loads(path.read_text())
    raw[1][1] = raw[1][1][:700]
    _write(path, json.dumps(raw))
    with pytest.raises(PredictionFileError, match="vertices of sample 1 has 700 points, expected"):
        read_freihand_predictions(path)
    with pytest.raises(PredictionFileError, match=r"missing\.json: prediction file not found"):
        read_freihand_predictions(tmp_path / "missing.json")


def test_freihand_write_refuses_bad_arrays_and_leaves_nothing(tmp_path) -> None:
    rng = np.random.default_rng(2)
    joints, verts = _hand(rng, 2, 21), _hand(rng, 2, 778)
    with pytest.raises(ValueError, match=r"\(N, 21, 3\)"):
        write_freihand_predictions(tmp_path / "p.json", joints[:, :20], verts)
    with pytest.raises(ValueError, match="vertices"):
        write_freihand_predictions(tmp_path / "p.json", joints, verts[:1])
    joints[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_freihand_predictions(tmp_path / "p.json", joints, verts)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- RHD / STB


def test_rhd_and_stb_round_trips(tmp_path) -> None:
    rng = np.random.default_rng(3)
    hands = _hand(rng, 3, 21)
    rhd = {"0": hands[0], "12": hands[1], "2727": hands[2]}
    stb = {"B1Counting/0": hands[0], "B1Random/1499": hands[1], "B6Counting/17": hands[2]}
    for dataset, preds in (("rhd", rhd), ("stb", stb)):
        path = write_joint_predictions(tmp_path / f"{dataset}.json", preds, dataset)
        back = read_joint_predictions(path, dataset)
        assert list(back) == list(preds)
        for key in preds:
            assert np.array_equal(back[key], preds[key])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rhd.json", "stb.json"]


@pytest.mark.parametrize(
    ("dataset", "key", "message"),
    [
        ("rhd", "00012", "RHD sample id '00012'"),
        ("rhd", "12a", "RHD sample id '12a'"),
        ("rhd", "-1", "RHD sample id '-1'"),
        ("stb", "B7Random/3", "STB sample id 'B7Random/3'"),
        ("stb", "B1Random/1500", "frame 0..1499"),
        ("stb", "B1Random/017", "STB sample id"),
        ("stb", "B1random/17", "STB sample id"),
        ("stb", "12", "STB sample id"),
    ],
)
def test_bad_sample_ids(tmp_path, dataset, key, message) -> None:
    path = _write(tmp_path / "ids.json", json.dumps({key: [[0, 0, 0.5]] * 21}))
    with pytest.raises(PredictionFileError, match=r"ids\.json") as err:
        read_joint_predictions(path, dataset)
    assert message in str(err.value)
    with pytest.raises(ValueError, match="sample id"):
        write_joint_predictions(tmp_path / "out.json", {key: np.zeros((21, 3))}, dataset)
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[0, 0, 1]]', "expected a JSON object from sample id"),
        ("{}", "no samples"),
        ('{"1": [[0, 0, 1]], "1": [[0, 0, 1]]}', "sample id '1' appears twice"),
        ('{"1": ' + json.dumps([[0, 0, 1]] * 22) + "}", "joints of sample '1' has 22 points"),
        ('{"1": ' + json.dumps([[0, 0, 1000]] * 21) + "}", "millimetres"),
        ('{"1": ' + json.dumps([[0, 0, 1]] * 20 + [[0, 0, "x"]]) + "}", "number triples"),
        ('{"1": [[0, 0, Infinity]]}', "non-finite number Infinity"),
    ],
)
def test_rhd_bad_files_name_the_file_and_the_problem(tmp_path, text, message) -> None:
    path = _write(tmp_path / "rhd_pred.json", text)
    with pytest.raises(PredictionFileError, match=r"rhd_pred\.json") as err:
        read_joint_predictions(path, "rhd")
    assert message in str(err.value)


def test_unknown_dataset_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="'rhd' or 'stb'"):
        read_joint_predictions(tmp_path / "p.json", "freihand")
    with pytest.raises(ValueError, match="'rhd' or 'stb'"):
        write_joint_predictions(tmp_path / "p.json", {"1": np.zeros((21, 3))}, "ho3d")


def test_check_ids_names_missing_and_unexpected_samples() -> None:
    check_ids(["B1Random/2", "B1Random/1"], ["B1Random/1", "B1Random/2"], "p.json")
    with pytest.raises(PredictionFileError) as err:
        check_ids(["0", "1", "7", "9999"], [str(i) for i in range(12)], "p.json")
    text = str(err.value)
    assert text.startswith("p.json: 9 sample(s) missing (e.g. 2, 3, 4)")
    assert "1 not in the split (e.g. 9999)" in text
