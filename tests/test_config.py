"""Specification of the experiment configs: parts composed from `defaults`, overrides, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from handshape.config import load_experiment

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def part(group: str, name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONFIGS / group / f"{name}.yaml"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    """A small configs folder: experiment `exp` takes model `m` and train `t` and overrides one
    model key itself."""
    root = tmp_path / "configs"
    write(root / "model" / "m.yaml", "input_size: 128\nhourglass: {channels: 32, depth: 3}\n")
    write(root / "train" / "t.yaml", "lr: 0.001\nbatch_size: 16\n")
    write(
        root / "experiment" / "exp.yaml",
        "defaults:\n  model: m\n  train: t\nmodel:\n  input_size: 64\noutput: out\n",
    )
    return root


# ---- composition ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["quick", "paper"])
def test_repo_experiments_compose_their_model_and_train_parts(name: str) -> None:
    experiment = OmegaConf.load(CONFIGS / "experiment" / f"{name}.yaml")
    cfg = load_experiment(name, configs=CONFIGS)
    assert cfg.experiment == name
    assert "defaults" not in cfg
    for group in ("model", "train"):
        expected = part(group, experiment.defaults[group])
        expected_with_own = OmegaConf.merge(expected, experiment.get(group, {}))
        assert OmegaConf.to_container(cfg[group]) == OmegaConf.to_container(expected_with_own)
    for key in ("data", "handmodel", "output"):
        assert key in cfg
    OmegaConf.to_container(cfg, resolve=True)  # fully resolvable


def test_quick_experiment_has_the_documented_cpu_preset() -> None:
    cfg = load_experiment("quick", configs=CONFIGS)
    assert cfg.model.input_size == 128
    assert cfg.model.head.name == "graphcnn"
    assert cfg.train.trainer.accelerator == "cpu"
    assert set(cfg.train.stages) == {"hourglass", "pose_regressor", "full", "transfer"}
    assert set(cfg.train.loss_weights) == {
        "heatmap",
        "vertex",
        "normal",
        "edge",
        "laplacian",
        "pose",
    }


def test_the_experiments_own_keys_override_its_parts(configs: Path) -> None:
    cfg = load_experiment("exp", configs=configs)
    assert cfg.model.input_size == 64  # the experiment's value wins over model/m.yaml
    assert cfg.model.hourglass == {"channels": 32, "depth": 3}  # the rest of the part stays
    assert cfg.train == {"lr": 0.001, "batch_size": 16}
    assert cfg.output == "out"


def test_key_value_overrides_are_applied_last(configs: Path) -> None:
    cfg = load_experiment(
        "exp", ["model.input_size=96", "train.lr=0.5", "output=/tmp/x", "extra.flag=true"], configs
    )
    assert cfg.model.input_size == 96
    assert cfg.train.lr == 0.5
    assert cfg.train.batch_size == 16  # untouched keys stay
    assert cfg.output == "/tmp/x"
    assert cfg.extra.flag is True


def test_overrides_of_the_repo_quick_experiment_keep_their_types() -> None:
    cfg = load_experiment(
        "quick",
        ["model.hourglass.channels=8", "train.optimizer=adam", "train.logging.wandb=disabled"],
        CONFIGS,
    )
    assert cfg.model.hourglass.channels == 8
    assert cfg.model.hourglass.depth == 3
    assert cfg.train.optimizer == "adam"
    assert cfg.train.logging.wandb == "disabled"


def test_an_experiment_may_be_given_as_a_yaml_path(configs: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "elsewhere" / "mine.yaml", "defaults:\n  model: m\nseed: 3\n")
    cfg = load_experiment(str(path), configs=configs)
    assert cfg.experiment == "mine"
    assert cfg.model.input_size == 128
    assert cfg.seed == 3


def test_the_default_configs_folder_is_the_working_directorys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(REPO)
    assert load_experiment("quick") == load_experiment("quick", configs=CONFIGS)


# ---- errors -----------------------------------------------------------------------------------


def test_a_missing_experiment_is_a_clear_error_naming_the_file(configs: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(str(configs / "experiment" / "nope"))):
        load_experiment("nope", configs=configs)


def test_a_missing_part_is_a_clear_error_naming_the_file(configs: Path) -> None:
    write(configs / "experiment" / "broken.yaml", "defaults:\n  model: absent\n")
    with pytest.raises(FileNotFoundError, match=re.escape(str(configs / "model" / "absent.yaml"))):
        load_experiment("broken", configs=configs)


def test_invalid_yaml_is_a_clear_error_naming_the_file(configs: Path) -> None:
    path = write(configs / "experiment" / "bad.yaml", "model: [unclosed\n")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_experiment("bad", configs=configs)


def test_a_top_level_list_is_rejected(configs: Path) -> None:
    path = write(configs / "experiment" / "listy.yaml", "- a\n- b\n")
    with pytest.raises(ValueError, match=r"mapping"):
        load_experiment("listy", configs=configs)
    assert path.exists()


def test_a_malformed_override_is_a_clear_error_naming_it(configs: Path) -> None:
    with pytest.raises(ValueError, match=r"bad override.*train\.lr=\[1,2"):
        load_experiment("exp", ["train.lr=[1,2"], configs)


def test_an_override_without_equals_sign_is_rejected(configs: Path) -> None:
    with pytest.raises(ValueError, match=r"train\.lr"):
        load_experiment("exp", ["train.lr"], configs)
