"""A study over seeds: each seed in its folder with its train.seed, one table of means and
spreads saying which differences exceed the spread."""

from __future__ import annotations

from pathlib import Path

import pytest

from handshape.studies.seeds import run_seeds, seeds_table
from handshape.studies.spec import Study

STUDY = Study(name="s", title="Heads", experiment="tiny", variants={"A": [], "B": [], "C": []})


def result(mesh: float, pose: float, auc: float) -> dict:
    return {"mesh_error_mm": mesh, "pose_error_mm": pose, "pck": {"auc_20_50": auc}}


def test_each_seed_runs_in_its_folder_with_its_seed(tmp_path: Path) -> None:
    calls = []

    def run(folder: Path, overrides: list[str]) -> dict:
        calls.append((folder.name, overrides))
        k = int(overrides[-1].split("=")[1])
        return {
            "A": result(40 + k, 50, 0.3),
            "B": result(40.1 + k, 50, 0.3),
            "C": result(45, 60, 0.2),
        }

    run_seeds(STUDY, tmp_path, 3, ["x=1"], run)
    assert calls == [(f"seed{k}", ["x=1", f"train.seed={k}"]) for k in range(3)]
    table = (tmp_path / "table.md").read_text()
    assert "| A | 41.0 +- 1.0 | 50.0 +- 0.0 | 0.300 +- 0.000 | (reference) |" in table
    assert "| B | 41.1 +- 1.0 | 50.0 +- 0.0 | 0.300 +- 0.000 | none |" in table  # within noise
    assert (
        "| C | 45.0 +- 0.0 | 60.0 +- 0.0 | 0.200 +- 0.000 | mesh error, pose error, auc 20-50 |"
        in table
    )


def test_fine_tuning_scores_are_read_too_and_one_seed_has_no_spread() -> None:
    scores = {"A": {"mesh_error": 20.0, "pose_error": 25.0, "auc_20_50": 0.5}}
    table = seeds_table(
        Study(name="w", title="W", experiment="tiny", variants={"A": []}), {0: scores}
    )
    assert "| A | 20.0 | 25.0 | 0.500 | - (one seed: no spread) |" in table


def test_a_seed_override_and_no_seeds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"sets train\.seed itself"):
        run_seeds(STUDY, tmp_path, 2, ["train.seed=3"], lambda f, o: {})
    with pytest.raises(ValueError, match="at least 1"):
        run_seeds(STUDY, tmp_path, 0, [], lambda f, o: {})
