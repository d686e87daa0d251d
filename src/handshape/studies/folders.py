"""The folders of a study: claimed by a variant's settings, stages copied in, results read back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from handshape.lit.reuse import RUN_SETTINGS, changed_settings
from handshape.safeio.atomic import atomic_write_text
from handshape.studies.sharing import container

__all__ = ["claim", "copy_stage", "read_results"]


def read_results(folder: Path) -> dict[str, Any]:
    """A finished variant's metrics.json plus "minutes" (None where not recorded)."""
    minutes = folder / "eval" / "train_minutes.txt"
    return {
        **json.loads((folder / "eval" / "metrics.json").read_text()),
        "minutes": float(minutes.read_text()) if minutes.exists() else None,
    }


def copy_stage(source: Path, target: Path) -> None:
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


def claim(folder: Path, overrides: list[str], cfg: DictConfig, write: bool = True) -> None:
    """Refuse a variant folder made with other overrides or resolved settings (its results
    would be stale), e.g. after a config file changed; with ``write``, record them in it.
    Folders from before settings were recorded are checked against their bundle's config."""
    record, settings = folder / "overrides.json", folder / "settings.json"
    mine = container(cfg)
    if record.exists():
        found = json.loads(record.read_text())
        if found != overrides:
            raise ValueError(
                f"{record}: this variant was run with {found}, now {overrides}; "
                "use another output folder or delete this one"
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
                    "); use another output folder or delete this one"
                )
    if write:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(settings, json.dumps(mine, indent=1, sort_keys=True))
        atomic_write_text(record, json.dumps(overrides))
