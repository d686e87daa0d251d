"""Training and evaluating one variant of a study, from the stages it copies onwards."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from handshape.evaluation.evaluate import write_results
from handshape.lit.pipeline import train_and_evaluate
from handshape.lit.pretrain import stages_for
from handshape.safeio.atomic import atomic_write_text
from handshape.studies.folders import copy_stage
from handshape.studies.spec import Study

__all__ = ["train_variant"]

logger = logging.getLogger(__name__)


def train_variant(study: Study, name: str, cfg: DictConfig, out: Path, progress: bool) -> None:
    """Train one variant (from its copied stages onwards) and evaluate it into OUT/<name>/eval."""
    folder = out / name
    stages = stages_for(OmegaConf.to_container(cfg.model, resolve=True))
    if name in study.after:
        # What the earlier variant trained up to the end-to-end stage: what comes after it
        # (the transfer stage) sees the settings a continuing variant may change.
        source = out / study.after[name]
        for stage in stages[: stages.index("full") + 1]:
            if (source / stage / "DONE").exists():
                copy_stage(source / stage, folder / stage)
    for stage in study.shared_stages:
        # A stage the base network lacks (a pose-only base) was not shared: trained here.
        if stage in stages and (out / "shared" / stage / "DONE").exists():
            copy_stage(out / "shared" / stage, folder / stage)
    logger.info("%s: %s", name, " ".join(study.variants[name]) or "(base experiment)")
    outcome = train_and_evaluate(cfg, progress)
    # Minutes first: metrics.json marks the variant finished.
    atomic_write_text(folder / "eval" / "train_minutes.txt", f"{outcome.minutes}\n")
    write_results(outcome.results, folder / "eval")
