"""The markdown report that `make pretrain` leaves in its output folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from handshape.evaluation.metrics import format_mm
from handshape.safeio.atomic import atomic_write_text

PAPER = {"mesh_error_mm": 7.95, "pose_error_mm": 8.03}  # Table 1, "Full", synthetic validation


def write_report(out: Path, results: dict[str, Any]) -> Path:
    """out/report.md: metrics next to the paper's, the PCK plot, where everything lies."""
    pck, mesh = results["pck"], format_mm(results["mesh_error_mm"], 2)
    lines = [
        "# Pretraining report",
        "",
        f"Evaluated on {results['samples']} synthetic validation samples (held-out viewpoints "
        "and gesture variants), predictions lifted with the ground-truth root depth and hand "
        "scale as in the paper.",
        "",
        "| metric | this run | paper (Table 1, full model, paper-scale training) |",
        "|---|---|---|",
        f"| mesh error (mm) | {mesh} | {PAPER['mesh_error_mm']} |",
        f"| pose error (mm) | {results['pose_error_mm']:.2f} | {PAPER['pose_error_mm']} |",
        f"| 3D PCK AUC, 20-50 mm (20 thresholds) | {pck['auc_20_50']:.3f} | |",
        f"| 3D PCK AUC, 20-50 mm (Zimmermann's 12) | {pck['auc_20_50_zb']:.3f} | |",
        f"| 3D PCK AUC, 0-50 mm | {pck['auc_0_50']:.3f} | |",
        f"| PCK at 20 / 30 / 40 / 50 mm | {pck['pck_20']:.3f} / {pck['pck_30']:.3f} / "
        f"{pck['pck_40']:.3f} / {pck['pck_50']:.3f} | |",
        "",
        "![3D PCK](eval/pck.png)",
        "",
        "Files: `eval/metrics.json` (all numbers and the PCK curve), `logs/` (CSV per stage; W&B "
        "offline runs under `logs/wandb`, `wandb sync` uploads them), `<stage>/checkpoints/` "
        "(last and best), `bundle/` (safetensors weights + resolved config for "
        "`handshape eval` / `handshape predict`).",
        "",
    ]
    text = "\n".join(lines)
    return atomic_write_text(out / "report.md", text)
