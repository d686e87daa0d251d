"""The `handshape` command line: help, export, MANO export, graph, pretrain honesty."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from handshape.cli import main


def test_help_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "handshape.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for command in ("handmodel", "graph", "pretrain", "finetune"):
        assert command in result.stdout


def test_finetune_on_a_real_set_needs_its_folder_and_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--data rhd needs --root"):
        main(["finetune", "--data", "rhd", "--experiment", "tiny"])
    missing = tmp_path / "no_bundle"
    code = main(["finetune", "--experiment", "tiny", "--bundle", str(missing)])
    assert code != 0


@pytest.mark.parametrize("suffix", [".obj", ".ply"])
def test_export_writes_a_loadable_mesh_and_joints(tmp_path: Path, suffix: str) -> None:
    out, joints = tmp_path / f"fist{suffix}", tmp_path / "fist.json"
    assert (
        main(
            [
                "handmodel",
                "export",
                "--gesture",
                "fist",
                "--seed",
                "1",
                "--out",
                str(out),
                "--joints",
                str(joints),
            ]
        )
        == 0
    )
    mesh = trimesh.load(out, process=False)
    assert 900 <= len(mesh.vertices) <= 1300
    assert np.array(json.loads(joints.read_text())["joints_m"]).shape == (21, 3)
    assert [p.name for p in tmp_path.iterdir()] and all(
        not p.name.startswith("tmp") for p in tmp_path.iterdir()
    )


def test_seed_changes_the_hand_and_repeats_exactly(tmp_path: Path) -> None:
    paths = [tmp_path / f"{i}.ply" for i in range(3)]
    for path, seed in zip(paths, ("1", "1", "2"), strict=True):
        main(["handmodel", "export", "--gesture", "ok", "--seed", seed, "--out", str(path)])
    a, b, c = (np.asarray(trimesh.load(p, process=False).vertices) for p in paths)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_unknown_gesture_and_format_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit, match="unknown gesture 'wave_hello'"):
        main(["handmodel", "export", "--gesture", "wave_hello", "--out", str(tmp_path / "a.obj")])
    with pytest.raises(SystemExit, match="unsupported mesh format"):
        main(["handmodel", "export", "--gesture", "fist", "--out", str(tmp_path / "a.stl")])
    assert list(tmp_path.iterdir()) == []


def test_mano_export_reads_back_through_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pkl = tmp_path / "MANO_RIGHT.pkl"
    assert main(["handmodel", "export-mano", "--out", str(pkl)]) == 0
    assert main(["handmodel", "info", "--mano", str(pkl)]) == 0
    assert "vertices: " in capsys.readouterr().out
    assert main(["graph", "--mano", str(pkl)]) == 0
    assert "level 4" in capsys.readouterr().out


def test_a_broken_model_file_is_reported_not_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "MANO_RIGHT.pkl"
    bad.write_bytes(b"not a pickle")
    assert main(["handmodel", "info", "--mano", str(bad)]) == 2
    assert "MANO_RIGHT.pkl" in capsys.readouterr().err
