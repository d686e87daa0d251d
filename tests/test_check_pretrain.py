"""scripts/check_pretrain.py, the last step of `make pretrain`: a run that gives the documented
figures passes, one that parts from them fails naming the figure, a missing run is an error,
and a host with another core count is told why its figures are not held to the documented
ones."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADLINE = json.loads((ROOT / "docs" / "headline.json").read_text())


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_pretrain", ROOT / "scripts" / "check_pretrain.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(folder: Path, figures: dict[str, float]) -> Path:
    (folder / "eval").mkdir(parents=True)
    metrics = {
        "mesh_error_mm": figures["mesh_error_mm"],
        "pose_error_mm": figures["pose_error_mm"],
        "pck": {"auc_20_50": figures["auc_20_50"]},
    }
    (folder / "eval" / "metrics.json").write_text(json.dumps(metrics))
    return folder


def documented(**change: float) -> dict[str, float]:
    values = {k: HEADLINE[k] for k in ("mesh_error_mm", "pose_error_mm", "auc_20_50")}
    return {**values, **change}


def test_a_run_with_the_documented_figures_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(tmp_path, documented(mesh_error_mm=HEADLINE["mesh_error_mm"] + 0.01))
    assert load_script().main([str(run)]) == 0
    assert "reproduces the documented figures" in capsys.readouterr().out


def test_a_run_that_parts_from_them_fails_on_a_host_like_the_measured_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(tmp_path, documented(pose_error_mm=HEADLINE["pose_error_mm"] + 1.0))
    script = load_script()
    monkeypatch.setattr(script.os, "cpu_count", lambda: HEADLINE["cores"])
    assert script.main([str(run)]) == 1
    said = capsys.readouterr()
    assert "pose_error_mm" in said.err and "DIFFERS" in said.out


def test_on_another_core_count_it_says_why_and_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(tmp_path, {"mesh_error_mm": 50.0, "pose_error_mm": 60.0, "auc_20_50": 0.2})
    script = load_script()
    monkeypatch.setattr(script.os, "cpu_count", lambda: HEADLINE["cores"] + 6)
    assert script.main([str(run)]) == 0
    assert "not expected to match" in capsys.readouterr().out


def test_a_folder_without_a_finished_run_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"metrics\.json"):
        load_script().main([str(tmp_path)])
