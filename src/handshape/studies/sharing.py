"""What the variants of a study may change: nothing that a stage they share, or a stage they copy
from another variant, depends on. Checked before anything trains."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from handshape.lit.reuse import changed_settings, unseen_by
from handshape.studies.spec import Study

__all__ = ["check_variants", "container"]


def container(cfg: DictConfig) -> dict[str, Any]:
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    return plain


def _check_shareable(study: Study, name: str, base: DictConfig, cfg: DictConfig) -> None:
    """Refuse a variant that changes what a shared stage saw (budgets of the stages it does
    not share included)."""
    mine = container(cfg)
    own_budgets = tuple(f"train.stages.{s}." for s in study.shared_stages)
    for stage in study.shared_stages:
        ignore = tuple(p for p in unseen_by(stage, mine) if p != "train.stages.")
        changed = [
            k
            for k in changed_settings(container(base), mine, ignore)
            if not k.startswith("train.stages.") or k.startswith(own_budgets)
        ]
        if changed:
            raise ValueError(
                f"study '{study.name}': variant '{name}' changes {', '.join(changed)}, which the "
                f"shared stages ({', '.join(study.shared_stages)}) depend on; give the study "
                "`shared_stages: []` to train every stage per variant"
            )


def check_variants(study: Study, base: DictConfig, configs_of: dict[str, DictConfig]) -> None:
    """Raise ValueError naming the variant and settings when a variant changes what a shared
    stage, or the stages it continues from another variant, depend on."""
    if study.shared_stages:
        for name, cfg in configs_of.items():
            _check_shareable(study, name, base, cfg)
    for name, earlier in study.after.items():
        mine = container(configs_of[name])
        changed = changed_settings(container(configs_of[earlier]), mine, unseen_by("full", mine))
        if changed:
            raise ValueError(
                f"study '{study.name}': variant '{name}' continues '{earlier}' but changes "
                f"{', '.join(changed)}, which its copied stages depend on"
            )
