"""Experiment configuration: OmegaConf YAML composed from small parts, plus key=value overrides.

configs/experiment/NAME.yaml may name parts in a `defaults` mapping (e.g. `model: quick` loads
configs/model/quick.yaml under the key `model`); the experiment's own keys are merged on top,
then the command line's `key=value` overrides.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

DEFAULT_CONFIGS = Path("configs")


def _read(path: Path) -> DictConfig:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # OmegaConf raises several YAML/grammar error types
        raise ValueError(f"{path}: not a valid YAML config ({err})") from err
    if not isinstance(cfg, DictConfig):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return cfg


def load_experiment(
    name: str, overrides: Sequence[str] = (), configs: Path = DEFAULT_CONFIGS
) -> DictConfig:
    """The resolved config of configs/experiment/NAME.yaml (or of a path to a YAML file)."""
    path = Path(name) if name.endswith(".yaml") else configs / "experiment" / f"{name}.yaml"
    experiment = _read(path)
    parts = experiment.pop("defaults", None) or {}
    merged = OmegaConf.create()
    for group, choice in parts.items():
        merged = OmegaConf.merge(merged, {group: _read(configs / group / f"{choice}.yaml")})
    for override in overrides:
        key, equals, _ = override.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"bad override '{override}': expected key=value")
    try:
        cfg = OmegaConf.merge(
            merged,
            experiment,
            {"experiment": path.stem},  # the run's name; an override may rename it
            OmegaConf.from_dotlist(list(overrides)),
        )
    except Exception as err:
        raise ValueError(f"bad override in {list(overrides)}: {err}") from err
    assert isinstance(cfg, DictConfig)
    return cfg
