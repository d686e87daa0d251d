"""Side-by-side studies: several variants of one experiment, trained alike, evaluated alike.

A study is a YAML file (configs/study/*.yaml):

    title: Table 1 - loss terms            # heading of the markdown table
    experiment: quick                      # the base experiment every variant starts from
    shared_stages: [hourglass, pose_regressor]   # trained once, copied into every variant
    variants:                              # name -> key=value overrides of the base experiment
      Full: []
      -Normal: [train.loss_weights.normal=0]
    paper:                                 # optional reference numbers, mm
      Full: {mesh: 7.95, pose: 8.03}

Every variant uses the same data, seed and budget; it differs only by its overrides. Stages
that no override touches (by default the hourglass and the pose regressor, which see neither the
head nor the mesh losses) are trained once under OUT/shared/ and copied into each variant, so a
study costs one pretraining plus one end-to-end stage per variant. Runs are resumable: a
variant with metrics is skipped, an interrupted one resumes (`run_pretraining`). W&B runs are
grouped by study. Results: OUT/<variant>/eval/metrics.json, OUT/table.md and OUT/previews.png
(the first validation images with each variant's mesh, and the ground truth).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from PIL import Image, ImageDraw
from torch.utils.data import default_collate

from handshape.atomic import atomic_write
from handshape.config import DEFAULT_CONFIGS, load_experiment
from handshape.data.synth.reader import SyntheticDataset
from handshape.evaluate import evaluate, load_network, write_results
from handshape.lit.pretrain import (
    STAGES,
    lift_prediction,
    load_hand_model,
    overlay_row,
    prepare_batch,
)
from handshape.lit.train import run_pretraining

__all__ = ["Study", "load_study", "results_table", "run_study"]


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    experiment: str
    variants: dict[str, list[str]]
    shared_stages: tuple[str, ...] = ("hourglass", "pose_regressor")
    paper: dict[str, dict[str, float]] = field(default_factory=dict)


def load_study(path: Path) -> Study:
    """Read and check a study file; errors name the file and the problem."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot read the study ({err})") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping with title, experiment and variants")
    missing = {"title", "experiment", "variants"} - set(raw)
    unknown = set(raw) - {"title", "experiment", "variants", "shared_stages", "paper"}
    if missing or unknown:
        raise ValueError(f"{path}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    variants = raw["variants"]
    if not isinstance(variants, dict) or not variants:
        raise ValueError(f"{path}: variants must map names to lists of key=value overrides")
    for name, overrides in variants.items():
        if not isinstance(overrides, list) or not all(
            isinstance(o, str) and "=" in o for o in overrides
        ):
            raise ValueError(f"{path}: variant '{name}' needs a list of key=value overrides")
        if not re.fullmatch(r"[\w+\-]([\w+\- ]*[\w+\-])?", str(name)) or name == "shared":
            raise ValueError(
                f"{path}: '{name}' cannot name a variant (it names a folder: letters, digits, "
                "spaces inside, '_', '+', '-'; not 'shared')"
            )
    shared = tuple(raw.get("shared_stages", ("hourglass", "pose_regressor")))
    if not set(shared) <= set(STAGES) - {"full"}:
        raise ValueError(f"{path}: shared_stages must be among hourglass, pose_regressor")
    return Study(
        name=Path(path).stem,
        title=str(raw["title"]),
        experiment=str(raw["experiment"]),
        variants={str(k): list(v) for k, v in variants.items()},
        shared_stages=shared,
        paper={str(k): dict(v) for k, v in (raw.get("paper") or {}).items()},
    )


def _variant_config(
    study: Study, name: str, overrides: list[str], out: Path, configs: Path | None
) -> DictConfig:
    cfg = load_experiment(study.experiment, overrides, configs or DEFAULT_CONFIGS)
    # Set as values, not parsed as key=value text: names may hold spaces, '#', ': ' ...
    OmegaConf.update(cfg, "output", str(out / name))
    OmegaConf.update(cfg, "experiment", f"{study.name}-{name}")
    OmegaConf.update(cfg, "train.logging.group", study.name)
    return cfg


# What a variant may change while still reusing the shared stages: nothing that the hourglass
# or the pose regressor sees (their data, sizes, seed, optimiser and schedule).
_FREE_FOR_VARIANTS = ("model.head.", "train.loss_weights.", "train.stages.full.")
_RUN_NAMES = ("output", "experiment", "train.logging.group")


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): tree}


def _check_shareable(study: Study, name: str, base: DictConfig, cfg: DictConfig) -> None:
    a = _flat(OmegaConf.to_container(base, resolve=True))
    b = _flat(OmegaConf.to_container(cfg, resolve=True))
    changed = sorted(
        k
        for k in set(a) | set(b)
        if a.get(k) != b.get(k) and k not in _RUN_NAMES and not k.startswith(_FREE_FOR_VARIANTS)
    )
    if changed:
        raise ValueError(
            f"study '{study.name}': variant '{name}' changes {', '.join(changed)}, which the "
            f"shared stages ({', '.join(study.shared_stages)}) depend on; give the study "
            "`shared_stages: []` to train every stage per variant"
        )


def run_study(
    study: Study,
    out: Path,
    overrides: list[str] | None = None,
    configs: Path | None = None,
    progress: bool = True,
    ensure_data: Any = None,
) -> dict[str, dict[str, Any]]:
    """Train and evaluate every variant (skipping finished ones); write the table and figure.

    overrides: key=value applied to every variant (e.g. a shorter budget). ensure_data: a
    callable(cfg) that makes the experiment's synthetic set where it is missing.
    Returns per variant: metrics.json's content plus "minutes" (training wall time, or None
    when it was trained by an earlier run).
    """
    out = Path(out)
    common = list(overrides or [])
    base = _variant_config(study, "shared", common, out, configs)
    configs_of = {
        name: _variant_config(study, name, [*common, *extra], out, configs)
        for name, extra in study.variants.items()
    }
    if study.shared_stages:  # before any training: a refused study costs nothing
        for name, cfg in configs_of.items():
            _check_shareable(study, name, base, cfg)
    if ensure_data is not None:
        ensure_data(base)
    if study.shared_stages:
        run_pretraining(base, progress, stages=study.shared_stages)
    results: dict[str, dict[str, Any]] = {}
    for name, variant_overrides in study.variants.items():
        cfg = configs_of[name]
        folder = out / name
        _claim(folder, [*common, *variant_overrides])
        metrics = folder / "eval" / "metrics.json"
        if metrics.exists():
            print(f"[study] {name}: done earlier ({metrics})")
            results[name] = {**json.loads(metrics.read_text()), "minutes": None}
            continue
        for stage in study.shared_stages:
            if not (folder / stage / "DONE").exists():
                # Copied under a temporary name, then renamed: an interrupted copy is redone.
                tmp = folder / f".{stage}.copying"
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.rmtree(folder / stage, ignore_errors=True)
                shutil.copytree(out / "shared" / stage, tmp)
                tmp.rename(folder / stage)
        print(f"[study] {name}: {' '.join(variant_overrides) or '(base experiment)'}")
        start = time.perf_counter()
        bundle = run_pretraining(cfg, progress)
        minutes = (time.perf_counter() - start) / 60
        net, resolved = load_network(bundle)
        metrics_out = evaluate(net, resolved, Path(cfg.data.root) / "val", progress=progress)
        write_results(metrics_out, folder / "eval")
        results[name] = {**metrics_out, "minutes": minutes}
    table = results_table(study, results)
    atomic_write(out / "table.md", lambda tmp: Path(tmp).write_text(table))
    figure = previews(study, out, base)
    print(table)
    print(f"[study] wrote {out / 'table.md'} and {figure}")
    return results


def _claim(folder: Path, overrides: list[str]) -> None:
    """Record a variant's overrides in its folder; refuse a folder made with other ones (its
    results would be stale)."""
    record = folder / "overrides.json"
    if record.exists():
        found = json.loads(record.read_text())
        if found != overrides:
            raise ValueError(
                f"{record}: this variant was run with {found}, now {overrides}; "
                "use another --out or delete the folder"
            )
        return
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(record, lambda tmp: Path(tmp).write_text(json.dumps(overrides)))


def results_table(study: Study, results: dict[str, dict[str, Any]]) -> str:
    """Markdown: one row per variant, mesh and pose error (mm), AUC, the paper's numbers."""
    has_paper = any(name in study.paper for name in results)
    head = "| Variant | Mesh error (mm) | Pose error (mm) | AUC 20-50 | Train (min) |"
    rule = "|---|---:|---:|---:|---:|"
    if has_paper:
        head += " Paper mesh | Paper pose |"
        rule += "---:|---:|"
    lines = [f"## {study.title}", "", head, rule]
    for name, r in results.items():
        minutes = "-" if r.get("minutes") is None else f"{r['minutes']:.1f}"
        row = (
            f"| {name} | {r['mesh_error_mm']:.1f} | {r['pose_error_mm']:.1f} "
            f"| {r['pck']['auc_20_50']:.3f} | {minutes} |"
        )
        if has_paper:
            ref = study.paper.get(name, {})
            row += "".join(f" {ref[k]:.2f} |" if k in ref else " - |" for k in ("mesh", "pose"))
        lines.append(row)
    samples = {r["samples"] for r in results.values()}
    lines += ["", f"Validation samples: {', '.join(str(s) for s in sorted(samples))}.", ""]
    return "\n".join(lines)


def previews(study: Study, out: Path, base: DictConfig, count: int = 4) -> Path:
    """PNG: the first ``count`` validation images with each variant's predicted mesh (one row
    per variant) and the ground truth (last row), each row labelled."""
    data = SyntheticDataset(Path(base.data.root) / "val", train=False)
    batch = default_collate([data[i] for i in range(min(count, len(data)))])
    faces = load_hand_model(base.handmodel.mano).data.faces
    rows, labels = [], []
    for name in study.variants:
        net, cfg = load_network(out / name / "bundle")
        gt = prepare_batch(batch, net.input_size, cfg["model"]["heatmap_sigma"])
        with torch.no_grad():
            pred = net(gt["image"])
        vertices = lift_prediction(pred.vertices, gt, net.input_size)
        joints = lift_prediction(pred.joints, gt, net.input_size)
        rows.append(overlay_row(gt, vertices, joints, faces, count))
        labels.append(name)
    rows.append(overlay_row(gt, gt["vertices"], gt["joints_3d"], faces, count))
    labels.append("ground truth")
    image = _label_rows(np.concatenate(rows, axis=0), labels, rows[0].shape[0])
    path = out / "previews.png"
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
    return path


def _label_rows(grid: np.ndarray, labels: list[str], row_height: int) -> Image.Image:
    """The grid with a white margin on the left holding each row's label."""
    margin = 110
    canvas = Image.new("RGB", (grid.shape[1] + margin, grid.shape[0]), (255, 255, 255))
    canvas.paste(Image.fromarray(grid), (margin, 0))
    draw = ImageDraw.Draw(canvas)
    for i, label in enumerate(labels):
        draw.text((6, i * row_height + row_height // 2 - 6), label, fill=(0, 0, 0))
    return canvas
