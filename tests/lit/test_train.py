"""Specification of the pretraining schedule: stages, checkpoints, bundle, resuming, DDP and the
`handshape pretrain` command, end to end on a tiny synthetic set and a tiny network."""

from __future__ import annotations

import csv
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
import yaml
from omegaconf import DictConfig
from PIL import Image
from torch.utils.data import default_collate

from handshape.cli import main
from handshape.config import PACKAGE_CONFIGS, load_experiment
from handshape.data.synth.generate import Plan, generate
from handshape.data.synth.reader import SyntheticDataset
from handshape.data.synth.scene import SynthConfig
from handshape.lit import train as train_mod
from handshape.lit.pretrain import PretrainModule
from handshape.lit.train import run_pretraining
from handshape.nets.bundle import load_network

REPO = Path(__file__).resolve().parents[2]
CONFIGS = PACKAGE_CONFIGS
STEPS = {"hourglass": 2, "pose_regressor": 2, "full": 4}
STAGES = tuple(STEPS)  # the paper's network: no transfer stage

pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning"
)


def write_synth_config(path: Path, num_per_shard: int = 8) -> Path:
    """configs/data/synthetic.yaml at 64 pixels and `num_per_shard` samples per shard."""
    base = SynthConfig.load(CONFIGS / "data" / "synthetic.yaml")
    config = dataclasses.replace(base, size=64, shard_size=num_per_shard)
    path.write_text(yaml.safe_dump(config.to_dict()))
    return path


def data_overrides(root: Path, synth_yaml: Path, num_train: int, num_val: int) -> list[str]:
    return [
        f"data.root={root}",
        f"data.config={synth_yaml}",
        f"data.num_train={num_train}",
        f"data.num_val={num_val}",
    ]


def ckpt(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*.ckpt")}


class Recording(PretrainModule):
    """PretrainModule that notes the stage, global step and weights each fit starts from."""

    starts: ClassVar[list[tuple[str, int, dict[str, torch.Tensor]]]] = []

    def on_train_start(self) -> None:
        state = {k: v.detach().clone() for k, v in self.state_dict().items()}
        Recording.starts.append((self.stage, self.global_step, state))


CRASH_AT = 5


class Crashing(Recording):
    """Dies in the full stage at global step CRASH_AT, like a killed job."""

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.stage == "full" and self.global_step >= CRASH_AT:
            raise RuntimeError("simulated crash")
        return super().training_step(batch, batch_idx)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """32 training and 16 validation samples at 64 x 64, and the data config that made them."""
    base = tmp_path_factory.mktemp("tiny")
    synth_yaml = write_synth_config(base / "synthetic.yaml")
    config = SynthConfig.load(synth_yaml)
    root = base / "data"
    for split, num in (("train", 32), ("val", 16)):
        generate(Plan(root, split, num, 0, config), progress=False)
    return {"root": root, "yaml": synth_yaml, "base": base}


def tiny_config(tiny: dict[str, Any], output: Path, *overrides: str) -> DictConfig:
    return load_experiment(
        "tiny",
        [
            *data_overrides(tiny["root"], tiny["yaml"], 32, 16),
            f"output={output}",
            *overrides,
        ],
        CONFIGS,
    )


@pytest.fixture(scope="module")
def pretrained(tiny: dict[str, Any]) -> dict[str, Any]:
    """run_pretraining once over the whole schedule, noting where each stage started."""
    out = tiny["base"] / "run"
    Recording.starts = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_mod, "PretrainModule", Recording)
        bundle = run_pretraining(tiny_config(tiny, out), progress=False)
    starts = {stage: (step, state) for stage, step, state in Recording.starts}
    return {"out": out, "bundle": bundle, "starts": starts}


@pytest.fixture(scope="module")
def val_images(tiny: dict[str, Any]) -> torch.Tensor:
    dataset = SyntheticDataset(tiny["root"] / "val", train=False)
    return default_collate([dataset[i] for i in range(4)])["image"]


# ---- the schedule -----------------------------------------------------------------------------


def test_every_stage_finishes_with_done_marker_and_checkpoints(pretrained: dict[str, Any]) -> None:
    out = pretrained["out"]
    for stage in STAGES:
        folder = out / stage
        assert (folder / "DONE").read_text().strip() == f"{STEPS[stage]} steps"
        last = ckpt(folder / "checkpoints" / "last.ckpt")
        assert last["global_step"] == STEPS[stage]
        assert last["hyper_parameters"]["stage"] == stage
        assert (folder / "checkpoints" / "best.ckpt").is_file()
        rows = list(csv.DictReader((out / "logs" / stage / "version_0" / "metrics.csv").open()))
        assert rows, stage


def test_the_bundle_holds_safetensors_weights_and_the_resolved_config(
    pretrained: dict[str, Any], tiny: dict[str, Any]
) -> None:
    bundle = pretrained["bundle"]
    assert bundle == pretrained["out"] / "bundle"
    assert sorted(p.name for p in bundle.iterdir()) == ["config.yaml", "model.safetensors"]
    cfg = yaml.safe_load((bundle / "config.yaml").read_text())
    assert cfg["model"]["input_size"] == 64
    assert cfg["data"]["root"] == str(tiny["root"])
    assert cfg["experiment"] == "tiny"


def test_every_validation_of_the_full_stage_draws_a_preview(pretrained: dict[str, Any]) -> None:
    """Predicted (top) and true (bottom) meshes on the first validation images, as PNGs."""
    previews = sorted((pretrained["out"] / "full" / "previews").glob("step_*.png"))
    assert [p.name for p in previews] == ["step_0000002.png", "step_0000004.png"]
    image = np.asarray(Image.open(previews[-1]))
    assert image.shape == (2 * 64, 4 * 64, 3)  # 2 rows, 4 images of the tiny 64-pixel input
    assert not (pretrained["out"] / "hourglass" / "previews").exists()


def test_bundle_and_checkpoint_load_the_same_network(
    pretrained: dict[str, Any], val_images: torch.Tensor
) -> None:
    """The bundle is exported from the full stage's best checkpoint."""
    from_bundle, cfg_bundle = load_network(pretrained["bundle"])
    from_ckpt, cfg_ckpt = load_network(pretrained["out"] / "full" / "checkpoints" / "best.ckpt")
    assert cfg_bundle == cfg_ckpt
    assert not from_bundle.training and not from_ckpt.training
    with torch.no_grad():
        a, b = from_bundle(val_images), from_ckpt(val_images)
    for x, y in zip(
        (*a.heatmaps, a.latent, a.vertices, a.joints),
        (*b.heatmaps, b.latent, b.vertices, b.joints),
        strict=True,
    ):
        assert torch.equal(x, y)


def test_checkpoints_load_with_weights_only(pretrained: dict[str, Any]) -> None:
    paths = sorted(pretrained["out"].rglob("*.ckpt"))
    assert len(paths) == 2 * len(STAGES)
    for path in paths:
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert "state_dict" in state and "hyper_parameters" in state


def test_each_stage_starts_from_the_parts_trained_before(pretrained: dict[str, Any]) -> None:
    """hourglass and pose_regressor train their parts; full starts from both of them."""
    starts, out = pretrained["starts"], pretrained["out"]
    assert set(starts) == set(STAGES)
    assert all(step == 0 for step, _ in starts.values())
    full = starts["full"][1]
    for stage in ("hourglass", "pose_regressor"):
        trained = ckpt(out / stage / "checkpoints" / "last.ckpt")["state_dict"]
        prefix = f"net.{stage}."
        keys = [k for k in trained if k.startswith(prefix)]
        assert keys
        for k in keys:
            assert torch.equal(full[k], trained[k]), k
        # ... and those parts did move away from their initialisation in their own stage.
        initial = starts[stage][1]
        assert any(not torch.equal(initial[k], trained[k]) for k in keys if "weight" in k)


def test_two_trainings_from_one_seed_give_identical_weights(
    tiny: dict[str, Any], pretrained: dict[str, Any]
) -> None:
    from safetensors.torch import load_file

    again = run_pretraining(tiny_config(tiny, tiny["base"] / "again"), progress=False)
    first = load_file(str(pretrained["bundle"] / "model.safetensors"))
    second = load_file(str(again / "model.safetensors"))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_training_runs_mkl_and_onednn_on_their_avx2_kernels() -> None:
    """MKL and oneDNN choose kernels by the CPU; training pins them (handshape/lit/__init__.py),
    in the order `handshape pretrain` imports things (torch first), as both libraries report."""
    code = (
        "import torch, handshape.cli, handshape.lit; a = torch.randn(64, 64); a @ a; "
        "torch.nn.functional.conv2d(torch.randn(4, 64, 32, 32), torch.randn(64, 64, 3, 3))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA")}
    env |= {"MKL_VERBOSE": "1", "ONEDNN_VERBOSE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    said = done.stdout + done.stderr
    assert "CNR:AVX2" in said  # MKL's conditional-numerical-reproducibility branch
    assert "cpu,isa:Intel AVX2\n" in said  # oneDNN's kernels, AVX2 and nothing wider


def test_a_rerun_skips_finished_stages(
    pretrained: dict[str, Any], tiny: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = pretrained["out"]
    before = mtimes(out)
    done = {s: (out / s / "DONE").stat().st_mtime_ns for s in STAGES}

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a finished stage was trained again")

    monkeypatch.setattr(train_mod, "train_stage", no_training)
    bundle = run_pretraining(tiny_config(tiny, out), progress=False)
    assert mtimes(out) == before
    assert {s: (out / s / "DONE").stat().st_mtime_ns for s in STAGES} == done
    assert (bundle / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("model.hourglass.channels=4",), r"stage 'hourglass' was trained with other settings"),
        (("train.loss_weights.edge=0",), r"stage 'full' was trained with other settings"),
        (("train.stages.full.steps=5",), r"full/DONE: the stage finished 4 steps, .* asks for 5"),
    ],
)
def test_a_rerun_under_settings_a_finished_stage_did_not_see_is_refused(
    pretrained: dict[str, Any],
    tiny: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    overrides: tuple[str, ...],
    message: str,
) -> None:
    """Refused before anything trains, naming what changed; nothing in the folder changes."""
    out = pretrained["out"]
    before = mtimes(out)

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("trained under changed settings")

    monkeypatch.setattr(train_mod, "train_stage", no_training)
    with pytest.raises(ValueError, match=message):
        run_pretraining(tiny_config(tiny, out, *overrides), progress=False)
    assert mtimes(out) == before


def test_an_interrupted_stage_resumes_from_its_last_checkpoint(
    pretrained: dict[str, Any], tiny: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash at step 5 of 8: the rerun continues from the step-4 checkpoint to step 8."""
    out = tiny["base"] / "resume"
    for stage in ("hourglass", "pose_regressor"):  # finished stages, reused
        shutil.copytree(pretrained["out"] / stage, out / stage)
    finished = mtimes(out)
    cfg = tiny_config(tiny, out, "train.stages.full.steps=8")
    last = out / "full" / "checkpoints" / "last.ckpt"

    monkeypatch.setattr(train_mod, "PretrainModule", Crashing)
    with pytest.raises(RuntimeError, match=r"simulated crash"):
        run_pretraining(cfg, progress=False)
    assert not (out / "full" / "DONE").exists()
    assert ckpt(last)["global_step"] == 4  # validated and checkpointed every 2 steps

    Recording.starts = []
    monkeypatch.setattr(train_mod, "PretrainModule", Recording)
    run_pretraining(cfg, progress=False)
    assert [(stage, step) for stage, step, _ in Recording.starts] == [("full", 4)]
    assert ckpt(last)["global_step"] == 8
    assert (out / "full" / "DONE").read_text().strip() == "8 steps"
    assert {k: v for k, v in mtimes(out).items() if k in finished} == finished
    with (out / "logs" / "full" / "version_0" / "metrics.csv").open() as fh:
        steps = [int(row["step"]) for row in csv.DictReader(fh) if row["step"]]
    assert steps == sorted(steps), f"the step count restarted: {steps}"
    assert max(steps) >= 7


# ---- DDP --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize(
    "strategy",
    [
        "ddp",
    ],
)
def test_two_process_ddp_on_cpu_runs_the_schedule(tiny: dict[str, Any], strategy: str) -> None:
    """Also: the command runs from a folder that is not the repository (configs come from the
    package)."""
    out = tiny["base"] / f"ddp-{strategy}"
    command = [
        sys.executable, "-m", "handshape.cli", "train", "--experiment", "tiny",
        "--workers", "1",
        *data_overrides(tiny["root"], tiny["yaml"], 32, 16),
        "train.trainer.devices=2", f"train.trainer.strategy={strategy}", f"output={out}",
    ]  # fmt: skip
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }
    env.pop("LOCAL_RANK", None)
    result = subprocess.run(
        command, env=env, cwd=tiny["base"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    # Both ranks ran the schedule; only rank zero reports.
    assert result.stderr.count("[handshape] inference bundle") == 1
    for stage in STAGES:
        last = out / stage / "checkpoints" / "last.ckpt"
        assert ckpt(last)["global_step"] == STEPS[stage]
        assert (out / stage / "DONE").is_file()
    assert (out / "bundle" / "model.safetensors").is_file()
    load_network(out / "bundle")


# ---- `handshape pretrain` ---------------------------------------------------------------------


@pytest.mark.slow
def test_pretrain_command_end_to_end_writes_the_report(
    tiny: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fresh data folder: the command renders the set, trains every stage, evaluates, reports."""
    root, out = tmp_path / "data", tmp_path / "out"
    code = main([
        "pretrain", "--experiment", "tiny", "--workers", "1",
        *data_overrides(root, tiny["yaml"], 8, 8),
        "train.stages.full.steps=2", f"output={out}",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert (root / "val" / "shard_00000.npz").is_file()
    metrics = yaml.safe_load((out / "eval" / "metrics.json").read_text())
    assert metrics["samples"] == 8
    assert (out / "eval" / "pck.png").read_bytes().startswith(b"\x89PNG")
    report = (out / "report.md").read_text()
    assert f"{metrics['mesh_error_mm']:.2f}" in report
    assert f"{metrics['pose_error_mm']:.2f}" in report
    assert f"{metrics['pck']['auc_20_50']:.3f}" in report
    assert "eval/pck.png" in report
    assert (out / "bundle" / "model.safetensors").is_file()
    assert "report" in capsys.readouterr().err
