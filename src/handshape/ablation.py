"""Side-by-side studies: several variants of one experiment, trained alike, evaluated alike.

A study is a YAML file (configs/study/*.yaml):

    title: Table 1 - loss terms            # heading of the markdown table
    experiment: quick                      # the base experiment every variant starts from
    shared_stages: [hourglass, pose_regressor]   # trained once, copied into every variant
    variants:                              # name -> key=value overrides of the base experiment
      Full: []
      -Normal: [train.loss_weights.normal=0]
      Transfer: {after: Full, overrides: [model.pose_from=latent]}   # continues Full's training
    paper:                                 # optional reference numbers, mm
      Full: {mesh: 7.95, pose: 8.03}

Every variant uses the same data, seed and budget; it differs only by its overrides. Stages
that no override touches (by default the hourglass and the pose regressor, which see neither the
head nor the mesh losses) are trained once under OUT/shared/ and copied into each variant, so a
study costs one pretraining plus one end-to-end stage per variant. Runs are resumable: a
variant with metrics is skipped, an interrupted one resumes (`run_pretraining`). W&B runs are
grouped by study. A variant ``after`` another one takes that variant's overrides, adds its own
(only ones the earlier variant's end-to-end stage did not see: where the joints come from, the
latent regressor, the transfer budget; `handshape.lit.reuse`), copies that variant's stages up
to the end-to-end one and trains what comes after. A folder made under other overrides or
settings is refused, not reused. With several GPUs, variants run side by side, one per GPU.
Results:
OUT/<variant>/eval/metrics.json, OUT/table.md, OUT/pck.png (every variant's 3D PCK curve) and
OUT/previews.png (the first validation images with each variant's prediction, and the ground
truth).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
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

from handshape.atomic import atomic_write, atomic_write_text
from handshape.config import DEFAULT_CONFIGS, load_experiment
from handshape.data.synth.reader import SyntheticDataset
from handshape.evaluate import evaluate, load_network, write_results
from handshape.lit.pretrain import (
    lift_prediction,
    load_hand_model,
    overlay_row,
    prepare_batch,
    stages_for,
)
from handshape.lit.reuse import RUN_SETTINGS, changed_settings, unseen_by
from handshape.lit.train import run_pretraining
from handshape.metrics import format_mm, plot_pck

__all__ = ["Study", "load_study", "results_table", "run_study"]

SHAREABLE = ("hourglass", "pose_regressor")  # the stages that see neither head nor mesh losses


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    experiment: str
    variants: dict[str, list[str]]  # every variant's overrides, an `after` variant's included
    shared_stages: tuple[str, ...] = SHAREABLE
    paper: dict[str, dict[str, float]] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)  # variant -> the variant it continues


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
    overrides_of: dict[str, list[str]] = {}
    after: dict[str, str] = {}
    for name, spec in variants.items():
        name = str(name)
        if not re.fullmatch(r"[\w+\-]([\w+\- ]*[\w+\-])?", name) or name == "shared":
            raise ValueError(
                f"{path}: '{name}' cannot name a variant (it names a folder: letters, digits, "
                "spaces inside, '_', '+', '-'; not 'shared')"
            )
        own = spec
        if isinstance(spec, dict):
            if set(spec) - {"after", "overrides"} or "after" not in spec:
                raise ValueError(
                    f"{path}: variant '{name}': a mapping takes `after` (an earlier variant) "
                    "and `overrides`"
                )
            earlier = str(spec["after"])
            if earlier not in overrides_of:
                raise ValueError(
                    f"{path}: variant '{name}' comes after '{earlier}', which is not a variant "
                    "listed before it"
                )
            after[name] = earlier
            own = spec.get("overrides") or []
        if not isinstance(own, list) or not all(isinstance(o, str) and "=" in o for o in own):
            raise ValueError(f"{path}: variant '{name}' needs a list of key=value overrides")
        overrides_of[name] = [*overrides_of.get(after.get(name, ""), []), *own]
    shared = tuple(raw.get("shared_stages", SHAREABLE))
    if not set(shared) <= set(SHAREABLE):
        raise ValueError(f"{path}: shared_stages must be among {', '.join(SHAREABLE)}")
    return Study(
        name=Path(path).stem,
        title=str(raw["title"]),
        experiment=str(raw["experiment"]),
        variants=overrides_of,
        shared_stages=shared,
        paper={str(k): dict(v) for k, v in (raw.get("paper") or {}).items()},
        after=after,
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


def _container(cfg: DictConfig) -> dict[str, Any]:
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    return plain


def _check_shareable(study: Study, name: str, base: DictConfig, cfg: DictConfig) -> None:
    """Refuse a variant that changes what a shared stage saw (budgets of the stages it does
    not share included)."""
    mine = _container(cfg)
    own_budgets = tuple(f"train.stages.{s}." for s in study.shared_stages)
    for stage in study.shared_stages:
        ignore = tuple(p for p in unseen_by(stage, mine) if p != "train.stages.")
        changed = [
            k
            for k in changed_settings(_container(base), mine, ignore)
            if not k.startswith("train.stages.") or k.startswith(own_budgets)
        ]
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
    devices: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Train and evaluate every variant (skipping finished ones); write the table and figures.

    overrides: key=value applied to every variant (e.g. a shorter budget). ensure_data: a
    callable(cfg) that makes the experiment's synthetic set where it is missing. devices: the
    GPUs to run variants on side by side, one variant per GPU (default: `parallel_devices`;
    one device or none: one variant after the other).
    Returns per variant: metrics.json's content plus "minutes" (training wall time, also
    for variants trained by an earlier run; None where unknown).
    """
    out = Path(out)
    common = list(overrides or [])
    base = _variant_config(study, "shared", common, out, configs)
    configs_of = {
        name: _variant_config(study, name, [*common, *extra], out, configs)
        for name, extra in study.variants.items()
    }
    # Before any training: a refused study costs nothing.
    if study.shared_stages:
        for name, cfg in configs_of.items():
            _check_shareable(study, name, base, cfg)
    for name, earlier in study.after.items():
        mine = _container(configs_of[name])
        changed = changed_settings(_container(configs_of[earlier]), mine, unseen_by("full", mine))
        if changed:
            raise ValueError(
                f"study '{study.name}': variant '{name}' continues '{earlier}' but changes "
                f"{', '.join(changed)}, which its copied stages depend on"
            )
    for write in (False, True):  # every folder checked before any is written
        for name, variant_overrides in study.variants.items():
            _claim(out / name, [*common, *variant_overrides], configs_of[name], write)
    if ensure_data is not None:
        ensure_data(base)
    if study.shared_stages:
        # Checked stage by stage against the settings they saw (`handshape.lit.reuse`).
        run_pretraining(base, progress, stages=study.shared_stages)
    pending = []
    for name in study.variants:
        if (out / name / "eval" / "metrics.json").exists():
            print(f"[study] {name}: done earlier ({out / name / 'eval'})")
        else:
            pending.append(name)
    slots = parallel_devices(base) if devices is None else list(devices)
    if len(slots) > 1 and len(pending) > 1:
        _train_in_parallel(study, {n: configs_of[n] for n in pending}, out, slots)
    else:
        for name in pending:
            _train_variant(study, name, configs_of[name], out, progress)
    results = {name: _read_results(out / name) for name in study.variants}
    table = results_table(study, results)
    atomic_write_text(out / "table.md", table)
    curves = {
        name: (np.asarray(r["pck_curve"]["thresholds_mm"]), np.asarray(r["pck_curve"]["pck"]))
        for name, r in results.items()
    }
    pck = plot_pck(curves, out / "pck.png", title=study.title)
    figure = previews(study, out, base)
    print(table)
    print(f"[study] wrote {out / 'table.md'}, {pck} and {figure}")
    return results


def parallel_devices(cfg: DictConfig) -> list[str]:
    """The GPUs a study can run its variants on side by side: every visible CUDA device, when
    there are several and each variant trains on one device; otherwise none (sequential: on
    CPU, or when each variant spreads over the GPUs itself with DDP)."""
    trainer = cfg.train.trainer
    if str(trainer.accelerator) not in ("gpu", "cuda", "auto") or str(trainer.devices) != "1":
        return []
    if int(trainer.num_nodes) != 1 or not torch.cuda.is_available():
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        ids = [d.strip() for d in visible.split(",") if d.strip()]
    else:
        ids = [str(i) for i in range(torch.cuda.device_count())]
    return ids if len(ids) > 1 else []


def _train_variant(study: Study, name: str, cfg: DictConfig, out: Path, progress: bool) -> None:
    """Train one variant (from its copied stages onwards) and evaluate it into OUT/<name>/eval."""
    folder = out / name
    stages = stages_for(OmegaConf.to_container(cfg.model, resolve=True))
    if name in study.after:
        # What the earlier variant trained up to the end-to-end stage: what comes after it
        # (the transfer stage) sees the settings a continuing variant may change.
        source = out / study.after[name]
        for stage in stages[: stages.index("full") + 1]:
            if (source / stage / "DONE").exists():
                _copy_stage(source / stage, folder / stage)
    for stage in study.shared_stages:
        # A stage the base network lacks (a pose-only base) was not shared: trained here.
        if stage in stages and (out / "shared" / stage / "DONE").exists():
            _copy_stage(out / "shared" / stage, folder / stage)
    print(f"[study] {name}: {' '.join(study.variants[name]) or '(base experiment)'}")
    start = time.perf_counter()
    bundle = run_pretraining(cfg, progress)
    minutes = (time.perf_counter() - start) / 60
    net, resolved = load_network(bundle)
    metrics = evaluate(net, resolved, Path(cfg.data.root) / "val", progress=progress)
    # Minutes first: metrics.json marks the variant finished.
    atomic_write_text(folder / "eval" / "train_minutes.txt", f"{minutes}\n")
    write_results(metrics, folder / "eval")


def _read_results(folder: Path) -> dict[str, Any]:
    """A finished variant's metrics.json plus "minutes" (None where not recorded)."""
    minutes = folder / "eval" / "train_minutes.txt"
    return {
        **json.loads((folder / "eval" / "metrics.json").read_text()),
        "minutes": float(minutes.read_text()) if minutes.exists() else None,
    }


def _variant_process(study: Study, name: str, cfg: DictConfig, out: Path) -> None:
    """Entry point of a variant's own process (one GPU, set by its parent): output into
    OUT/<name>/train.log."""
    log = out / name / "train.log"
    with open(log, "a", buffering=1) as stream:
        # File descriptors, not sys.stdout: Lightning's and W&B's handlers write there too.
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        print(f"[study] {name} on CUDA_VISIBLE_DEVICES={visible}, started at {time.time():.3f}")
        _train_variant(study, name, cfg, out, progress=False)


def _train_in_parallel(
    study: Study, configs: dict[str, DictConfig], out: Path, devices: list[str], poll: float = 2.0
) -> None:
    """Each variant in its own process on its own device, as many at once as there are
    devices; a variant after another waits for it. Raises naming the variants that failed."""
    context = mp.get_context("spawn")  # a fresh CUDA state per process
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the shared stages trained here; give their memory back
    waiting = list(configs)
    running: dict[str, tuple[Any, str]] = {}
    free = list(devices)
    failed: list[str] = []
    while waiting or running:
        for name in list(waiting):
            if not free:
                break
            if study.after.get(name) in waiting or study.after.get(name) in running:
                continue  # the variant it continues has not finished yet
            device = free.pop(0)
            args = (study, name, configs[name], out)
            process = context.Process(target=_variant_process, args=args, name=f"study-{name}")
            # The child inherits the variable at start, before its imports could touch CUDA.
            previous = os.environ.get("CUDA_VISIBLE_DEVICES")
            os.environ["CUDA_VISIBLE_DEVICES"] = device
            try:
                process.start()
            finally:
                if previous is None:
                    del os.environ["CUDA_VISIBLE_DEVICES"]
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = previous
            running[name] = (process, device)
            waiting.remove(name)
            print(f"[study] {name}: started on device {device} (log: {out / name / 'train.log'})")
        time.sleep(poll)
        for name, (process, device) in list(running.items()):
            if process.is_alive():
                continue
            process.join()
            del running[name]
            free.append(device)
            if process.exitcode == 0:
                print(f"[study] {name}: finished")
                continue
            failed.append(name)
            # Variants that continue a failed one (directly or not) cannot run.
            while lost := [v for v in waiting if study.after.get(v) in failed]:
                failed += lost
                waiting = [v for v in waiting if v not in lost]
    if failed:
        logs = ", ".join(str(out / name / "train.log") for name in failed)
        raise RuntimeError(f"study '{study.name}': variants {failed} did not finish; see {logs}")


def _copy_stage(source: Path, target: Path) -> None:
    """A finished stage's folder copied into a variant, unless the variant has it already;
    copied under a temporary name, then renamed, so that an interrupted copy is redone."""
    if (target / "DONE").exists():
        return
    tmp = target.parent / f".{target.name}.copying"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, tmp)
    tmp.rename(target)


_CLAIM_IGNORES = tuple(p for p in RUN_SETTINGS if p != "train.stages.")


def _claim(folder: Path, overrides: list[str], cfg: DictConfig, write: bool = True) -> None:
    """Refuse a variant folder made with other overrides or resolved settings (its results
    would be stale), e.g. after a config file changed; with ``write``, record them in it.
    Folders from before settings were recorded are checked against their bundle's config."""
    record, settings = folder / "overrides.json", folder / "settings.json"
    mine = _container(cfg)
    if record.exists():
        found = json.loads(record.read_text())
        if found != overrides:
            raise ValueError(
                f"{record}: this variant was run with {found}, now {overrides}; "
                "use another --out or delete the folder"
            )
        bundle = folder / "bundle" / "config.yaml"
        source = settings if settings.exists() else bundle if bundle.exists() else None
        if source is not None:
            before = yaml.safe_load(source.read_text())
            # Budgets too: a finished variant is not retrained, so nothing else would see them.
            changed = changed_settings(before, mine, _CLAIM_IGNORES)
            if changed:
                raise ValueError(
                    f"{source}: this variant was run with other settings ({', '.join(changed)}"
                    "); use another --out or delete the folder"
                )
    if write:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(settings, json.dumps(mine, indent=1, sort_keys=True))
        atomic_write_text(record, json.dumps(overrides))


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
            f"| {name} | {format_mm(r['mesh_error_mm'])} | {r['pose_error_mm']:.1f} "
            f"| {r['pck']['auc_20_50']:.3f} | {minutes} |"
        )
        if has_paper:
            ref = study.paper.get(name, {})
            row += "".join(f" {ref[k]:.2f} |" if k in ref else " - |" for k in ("mesh", "pose"))
        lines.append(row)
    samples = {r["samples"] for r in results.values()}
    lines += ["", f"Validation samples: {', '.join(str(s) for s in sorted(samples))}."]
    if study.after:
        continued = ", ".join(f"{k} after {v}" for k, v in study.after.items())
        lines.append(
            f"Training minutes of a variant after another count its own stages only: {continued}."
        )
    lines.append("")
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
        vertices = (
            None if pred.vertices is None else lift_prediction(pred.vertices, gt, net.input_size)
        )
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
