"""Specification of the experiment configs: base + presets as deltas, overrides, unknown keys
refused, configs shipped with the package and found from any folder (and from a wheel)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from handshape.config import GROUPS, PACKAGE_CONFIGS, config_file, load_experiment

REPO = Path(__file__).resolve().parents[1]


def yaml_of(path: Path) -> dict:
    return OmegaConf.to_container(OmegaConf.load(path))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def flat(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# ---- composition ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny", "quick", "paper"])
def test_an_experiment_is_the_base_its_presets_and_its_own_keys(name: str) -> None:
    experiment = yaml_of(PACKAGE_CONFIGS / "experiment" / f"{name}.yaml")
    choices = experiment.pop("defaults", {})
    expected = OmegaConf.create(yaml_of(PACKAGE_CONFIGS / "base.yaml"))
    for group in GROUPS:
        part = OmegaConf.load(PACKAGE_CONFIGS / group / "base.yaml")
        if group in choices:
            preset = PACKAGE_CONFIGS / group / f"{choices[group]}.yaml"
            part = OmegaConf.merge(part, OmegaConf.load(preset))
        expected = OmegaConf.merge(expected, {group: part})
    expected = OmegaConf.merge(expected, experiment, {"experiment": name})
    cfg = load_experiment(name)
    assert OmegaConf.to_container(cfg) == OmegaConf.to_container(expected)
    assert "defaults" not in cfg


PRESETS = sorted(
    p
    for p in PACKAGE_CONFIGS.glob("*/*.yaml")
    if p.parent.name == "experiment" or (p.parent.name in GROUPS and p.stem != "base")
)


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_presets_list_only_what_they_change(path: Path) -> None:
    """A preset repeats no value of its base: a reader sees at a glance what it changes."""
    group = path.parent.name
    if group in GROUPS:
        base = flat(yaml_of(PACKAGE_CONFIGS / group / "base.yaml"))
    else:  # an experiment: over base.yaml and the group bases (the paper's settings)
        base = flat(OmegaConf.to_container(load_experiment("paper")))
        if path.stem == "paper":
            base = flat(yaml_of(PACKAGE_CONFIGS / "base.yaml"))
    own = flat(yaml_of(path))
    own.pop("defaults.model", None), own.pop("defaults.train", None)
    repeated = [k for k, v in own.items() if k in base and base[k] == v]
    assert not repeated, f"{path.name} repeats its base: {repeated}"


def test_the_quick_preset_is_the_documented_cpu_run() -> None:
    cfg = load_experiment("quick")
    assert cfg.model.input_size == 128 and cfg.model.hourglass.num_stacks == 1
    assert cfg.train.optimizer == "adam" and cfg.train.trainer.accelerator == "cpu"
    assert cfg.train.loss_weights == {
        "heatmap": 0.5, "vertex": 1.0, "normal": 1.0, "edge": 1.0, "laplacian": 50.0, "pose": 1.0
    }  # fmt: skip
    assert cfg.data.settings.view_cone == 60.0 and cfg.data.settings.roll == 45.0
    assert cfg.data.settings.view_prior == {"egocentric": 0.0, "third_person": 0.0}
    assert cfg.data.name == "synthetic"
    OmegaConf.to_container(cfg, resolve=True)  # fully resolvable


def test_overrides_are_applied_last_and_keep_their_types() -> None:
    cfg = load_experiment(
        "quick", ["model.hourglass.channels=8", "train.lr=0.5", "output=/tmp/x", "experiment=e"]
    )
    assert cfg.model.hourglass.channels == 8 and cfg.model.hourglass.depth == 3
    assert cfg.train.lr == 0.5 and cfg.train.batch_size == 16
    assert cfg.output == "/tmp/x" and cfg.experiment == "e"


# ---- unknown keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "named", "closest"),
    [
        ("train.loss_weights.normall=0", "train.loss_weights.normall", "train.loss_weights.normal"),
        ("trian.batch_size=4", "trian.batch_size", "train.batch_size"),
        ("model.head.graphcnn.coarse=3", "model.head.graphcnn.coarse", "coarse_features"),
    ],
)
def test_a_typo_in_an_override_is_refused_naming_the_key_and_the_closest(
    override: str, named: str, closest: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(f"'{named}'")) as err:
        load_experiment("tiny", [override])
    assert closest in str(err.value)
    assert f"+{named}" in str(err.value)  # how to add it on purpose


def test_a_new_key_is_accepted_with_an_explicit_plus() -> None:
    cfg = load_experiment("tiny", ["+new.key=1", "+train.note=hello"])
    assert cfg.new.key == 1 and cfg.train.note == "hello"


def test_plus_on_an_existing_key_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'train\.lr' exists already"):
        load_experiment("tiny", ["+train.lr=1"])


def test_open_sections_take_keys_their_consumer_checks() -> None:
    cfg = load_experiment(
        "tiny", ["train.trainer.max_time=00:00:05:00", "data.settings.view_cone=30"]
    )
    assert cfg.train.trainer.max_time == "00:00:05:00" and cfg.data.settings.view_cone == 30


def test_an_unknown_key_in_a_preset_or_experiment_file_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "model" / "typo.yaml", "hourglas: {channels: 8}\n")
    write(tmp_path / "experiment" / "a.yaml", "defaults: {model: typo}\n")
    expected = r"typo\.yaml.*'model\.hourglas\.channels'.*model\.hourglass"
    with pytest.raises(ValueError, match=expected):
        load_experiment("a", configs=tmp_path)
    path = write(tmp_path / "experiment" / "b.yaml", "train: {batchsize: 3}\n")
    with pytest.raises(ValueError, match=re.escape(str(path)) + r".*train\.batch_size"):
        load_experiment("b", configs=tmp_path)


# ---- where configs come from ------------------------------------------------------------------


def test_configs_are_found_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = load_experiment("quick")
    monkeypatch.chdir(tmp_path)
    assert load_experiment("quick") == before
    assert config_file("study", "losses") == PACKAGE_CONFIGS / "study" / "losses.yaml"


def test_the_source_trees_configs_are_its_top_level_folder_from_any_directory(
    tmp_path: Path,
) -> None:
    """From the source tree (an editable install, or src/ on the path) the configs are the one
    copy at the top level, beside src/, found by an interpreter started anywhere."""
    assert PACKAGE_CONFIGS == REPO / "configs"
    assert not (REPO / "src" / "handshape" / "configs").exists()
    probe = "import handshape.config as c; print(c.PACKAGE_CONFIGS)"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert Path(result.stdout.strip()) == REPO / "configs"


def test_a_users_folder_wins_file_by_file(tmp_path: Path) -> None:
    write(tmp_path / "model" / "quick.yaml", "input_size: 96\n")
    write(tmp_path / "experiment" / "mine.yaml", "defaults: {model: quick}\noutput: mine\n")
    cfg = load_experiment("mine", configs=tmp_path)
    assert cfg.model.input_size == 96  # the user's preset
    assert cfg.model.hourglass.num_stacks == 2  # the package's base underneath
    assert cfg.output == "mine" and cfg.experiment == "mine"


def test_generator_settings_are_found_in_the_users_folder_too(tmp_path: Path) -> None:
    from handshape.data.synth.datamodule import generator_config

    shipped = (PACKAGE_CONFIGS / "data" / "synthetic.yaml").read_text()
    write(tmp_path / "data" / "mine.yaml", shipped.replace("size: 256 ", "size: 96 "))
    cfg = load_experiment("tiny", ["data.config=mine"], configs=tmp_path)
    assert cfg.data.config == str((tmp_path / "data" / "mine.yaml").resolve())
    assert generator_config(cfg.data).size == 96
    assert load_experiment("tiny").data.config == "synthetic"  # shipped: stays a name
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        load_experiment("tiny", ["data.config=nope"], configs=tmp_path)


def test_an_experiment_may_be_a_yaml_path(tmp_path: Path) -> None:
    path = write(tmp_path / "elsewhere" / "run.yaml", "defaults: {train: tiny}\nseed_note: 1\n")
    with pytest.raises(ValueError, match=r"seed_note"):
        load_experiment(str(path))
    path.write_text("defaults: {train: tiny}\noutput: here\n")
    cfg = load_experiment(str(path))
    assert cfg.experiment == "run" and cfg.train.batch_size == 4 and cfg.output == "here"


# ---- errors -----------------------------------------------------------------------------------


def test_a_missing_experiment_names_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "experiment" / "nope"))):
        load_experiment("nope", configs=tmp_path)


def test_a_missing_preset_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path / "experiment" / "broken.yaml", "defaults: {model: absent}\n")
    with pytest.raises(FileNotFoundError, match=r"model/absent\.yaml"):
        load_experiment("broken", configs=tmp_path)


def test_invalid_yaml_and_a_top_level_list_name_the_file(tmp_path: Path) -> None:
    bad = write(tmp_path / "experiment" / "bad.yaml", "model: [unclosed\n")
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        load_experiment("bad", configs=tmp_path)
    write(tmp_path / "experiment" / "listy.yaml", "- a\n- b\n")
    with pytest.raises(ValueError, match=r"mapping"):
        load_experiment("listy", configs=tmp_path)


@pytest.mark.parametrize("override", ["train.lr=[1,2", "train.lr", "=3"])
def test_a_malformed_override_is_a_clear_error_naming_it(override: str) -> None:
    with pytest.raises(ValueError, match=re.escape(override)):
        load_experiment("tiny", [override])


# ---- the wheel --------------------------------------------------------------------------------


def test_pyproject_lists_every_folder_of_the_package_and_of_the_configs() -> None:
    """`packages` is a list (find cannot map configs/ into the package): none may be missing."""
    tomllib = pytest.importorskip("tomllib")
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"": "src", "handshape.configs": "configs"}

    def packages(root: Path, name: str) -> set[str]:
        folders = [p for p in root.rglob("*") if p.is_dir() and p.name != "__pycache__"]
        return {name} | {".".join((name, *p.relative_to(root).parts)) for p in folders}

    expected = packages(REPO / "src" / "handshape", "handshape")
    expected |= packages(REPO / "configs", "handshape.configs")
    assert set(setuptools["packages"]) == expected


def _source_copy(folder: Path) -> Path:
    """What the wheel is built from, copied, so that no earlier build's leftovers (build/)
    can reach the wheel."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("src", "configs"):
        shutil.copytree(REPO / name, folder / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, folder / name)
    return folder


@pytest.mark.slow
def test_a_built_wheel_ships_every_config_and_finds_them(tmp_path: Path) -> None:
    """Build the wheel, check its modules and config files against the source tree's, then load
    an experiment and a study from the unpacked wheel, run from an unrelated folder."""
    source = _source_copy(tmp_path / "source")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(source)],
        check=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("handshape-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "site")
    shipped = {n for n in names if n.startswith("handshape/configs/")}
    expected = {
        f"handshape/configs/{p.relative_to(PACKAGE_CONFIGS).as_posix()}"
        for p in PACKAGE_CONFIGS.rglob("*.yaml")
    }
    assert shipped == expected
    src = REPO / "src"
    modules = {p.relative_to(src).as_posix() for p in (src / "handshape").rglob("*.py")}
    assert {n for n in names if n.endswith(".py")} == modules
    site = str(tmp_path / "site")
    probe = (
        "import warnings, handshape, handshape.config as c, handshape.studies.spec as s;"
        f"assert handshape.__file__.startswith({site!r}), handshape.__file__;"
        f"assert c.PACKAGE_CONFIGS.is_relative_to({site!r}), c.PACKAGE_CONFIGS;"
        "import importlib; from handshape._moved import MOVED; warnings.simplefilter('ignore');"
        "assert all(importlib.import_module(old) is importlib.import_module(new)"
        " for old, new in MOVED.items());"
        "print(c.load_experiment('quick').model.input_size,"
        " s.load_study(s.study_path('losses')).name)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path, env={"PYTHONPATH": site, "PATH": ""},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["128", "losses"]


def test_an_experiment_extends_another_and_overrides_its_presets_and_keys(tmp_path: Path) -> None:
    write(tmp_path / "experiment" / "child.yaml", "defaults: {experiment: quick, train: tiny}\n"
          "output: child\ndata: {num_val: 7}\n")  # fmt: skip
    cfg = load_experiment("child", configs=tmp_path)
    quick = load_experiment("quick")
    assert cfg.experiment == "child" and cfg.output == "child" and cfg.data.num_val == 7
    assert cfg.data.settings == quick.data.settings  # inherited from quick
    assert cfg.model == quick.model  # quick's model preset
    assert cfg.train == load_experiment("tiny").train  # its own train preset


def test_the_lift_experiment_is_quick_with_the_keypoint_network() -> None:
    lift, quick = load_experiment("lift"), load_experiment("quick")
    assert lift.data.root == quick.data.root and lift.data.settings == quick.data.settings
    assert lift.data.name == "keypoints" and lift.model.input == "keypoints"


def test_experiments_extending_each_other_in_a_circle_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "experiment" / "a.yaml", "defaults: {experiment: b}\n")
    write(tmp_path / "experiment" / "b.yaml", "defaults: {experiment: a}\n")
    with pytest.raises(ValueError, match="in a circle"):
        load_experiment("a", configs=tmp_path)
