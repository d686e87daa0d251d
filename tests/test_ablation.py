"""Studies: variants trained alike on shared stages, a table, a figure, resumable."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from handshape.ablation import Study, load_study, results_table, run_study
from handshape.cli import _ensure_synthetic
from handshape.lit.train import run_pretraining

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def write_study(path: Path, **changes: Any) -> Path:
    study = {
        "title": "Tiny heads",
        "experiment": "tiny",
        "variants": {"Graph CNN": [], "MANO-based": ["model.head.name=mano"]},
        "paper": {"Graph CNN": {"mesh": 8.01}},
        **changes,
    }
    path.write_text(yaml.safe_dump(study))
    return path


@pytest.fixture(scope="module")
def finished(
    tmp_path_factory: pytest.TempPathFactory, tiny_data_overrides: Callable[[Path], list[str]]
) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("study")
    overrides = tiny_data_overrides(base)
    study = load_study(write_study(base / "tiny_heads.yaml"))
    out = base / "out"
    results = run_study(
        study,
        out,
        overrides,
        CONFIGS,
        progress=False,
        ensure_data=lambda cfg: _ensure_synthetic(cfg, 0),
    )
    return {"study": study, "out": out, "results": results, "overrides": overrides}


def test_a_study_file_is_read_and_checked(tmp_path: Path) -> None:
    study = load_study(write_study(tmp_path / "heads.yaml"))
    assert study.name == "heads" and study.experiment == "tiny"
    assert study.shared_stages == ("hourglass", "pose_regressor")
    assert study.variants["MANO-based"] == ["model.head.name=mano"]
    for bad, message in (
        ({"variants": {"A": ["no-equals"]}}, "variant 'A' needs a list of key=value"),
        ({"variants": {"shared": []}}, "'shared' cannot name a variant"),
        ({"variants": {"..": []}}, r"'\.\.' cannot name a variant"),
        ({"variants": {"a/b": []}}, "'a/b' cannot name a variant"),
        ({"shared_stages": ["full"]}, "shared_stages must be among"),
        ({"colour": "red"}, r"unknown keys \['colour'\]"),
    ):
        with pytest.raises(ValueError, match=rf"bad.yaml: .*{message}"):
            load_study(write_study(tmp_path / "bad.yaml", **bad))


def test_every_variant_is_trained_and_evaluated(finished: dict[str, Any]) -> None:
    out = finished["out"]
    for name in ("Graph CNN", "MANO-based"):
        metrics = json.loads((out / name / "eval" / "metrics.json").read_text())
        assert metrics["samples"] == 8
        assert np.isfinite(metrics["mesh_error_mm"])
        assert (out / name / "full" / "DONE").exists()
    # the heads differ, so do their results
    a, b = (finished["results"][n]["mesh_error_mm"] for n in ("Graph CNN", "MANO-based"))
    assert a != b


def test_shared_stages_are_trained_once_and_copied(finished: dict[str, Any]) -> None:
    out = finished["out"]
    shared = (out / "shared" / "hourglass" / "checkpoints" / "last.ckpt").read_bytes()
    for name in ("Graph CNN", "MANO-based"):
        assert (out / name / "hourglass" / "checkpoints" / "last.ckpt").read_bytes() == shared
    assert not (out / "shared" / "full").exists()


def test_the_table_and_the_figure(finished: dict[str, Any]) -> None:
    out = finished["out"]
    table = (out / "table.md").read_text()
    assert table.startswith("## Tiny heads")
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["Variant", "Graph CNN", "MANO-based"]
    graph = finished["results"]["Graph CNN"]
    assert f"| {graph['mesh_error_mm']:.1f} |" in rows[1] and rows[1].endswith("8.01 | - |")
    figure = np.asarray(Image.open(out / "previews.png"))
    assert figure.shape[0] == 3 * 64  # two variants and the ground truth, 64-pixel images
    assert figure.shape[1] > 4 * 64


def test_a_rerun_skips_finished_variants(
    finished: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_training(*args: Any, **kwargs: Any) -> None:
        if kwargs.get("stages") != ("hourglass", "pose_regressor"):
            raise AssertionError("a finished variant was trained again")
        return run_pretraining(*args, **kwargs)  # shared stages: all DONE, nothing trains

    monkeypatch.setattr("handshape.ablation.run_pretraining", no_training)
    results = run_study(
        finished["study"], finished["out"], finished["overrides"], CONFIGS, progress=False
    )
    assert all(r["minutes"] is None for r in results.values())


def test_results_table_without_paper_numbers() -> None:
    study = Study(name="s", title="T", experiment="tiny", variants={"A": []})
    row = {"mesh_error_mm": 1.234, "pose_error_mm": 2.0, "pck": {"auc_20_50": 0.5}, "samples": 3}
    table = results_table(study, {"A": {**row, "minutes": 1.5}})
    assert "| A | 1.2 | 2.0 | 0.500 | 1.5 |" in table and "Paper" not in table


def test_a_variant_that_changes_what_the_shared_stages_see_is_refused(
    tmp_path: Path, tiny_data_overrides: Callable[[Path], list[str]]
) -> None:
    study = load_study(write_study(tmp_path / "s.yaml", variants={"Big": ["train.seed=7"]}))
    with pytest.raises(ValueError, match=r"variant 'Big' changes train.seed.*shared_stages: \[\]"):
        run_study(study, tmp_path / "out", tiny_data_overrides(tmp_path), CONFIGS, progress=False)


def test_a_finished_variant_rerun_with_other_overrides_is_refused(
    finished: dict[str, Any],
) -> None:
    with pytest.raises(ValueError, match=r"overrides.json: this variant was run with"):
        run_study(
            finished["study"],
            finished["out"],
            [*finished["overrides"], "train.stages.full.steps=9"],
            CONFIGS,
            progress=False,
        )


def test_run_names_with_odd_characters_are_kept_verbatim(tmp_path: Path) -> None:
    from handshape.ablation import _variant_config

    study = Study(name="123", title="T", experiment="tiny", variants={"A": []})
    cfg = _variant_config(study, "run #2", [], tmp_path, CONFIGS)
    assert cfg.output == str(tmp_path / "run #2")
    assert cfg.train.logging.group == "123" and cfg.experiment == "123-run #2"
