"""A study's results: the markdown table beside the paper's numbers, the PCK curves and the
figure of every variant's meshes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from PIL import Image, ImageDraw
from torch.utils.data import default_collate

from handshape.data.registry import eval_dataset
from handshape.evaluation.evaluate import predict_batch
from handshape.evaluation.metrics import format_mm, plot_pck
from handshape.handmodel.model import HandModel
from handshape.nets.bundle import load_network
from handshape.render.overlays import overlay_row
from handshape.safeio.atomic import atomic_write, atomic_write_text
from handshape.studies.spec import Study

__all__ = ["label_rows", "previews", "results_table", "write_report"]


def write_report(study: Study, out: Path, base: DictConfig, results: dict[str, Any]) -> str:
    """OUT/table.md, OUT/pck.png and OUT/previews.png; returns the table."""
    table = results_table(study, results)
    atomic_write_text(out / "table.md", table)
    curves = {
        name: (np.asarray(r["pck_curve"]["thresholds_mm"]), np.asarray(r["pck_curve"]["pck"]))
        for name, r in results.items()
    }
    plot_pck(curves, out / "pck.png", title=study.title)
    previews(study, out, base)
    return table


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
    data = eval_dataset(str(base.data.name), Path(base.data.root))
    batch = default_collate([data[i] for i in range(min(count, len(data)))])
    faces = HandModel.load(base.handmodel.mano).data.faces
    rows, labels = [], []
    for name in study.variants:
        net, cfg = load_network(out / name / "bundle")
        gt, pred = predict_batch(net, cfg, batch)
        rows.append(overlay_row(gt, pred.vertices, pred.joints, faces, count))
        labels.append(name)
    rows.append(overlay_row(gt, gt["vertices"], gt["joints_3d"], faces, count))
    labels.append("ground truth")
    image = label_rows(np.concatenate(rows, axis=0), labels, rows[0].shape[0])
    path = out / "previews.png"
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
    return path


def label_rows(grid: np.ndarray, labels: list[str], row_height: int) -> Image.Image:
    """The grid with a white margin on the left holding each row's label."""
    margin = 110
    canvas = Image.new("RGB", (grid.shape[1] + margin, grid.shape[0]), (255, 255, 255))
    canvas.paste(Image.fromarray(grid), (margin, 0))
    draw = ImageDraw.Draw(canvas)
    for i, label in enumerate(labels):
        draw.text((6, i * row_height + row_height // 2 - 6), label, fill=(0, 0, 0))
    return canvas
