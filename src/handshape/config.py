"""Experiment configuration: OmegaConf YAML composed from a base and presets, plus overrides.

The configs live in the repository's top-level `configs/` folder and ship inside the wheel as
`handshape/configs/` (`PACKAGE_CONFIGS` finds either), so every command works from any folder,
from an editable install and from an installed wheel; a folder the user gives is searched
first, file by file, so it may hold just one experiment of its own. Composition, each step
checked against the last:

1. `base.yaml`: every key outside the groups (data, handmodel, output, the run's name);
2. each group (`model/`, `train/`, `finetune/`): `GROUP/base.yaml`, then the preset the
   experiment names in its `defaults` mapping (e.g. `model: quick`), which lists only what it
   changes;
3. the experiment's own keys (`experiment/NAME.yaml`, or a path to a YAML file), after those
   of the experiment it extends, if it names one (`defaults: {experiment: quick}`: its presets
   and keys, which this experiment's own override);
4. `key=value` overrides; `+key=value` adds a key the config does not have.

A key that is not in the config (a typo, or a setting that does not exist) is refused at every
step with the closest valid keys named, except below the open sections in `OPEN_SECTIONS`,
whose keys their consumer checks (the synthetic generator its settings, albumentations its
transforms, Lightning's Trainer its arguments).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

_MISSING = object()


def _package_configs() -> Path:
    """The shipped configs: handshape/configs/ beside this file in an installed wheel (the build
    maps the top-level configs/ folder there), else the source tree's configs/ beside src/ (an
    editable install, or src/ on the path)."""
    here = Path(__file__).resolve().parent
    installed = here / "configs"
    return installed if installed.is_dir() else here.parents[1] / "configs"


PACKAGE_CONFIGS = _package_configs()
GROUPS = ("model", "train", "finetune")
OPEN_SECTIONS = ("data.settings", "data.augmentation", "train.trainer")

__all__ = ["PACKAGE_CONFIGS", "config_file", "load_experiment"]


def config_file(kind: str, name: str, configs: Path | None = None) -> Path:
    """The YAML file of `name` in the folder `kind` (e.g. "experiment", "quick"): `name` itself
    when it is a path to a .yaml file, else configs/KIND/NAME.yaml in the user's folder when it
    is there, else in the package. Raises FileNotFoundError naming where it looked."""
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such config file")
        return path
    places = [*([Path(configs)] if configs is not None else []), PACKAGE_CONFIGS]
    for folder in places:
        path = folder / kind / f"{name}.yaml" if kind else folder / f"{name}.yaml"
        if path.is_file():
            return path
    looked = " or ".join(str(f / kind / f"{name}.yaml") for f in places)
    raise FileNotFoundError(f"{looked}: no such config file")


def _read(path: Path) -> DictConfig:
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # OmegaConf raises several YAML/grammar error types
        raise ValueError(f"{path}: not a valid YAML config ({err})") from err
    if not isinstance(cfg, DictConfig):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return cfg


def _leaf_keys(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, Mapping | DictConfig):
        for key, value in node.items():
            path = f"{prefix}{key}"
            yield path
            yield from _leaf_keys(value, f"{path}.")


def _unknown_key(key: str, missing: str, known: DictConfig, source: str) -> ValueError:
    """The error for `key`, whose part `missing` the config lacks, naming the closest keys."""
    candidates = list(_leaf_keys(known))
    close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)
    if not close:
        parent = missing.rpartition(".")[0]
        siblings = [k for k in candidates if k.rpartition(".")[0] == parent]
        close = difflib.get_close_matches(missing, siblings, n=3, cutoff=0.3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    where = f" ('{missing}' is not in the config)" if missing != key else ""
    return ValueError(
        f"{source}: unknown config key '{key}'{where}{hint} (to add a new key, say +{key}=...)"
    )


def _first_leaf(value: Any, prefix: str) -> str:
    while isinstance(value, Mapping | DictConfig) and len(value):
        key = next(iter(value))
        prefix, value = f"{prefix}.{key}", value[key]
    return prefix


def _is_open(key: str) -> bool:
    return any(key == s or key.startswith(f"{s}.") for s in OPEN_SECTIONS)


def _check_known(known: DictConfig, delta: Any, source: str, prefix: str = "") -> None:
    """Raise when `delta` (a mapping merged onto `known`) names a key `known` lacks."""
    if not isinstance(delta, Mapping | DictConfig):
        return
    for key, value in delta.items():
        path = f"{prefix}{key}"
        if _is_open(path):
            continue
        parent = OmegaConf.select(known, prefix[:-1]) if prefix else known
        if not isinstance(parent, DictConfig) or key not in parent:
            raise _unknown_key(_first_leaf(value, path), path, known, source)
        if isinstance(parent[key], DictConfig):  # a null or scalar default takes any value
            _check_known(known, value, source, f"{path}.")


def _merge(base: DictConfig, delta: DictConfig, source: str) -> DictConfig:
    """OmegaConf's merge, its errors (e.g. a scalar where the base has a section) naming
    `source`."""
    try:
        merged = OmegaConf.merge(base, delta)
    except Exception as err:
        raise ValueError(f"{source}: {err}") from err
    assert isinstance(merged, DictConfig)
    return merged


def _merge_checked(known: DictConfig, delta: DictConfig, source: str) -> DictConfig:
    _check_known(known, delta, source)
    return _merge(known, delta, source)


def _apply_override(cfg: DictConfig, override: str) -> DictConfig:
    key, equals, value = override.partition("=")
    add = key.startswith("+")
    key = key.removeprefix("+").strip()
    if not equals or not key:
        raise ValueError(f"bad override '{override}': expected key=value (or +key=value)")
    try:
        parsed = OmegaConf.from_dotlist([f"{key}={value}"])
    except Exception as err:
        raise ValueError(f"bad override '{override}': {err}") from err
    exists = OmegaConf.select(cfg, key, default=_MISSING) is not _MISSING
    if add and exists:
        raise ValueError(f"override '{override}': '{key}' exists already; drop the '+'")
    if not add and not _is_open(key):
        _check_known(cfg, parsed, f"override '{override}'")
    return _merge(cfg, parsed, f"bad override '{override}'")


def _experiment_chain(
    path: Path, configs: Path | None, seen: tuple[Path, ...] = ()
) -> tuple[dict[str, str], list[tuple[Path, DictConfig]]]:
    """The group presets an experiment picks and its keys, after those of the experiment it
    extends (`defaults: {experiment: NAME}`), which it overrides: (choices, [(file, keys),
    ...] from the furthest ancestor to `path`)."""
    if path.resolve() in seen:
        chain = " -> ".join(str(p) for p in (*seen, path.resolve()))
        raise ValueError(f"{path}: experiments extend each other in a circle ({chain})")
    experiment = _read(path)
    choices = experiment.pop("defaults", None) or {}
    if not isinstance(choices, Mapping | DictConfig) or set(choices) - {*GROUPS, "experiment"}:
        raise ValueError(
            f"{path}: `defaults` maps groups ({', '.join(GROUPS)}) to presets, and "
            "`experiment` to an experiment this one extends"
        )
    picked = {str(k): str(v) for k, v in choices.items()}
    parent = picked.pop("experiment", None)
    if parent is None:
        return picked, [(path, experiment)]
    inherited, layers = _experiment_chain(
        config_file("experiment", parent, configs), configs, (*seen, path.resolve())
    )
    return {**inherited, **picked}, [*layers, (path, experiment)]


def load_experiment(
    name: str, overrides: Sequence[str] = (), configs: Path | None = None
) -> DictConfig:
    """The resolved config of experiment `name` (a file in configs/experiment/ or a path to a
    YAML file) with `overrides` (`key=value`, `+key=value`) applied; see the module docstring.

    Raises FileNotFoundError for a missing file and ValueError, naming the file or override,
    for invalid YAML or an unknown key."""
    path = config_file("experiment", name, configs)
    choices, layers = _experiment_chain(path, configs)
    cfg = _read(config_file("", "base", configs))
    for group in GROUPS:
        part = _read(config_file(group, "base", configs))
        choice = str(choices.get(group, "base"))
        if choice != "base":
            preset = config_file(group, choice, configs)
            # Checked under the group's name, so that errors name keys as overrides would.
            delta = OmegaConf.create({group: _read(preset)})
            part = _merge_checked(OmegaConf.create({group: part}), delta, str(preset))[group]
        cfg = OmegaConf.merge(cfg, {group: part})
    assert isinstance(cfg, DictConfig)
    for source, keys in layers:
        cfg = _merge_checked(cfg, keys, str(source))
    cfg.experiment = path.stem  # the run's name; an override may rename it
    for override in overrides:
        cfg = _apply_override(cfg, override)
    # The generator settings are a config file too: found in the user's folder first, as the
    # groups are. Only a file outside the package is written in as its path, so configs that
    # name a shipped file stay portable.
    settings = config_file("data", str(cfg.data.get("config") or "synthetic"), configs)
    if not settings.resolve().is_relative_to(PACKAGE_CONFIGS.resolve()):
        cfg.data.config = str(settings.resolve())
    return cfg
