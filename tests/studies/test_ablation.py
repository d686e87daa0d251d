"""Studies: variants trained alike on shared stages, a table, a figure, resumable."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf
from PIL import Image

from handshape.config import PACKAGE_CONFIGS
from handshape.lit.train import run_pretraining
from handshape.studies.report import results_table
from handshape.studies.run import run_study
from handshape.studies.spec import Study, load_study

REPO = Path(__file__).resolve().parents[2]
CONFIGS = PACKAGE_CONFIGS


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
        ({"variants": {"B": {"after": "A"}}}, "'B' comes after 'A', which is not a variant"),
        ({"variants": {"A": [], "B": {"overrides": []}}}, "'B': a mapping takes `after`"),
        ({"variants": {"A": [], "B": {"after": "A", "x": 1}}}, "'B': a mapping takes `after`"),
        ({"colour": "red"}, r"unknown keys \['colour'\]"),
        ({"kind": "sweep"}, "kind must be one of pretrain, finetune, got 'sweep'"),
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

    monkeypatch.setattr("handshape.studies.run.run_pretraining", no_training)
    monkeypatch.setattr("handshape.lit.pipeline.run_pretraining", no_training)
    results = run_study(
        finished["study"], finished["out"], finished["overrides"], CONFIGS, progress=False
    )
    for name, r in results.items():  # the training minutes of the first run, read back
        assert r["minutes"] == pytest.approx(finished["results"][name]["minutes"])


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
    from handshape.studies.spec import variant_config

    study = Study(name="123", title="T", experiment="tiny", variants={"A": []})
    cfg = variant_config(study, "run #2", [], tmp_path, CONFIGS)
    assert cfg.output == str(tmp_path / "run #2")
    assert cfg.train.logging.group == "123" and cfg.experiment == "123-run #2"


# ---- a study with a pose-only variant and one that continues another (Fig. 8) -----------------


@pytest.fixture(scope="module")
def pose_study(
    tmp_path_factory: pytest.TempPathFactory, tiny_data_overrides: Callable[[Path], list[str]]
) -> dict[str, Any]:
    """configs/study/pose.yaml as shipped, on the tiny experiment, plus a variant continuing the
    task transfer with another transfer budget."""
    base = tmp_path_factory.mktemp("pose-study")
    spec = yaml.safe_load((CONFIGS / "study" / "pose.yaml").read_text())
    longer = {"after": "Task transfer", "overrides": ["train.stages.transfer.steps=3"]}
    spec["variants"]["Longer transfer"] = longer
    (base / "pose.yaml").write_text(yaml.safe_dump({**spec, "experiment": "tiny"}, sort_keys=False))
    study = load_study(base / "pose.yaml")
    out = base / "out"
    overrides = tiny_data_overrides(base)
    results = run_study(study, out, overrides, CONFIGS, progress=False)
    return {"study": study, "out": out, "results": results}


def test_the_pose_study_reads_its_variants(pose_study: dict[str, Any]) -> None:
    study = pose_study["study"]
    assert list(study.variants)[:3] == ["Baseline 1", "Baseline 2", "Task transfer"]
    assert study.after["Task transfer"] == "Baseline 2"
    # a variant after another takes its overrides, then adds its own
    own = ["model.pose_from=latent"]
    assert study.variants["Task transfer"] == [*study.variants["Baseline 2"], *own]


def test_a_pose_only_variant_trains_no_mesh_stages_and_has_no_mesh_error(
    pose_study: dict[str, Any],
) -> None:
    out, results = pose_study["out"], pose_study["results"]
    folder = out / "Baseline 1"
    assert (folder / "hourglass" / "DONE").exists() and (folder / "full" / "DONE").exists()
    assert not (folder / "pose_regressor").exists()  # no mesh for it to read
    assert results["Baseline 1"]["mesh_error_mm"] is None
    assert np.isfinite(results["Baseline 1"]["pose_error_mm"])
    table = (out / "table.md").read_text().splitlines()
    assert next(r for r in table if r.startswith("| Baseline 1")).startswith("| Baseline 1 | - | ")


def test_a_variant_after_another_continues_its_training(pose_study: dict[str, Any]) -> None:
    out, results = pose_study["out"], pose_study["results"]
    for stage in ("hourglass", "pose_regressor", "full"):
        mine = out / "Task transfer" / stage / "checkpoints" / "last.ckpt"
        theirs = out / "Baseline 2" / stage / "checkpoints" / "last.ckpt"
        assert mine.read_bytes() == theirs.read_bytes()
    assert (out / "Task transfer" / "transfer" / "DONE").exists()
    assert not (out / "Baseline 2" / "transfer").exists()
    # the same mesh (a copy of Baseline 2's network), other joints (from the latent)
    transfer, papers = results["Task transfer"], results["Baseline 2"]
    assert transfer["mesh_error_mm"] == pytest.approx(papers["mesh_error_mm"], rel=1e-5)
    assert transfer["pose_error_mm"] != pytest.approx(papers["pose_error_mm"], rel=1e-5)
    table = (out / "table.md").read_text()
    assert "count its own stages only: Task transfer after Baseline 2" in table


def test_a_variant_after_another_trains_its_own_later_stages(pose_study: dict[str, Any]) -> None:
    """Continuing the task transfer with another transfer budget copies the stages up to the
    end-to-end one and trains its own transfer stage (not the copied 2-step one)."""
    out = pose_study["out"]
    assert (out / "Longer transfer" / "transfer" / "DONE").read_text().strip() == "3 steps"
    assert (out / "Task transfer" / "transfer" / "DONE").read_text().strip() == "2 steps"
    full = "full/checkpoints/last.ckpt"
    assert (out / "Longer transfer" / full).read_bytes() == (out / "Baseline 2" / full).read_bytes()


def test_every_study_draws_the_pck_curves_of_its_variants(pose_study: dict[str, Any]) -> None:
    image = np.asarray(Image.open(pose_study["out"] / "pck.png"))
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
    figure = np.asarray(Image.open(pose_study["out"] / "previews.png"))
    assert figure.shape[0] == 5 * 64  # four variants (one drawn as a skeleton) and the truth


def test_a_variant_after_another_may_not_change_what_its_copied_stages_saw(
    tmp_path: Path, tiny_data_overrides: Callable[[Path], list[str]]
) -> None:
    variants = {"A": [], "B": {"after": "A", "overrides": ["train.loss_weights.edge=0"]}}
    study = load_study(write_study(tmp_path / "s.yaml", variants=variants))
    with pytest.raises(ValueError, match=r"'B' continues 'A' but changes train.loss_weights.edge"):
        run_study(study, tmp_path / "out", tiny_data_overrides(tmp_path), CONFIGS, progress=False)
    assert not (tmp_path / "out").exists()  # refused before anything was written


# ---- one variant per GPU, side by side ---------------------------------------------------------


def test_parallel_devices_are_the_visible_gpus_when_each_variant_takes_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from handshape.config import load_experiment
    from handshape.studies.scheduler import parallel_devices

    def cfg(*overrides: str) -> Any:
        return load_experiment("tiny", list(overrides), CONFIGS)

    assert parallel_devices(cfg()) == []  # the CPU: one variant after the other
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 4)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpu = "train.trainer.accelerator=gpu"
    assert parallel_devices(cfg(gpu)) == ["0", "1", "2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert parallel_devices(cfg(gpu)) == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert parallel_devices(cfg(gpu)) == []  # one GPU: nothing to run side by side
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert parallel_devices(cfg(gpu, "train.trainer.devices=4")) == []  # DDP takes them all
    assert parallel_devices(cfg("train.trainer.accelerator=cpu")) == []


@pytest.mark.slow
def test_variants_run_side_by_side_one_per_device(
    tmp_path: Path, tiny_data_overrides: Callable[[Path], list[str]]
) -> None:
    """Device names are passed through CUDA_VISIBLE_DEVICES, so any names work on a CPU."""
    variants = {
        "A": [],
        "B": ["train.loss_weights.edge=0"],
        "C": {"after": "A", "overrides": ["model.pose_from=latent"]},
    }
    study = load_study(write_study(tmp_path / "side.yaml", variants=variants, paper={}))
    out = tmp_path / "out"
    overrides = tiny_data_overrides(tmp_path)
    results = run_study(
        study, out, overrides, CONFIGS, progress=False, devices=["7", "8"]
    )
    logs = {name: (out / name / "train.log").read_text() for name in variants}
    assert "] A on CUDA_VISIBLE_DEVICES=7," in logs["A"]
    assert "] B on CUDA_VISIBLE_DEVICES=8," in logs["B"]
    assert re.search(r"\] C on CUDA_VISIBLE_DEVICES=[78],", logs["C"])
    # C continues A: it started once A had finished, from A's network
    started = float(re.search(r"C on .* started at ([0-9.]+)", logs["C"]).group(1))
    assert started >= (out / "A" / "eval" / "metrics.json").stat().st_mtime
    assert results["C"]["mesh_error_mm"] == pytest.approx(results["A"]["mesh_error_mm"], rel=1e-5)
    assert all(np.isfinite(r["pose_error_mm"]) for r in results.values())
    assert (out / "table.md").exists() and (out / "pck.png").exists()


@pytest.mark.slow
def test_a_variant_that_fails_in_its_process_is_named_with_those_after_it(
    tmp_path: Path, tiny_data_overrides: Callable[[Path], list[str]]
) -> None:
    variants = {
        "Broken": ["model.pose_from=latent", "model.latent_pose.hidden=0"],
        "Later": {"after": "Broken", "overrides": ["train.stages.transfer.steps=1"]},
        "Fine": [],
    }
    study = load_study(write_study(tmp_path / "bad.yaml", variants=variants, paper={}))
    out = tmp_path / "out"
    overrides = tiny_data_overrides(tmp_path)
    with pytest.raises(RuntimeError, match=r"variants \['Broken', 'Later'\] did not finish"):
        run_study(
            study, out, overrides, CONFIGS, progress=False, devices=["0", "1"]
        )
    assert "hidden must be positive" in (out / "Broken" / "train.log").read_text()
    assert (out / "Fine" / "eval" / "metrics.json").exists()  # the others still finish
    assert not (out / "Later" / "train.log").exists()


def test_a_variant_folder_made_with_other_settings_is_refused(tmp_path: Path) -> None:
    """Same overrides, but a config file changed since: the old results would be stale. The
    sections of heads the variant does not use are not its settings."""
    from handshape.config import load_experiment
    from handshape.studies.folders import claim

    before = load_experiment("tiny", [], CONFIGS)
    claim(tmp_path / "A", [], before)
    claim(tmp_path / "A", [], before)  # unchanged: accepted
    claim(tmp_path / "A", [], load_experiment("tiny", ["model.head.mano.hidden=7"], CONFIGS))
    changed = load_experiment("tiny", ["model.head.graphcnn.coarse_features=4"], CONFIGS)
    with pytest.raises(ValueError, match=r"settings.json: .*settings \(model.head.graphcnn.coarse"):
        claim(tmp_path / "A", [], changed)
    budget = load_experiment("tiny", ["train.stages.full.steps=9"], CONFIGS)
    with pytest.raises(ValueError, match=r"other settings \(train.stages.full.steps\)"):
        claim(tmp_path / "A", [], budget)  # a finished variant would not be retrained


def test_a_variant_folder_from_before_settings_were_recorded_is_checked_by_its_bundle(
    tmp_path: Path,
) -> None:
    from handshape.config import load_experiment
    from handshape.studies.folders import claim

    folder = tmp_path / "Old"
    (folder / "bundle").mkdir(parents=True)
    (folder / "overrides.json").write_text("[]")
    old = load_experiment("tiny", ["model.head.name=mano"], CONFIGS)
    (folder / "bundle" / "config.yaml").write_text(OmegaConf.to_yaml(old))
    claim(folder, [], old, write=False)
    newer = load_experiment("tiny", ["model.head.name=mano", "model.head.mano.hidden=7"], CONFIGS)
    with pytest.raises(ValueError, match=r"config.yaml: .*other settings \(model.head.mano.hidden"):
        claim(folder, [], newer)
