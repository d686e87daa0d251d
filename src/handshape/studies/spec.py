"""A study file and the config of each of its variants."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from handshape.config import config_file, load_experiment

__all__ = ["SHAREABLE", "Study", "load_study", "study_path", "variant_config"]

SHAREABLE = ("hourglass", "pose_regressor")  # the stages that see neither head nor mesh losses
KINDS = ("pretrain", "finetune")  # what every variant of a study runs


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    experiment: str
    variants: dict[str, list[str]]  # every variant's overrides, an `after` variant's included
    shared_stages: tuple[str, ...] = SHAREABLE
    paper: dict[str, dict[str, float]] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)  # variant -> the variant it continues
    kind: str = "pretrain"  # one of KINDS


def load_study(path: Path) -> Study:
    """Read and check a study file; errors name the file and the problem."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot read the study ({err})") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping with title, experiment and variants")
    missing = {"title", "experiment", "variants"} - set(raw)
    unknown = set(raw) - {"title", "experiment", "variants", "shared_stages", "paper", "kind"}
    if missing or unknown:
        raise ValueError(f"{path}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    kind = str(raw.get("kind", "pretrain"))
    if kind not in KINDS:
        raise ValueError(f"{path}: kind must be one of {', '.join(KINDS)}, got '{kind}'")
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
        kind=kind,
    )


def study_path(name: str) -> Path:
    """A study file: a path to a YAML file, or the name of one shipped in configs/study/."""
    return config_file("study", name)


def variant_config(
    study: Study, name: str, overrides: list[str], out: Path, configs: Path | None
) -> DictConfig:
    cfg = load_experiment(study.experiment, overrides, configs)
    # Set as values, not parsed as key=value text: names may hold spaces, '#', ': ' ...
    OmegaConf.update(cfg, "output", str(out / name))
    OmegaConf.update(cfg, "experiment", f"{study.name}-{name}")
    OmegaConf.update(cfg, "train.logging.group", study.name)
    return cfg


