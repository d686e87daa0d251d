"""A study over several seeds: each seed's run in OUT/seed<k>/, then one table of every
variant's mean and spread, and which differences from the first variant exceed the spread.

The seed is `train.seed` (the networks' initial weights, the order of the batches and the
random backgrounds; the data stay the same). A difference counts as exceeding the spread when
the two means lie more than twice the larger of the two standard deviations apart (over the
seeds, with N - 1); with one seed there is no spread and the table says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from handshape.safeio.atomic import atomic_write_text
from handshape.studies.spec import Study

__all__ = ["row_values", "run_seeds", "seeds_table"]

METRICS = (("mesh", "Mesh error (mm)", 1), ("pose", "Pose error (mm)", 1), ("auc", "AUC 20-50", 3))


def row_values(result: dict[str, Any]) -> dict[str, float | None]:
    """Mesh error, pose error and AUC of one variant's result (a pretraining study's
    metrics.json, or a fine-tuning study's scores)."""
    if "mesh_error_mm" in result:
        auc = result["pck"]["auc_20_50"]
        mesh, pose = result["mesh_error_mm"], result["pose_error_mm"]
    else:
        mesh, pose, auc = result.get("mesh_error"), result["pose_error"], result["auc_20_50"]
    return {"mesh": mesh, "pose": pose, "auc": auc}


def run_seeds(
    study: Study,
    out: Path,
    seeds: int,
    overrides: list[str],
    run: Callable[[Path, list[str]], dict[str, dict[str, Any]]],
) -> dict[int, dict[str, dict[str, Any]]]:
    """`run(folder, overrides)` (one study run) for seeds 0..seeds-1 into OUT/seed<k>/, then
    OUT/table.md over all of them. Returns each seed's results."""
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    if any(o.lstrip("+").startswith("train.seed=") for o in overrides):
        raise ValueError("--seeds sets train.seed itself: drop the train.seed override")
    results = {k: run(out / f"seed{k}", [*overrides, f"train.seed={k}"]) for k in range(seeds)}
    atomic_write_text(out / "table.md", seeds_table(study, results))
    return results


def _stats(values: list[float]) -> tuple[float, float]:
    mean = float(np.mean(values))
    spread = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    return mean, spread


def seeds_table(study: Study, results: dict[int, dict[str, dict[str, Any]]]) -> str:
    """Markdown: per variant the mean +- standard deviation of each metric over the seeds, and
    which of its differences from the first variant exceed twice the larger spread."""
    seeds = sorted(results)
    names = list(results[seeds[0]])
    stats: dict[str, dict[str, tuple[float, float]]] = {}
    for name in names:
        rows = [row_values(results[k][name]) for k in seeds]
        stats[name] = {
            key: _stats([float(r[key]) for r in rows])  # type: ignore[arg-type]
            for key, _, _ in METRICS
            if all(r[key] is not None for r in rows)
        }
    reference = names[0]
    head = "| Variant | " + " | ".join(title for _, title, _ in METRICS) + " | Beyond the spread |"
    lines = [
        f"## {study.title}: {len(seeds)} seeds (train.seed {', '.join(map(str, seeds))})",
        "",
        head,
        "|---|" + "---:|" * len(METRICS) + "---|",
    ]
    for name in names:
        cells, beyond = [], []
        for key, title, digits in METRICS:
            if key not in stats[name]:
                cells.append("-")
                continue
            mean, spread = stats[name][key]
            cells.append(
                f"{mean:.{digits}f}" + ("" if math.isnan(spread) else f" +- {spread:.{digits}f}")
            )
            ref_mean, ref_spread = stats[reference].get(key, (math.nan, math.nan))
            limit = 2 * max(spread, ref_spread)
            if name != reference and not math.isnan(limit) and abs(mean - ref_mean) > limit:
                beyond.append(title.split(" (")[0].lower())
        verdict = "(reference)" if name == reference else ", ".join(beyond) or "none"
        if len(seeds) == 1:
            verdict = "- (one seed: no spread)"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {verdict} |")
    lines += [
        "",
        f"Each seed's own table: seed<k>/table.md. Beyond the spread: the variant's mean differs "
        f"from {reference}'s by more than twice the larger standard deviation.",
        "",
    ]
    return "\n".join(lines)
