"""Running a whole study: configs checked, folders claimed, shared stages trained once, the
variants trained (side by side on several GPUs), the report written."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from handshape.data.registry import prepare_data
from handshape.lit.train import run_pretraining
from handshape.studies.folders import claim, read_results
from handshape.studies.report import write_report
from handshape.studies.scheduler import parallel_devices, train_in_parallel
from handshape.studies.sharing import check_variants
from handshape.studies.spec import Study, variant_config
from handshape.studies.variant import train_variant

__all__ = ["run_study"]

logger = logging.getLogger(__name__)


def run_study(
    study: Study,
    out: Path,
    overrides: list[str] | None = None,
    configs: Path | None = None,
    progress: bool = True,
    workers: int = 1,
    devices: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Train and evaluate every variant (skipping finished ones); write the table and figures.

    overrides: key=value applied to every variant (e.g. a shorter budget). configs: a user's
    configs folder searched before the package's. workers: processes making synthetic data
    where it is missing. devices: the GPUs to run variants on side by side, one variant per GPU
    (default: `parallel_devices`; one device or none: one variant after the other).
    Returns per variant: metrics.json's content plus "minutes" (training wall time, also
    for variants trained by an earlier run; None where unknown).
    """
    out = Path(out)
    common = list(overrides or [])
    base = variant_config(study, "shared", common, out, configs)
    configs_of = {
        name: variant_config(study, name, [*common, *extra], out, configs)
        for name, extra in study.variants.items()
    }
    check_variants(study, base, configs_of)  # before any training: a refusal costs nothing
    for write in (False, True):  # every folder checked before any is written
        for name, variant_overrides in study.variants.items():
            claim(out / name, [*common, *variant_overrides], configs_of[name], write)
    prepare_data(base, workers)
    if study.shared_stages:
        # Checked stage by stage against the settings they saw (`handshape.lit.reuse`).
        run_pretraining(base, progress, stages=study.shared_stages)
    pending = []
    for name in study.variants:
        if (out / name / "eval" / "metrics.json").exists():
            logger.info("%s: done earlier (%s)", name, out / name / "eval")
        else:
            pending.append(name)
    slots = parallel_devices(base) if devices is None else list(devices)
    if len(slots) > 1 and len(pending) > 1:
        train_in_parallel(study, {n: configs_of[n] for n in pending}, out, slots)
    else:
        for name in pending:
            train_variant(study, name, configs_of[name], out, progress)
    results = {name: read_results(out / name) for name in study.variants}
    table = write_report(study, out, base, results)
    logger.info("%s\nwrote table.md, pck.png and previews.png in %s", table, out)
    return results
