"""Specification of the pretraining module: batch preparation, per-stage losses, optimisers and a
tiny overfit run, on a few real synthetic samples rendered at 64 pixels."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import default_collate

from handshape.config import PACKAGE_CONFIGS, load_experiment
from handshape.data.synth.generate import Plan, generate
from handshape.data.synth.reader import SyntheticDataset
from handshape.data.synth.scene import SynthConfig
from handshape.geometry.camera import from_uvd, project
from handshape.handmodel.model import HandModel
from handshape.lit.pretrain import (
    STAGES,
    PretrainModule,
    prepare_batch,
    preview_grid,
    stages_for,
)
from handshape.metrics import mean_vertex_error

REPO = Path(__file__).resolve().parents[2]
CONFIGS = PACKAGE_CONFIGS
DATA_SIZE = 64
TERMS = {
    "hourglass": {"heatmap", "total"},
    "pose_regressor": {"pose", "total"},
    "full": {"heatmap", "vertex", "normal", "edge", "laplacian", "pose", "total"},
    "transfer": {"pose", "total"},
}
# stage -> trained part
PARTS = {"hourglass": "hourglass", "pose_regressor": "pose_regressor", "transfer": "latent_pose"}
POSE_ONLY = ("model.head.name=none", "model.pose_from=latent")  # Baseline 1 of Fig. 8
TRANSFER = ("model.pose_from=latent",)  # a mesh head, joints from the latent: task transfer
# Every stage of every kind of network: (stage, overrides).
STAGE_CASES = [
    *((stage, ()) for stage in ("hourglass", "pose_regressor", "full")),
    ("full", POSE_ONLY),
    ("full", TRANSFER),
    ("transfer", TRANSFER),
]


def tiny_cfg(*overrides: str) -> dict[str, Any]:
    cfg = load_experiment("tiny", list(overrides), CONFIGS)
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    return plain


def make_module(stage: str, *overrides: str, seed: int = 0) -> PretrainModule:
    torch.manual_seed(seed)
    return PretrainModule(tiny_cfg(*overrides), stage)


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One shard of 8 training samples rendered at 64 x 64."""
    base = SynthConfig.load(CONFIGS / "data" / "synthetic.yaml")
    config = dataclasses.replace(base, size=DATA_SIZE, shard_size=8)
    plan = Plan(tmp_path_factory.mktemp("tiny") / "data", "train", 8, 0, config)
    generate(plan, progress=False)
    return plan.folder


@pytest.fixture(scope="module")
def batch(split: Path) -> dict[str, torch.Tensor]:
    """The first four samples as a data batch (validation-style: fixed backgrounds)."""
    dataset = SyntheticDataset(split, train=False)
    return default_collate([dataset[i] for i in range(4)])


@pytest.fixture(scope="module")
def prepared(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return prepare_batch(batch, 64, 2.0)


# ---- previews ---------------------------------------------------------------------------------


def test_preview_grid_draws_prediction_above_ground_truth(
    prepared: dict[str, torch.Tensor],
) -> None:
    faces = HandModel.default().data.faces
    truth = {"vertices": prepared["vertices"], "joints": prepared["joints_3d"]}
    grid = preview_grid(prepared, truth, faces, count=3)
    assert grid.shape == (2 * 64, 3 * 64, 3) and grid.dtype == np.uint8
    np.testing.assert_array_equal(grid[:64], grid[64:])  # a perfect prediction: equal rows
    plain = (prepared["image"][:3].permute(0, 2, 3, 1) * 255).byte().numpy()
    assert (grid[64:, :64] != plain[0]).any()  # the mesh and skeleton are drawn on the image
    shifted = {k: v + torch.tensor([0.02, 0.0, 0.0]) for k, v in truth.items()}
    assert (preview_grid(prepared, shifted, faces, count=3)[:64] != grid[:64]).any()


def test_the_preview_of_a_pose_only_network_draws_its_skeleton_alone(
    prepared: dict[str, torch.Tensor],
) -> None:
    faces = HandModel.default().data.faces
    skeleton = preview_grid(prepared, {"joints": prepared["joints_3d"]}, faces, count=2)
    full = preview_grid(
        prepared,
        {"vertices": prepared["vertices"], "joints": prepared["joints_3d"]},
        faces,
        count=2,
    )
    np.testing.assert_array_equal(skeleton[64:], full[64:])  # the ground truth keeps its mesh
    assert (skeleton[:64] != full[:64]).any()  # no wireframe above it
    plain = (prepared["image"][:2].permute(0, 2, 3, 1) * 255).byte().numpy()
    assert (skeleton[:64, :64] != plain[0]).any()  # but the skeleton


# ---- prepare_batch ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64, 96, 128])
def test_resized_intrinsics_project_the_3d_joints_onto_the_rescaled_2d_joints(
    batch: dict[str, torch.Tensor], size: int
) -> None:
    gt = prepare_batch(batch, size, 2.0)
    assert gt["image"].shape == (4, 3, size, size)
    # The stored 2D joints, rescaled with pixel centres at integers.
    rescaled = (batch["joints_2d"] + 0.5) * (size / DATA_SIZE) - 0.5
    projected = project(batch["joints_3d"].float(), gt["K"])
    # Exact up to float precision (the spec's bound is 0.5 px; a half-pixel slip is 0.5 px).
    assert (projected - rescaled).norm(dim=-1).max() < 0.01
    # The data batch itself is left alone.
    assert batch["image"].shape[-1] == DATA_SIZE
    assert not torch.equal(gt["K"], batch["K"]) or size == DATA_SIZE


def test_an_image_already_at_the_input_size_is_not_resampled(
    batch: dict[str, torch.Tensor], prepared: dict[str, torch.Tensor]
) -> None:
    assert torch.equal(prepared["image"], batch["image"])
    torch.testing.assert_close(prepared["K"], batch["K"].float())


def test_a_resized_image_keeps_its_content(batch: dict[str, torch.Tensor]) -> None:
    """Downsampling the 128-pixel version back gives (nearly) the original: no flip, no shift."""
    big = prepare_batch(batch, 128, 2.0)["image"]
    back = torch.nn.functional.avg_pool2d(big, 2)
    assert (back - batch["image"]).abs().mean() < 0.02


@pytest.mark.parametrize("size", [64, 128])
def test_uvd_targets_lift_back_to_the_ground_truth(
    batch: dict[str, torch.Tensor], size: int
) -> None:
    gt = prepare_batch(batch, size, 2.0)
    vertices = from_uvd(gt["vertices_uvd"], gt["K"], gt["root"][:, 2], gt["scale"], size)
    joints = from_uvd(gt["joints_uvd"], gt["K"], gt["root"][:, 2], gt["scale"], size)
    assert (vertices - batch["vertices"]).norm(dim=-1).max() < 1e-5
    assert (joints - batch["joints_3d"]).norm(dim=-1).max() < 1e-5
    # uv in the crop, the root at depth 0; normalised coordinates root-relative with unit scale.
    assert gt["vertices_uvd"][..., :2].abs().max() < 1.0
    assert gt["joints_uvd"][:, 0, 2].abs().max() < 1e-6
    assert gt["joints_n"][:, 0].abs().max() < 1e-6
    torch.testing.assert_close(
        (gt["joints_n"][:, 9] - gt["joints_n"][:, 10]).norm(dim=-1), torch.ones(4)
    )
    torch.testing.assert_close(gt["root"], batch["joints_3d"][:, 0])


@pytest.mark.parametrize("size", [64, 128])
def test_heatmaps_peak_at_the_joints(batch: dict[str, torch.Tensor], size: int) -> None:
    gt = prepare_batch(batch, size, 2.0)
    cells = size // 4
    maps = gt["heatmaps"]
    assert maps.shape == (4, 21, cells, cells)
    joints = (batch["joints_2d"] + 0.5) * (size / DATA_SIZE) - 0.5  # input pixels
    centre = (joints + 0.5) * (cells / size) - 0.5  # heat-map cells
    flat = maps.flatten(2).argmax(-1)
    peak = torch.stack([flat % cells, flat // cells], dim=-1)
    inside = ((joints >= 0) & (joints <= size - 1)).all(-1)
    assert inside.any()
    expected = centre.round().clamp(0, cells - 1).long()
    assert torch.equal(peak[inside], expected[inside])
    assert (maps.flatten(2).amax(-1)[inside] > 0.75).all()
    assert maps.max() <= 1.0


def test_heatmaps_of_joints_outside_the_crop_are_empty(batch: dict[str, torch.Tensor]) -> None:
    moved = dict(batch)
    moved["joints_2d"] = batch["joints_2d"].clone()
    moved["joints_2d"][0, 4] = torch.tensor([-40.0, 10.0])
    maps = prepare_batch(moved, 64, 2.0)["heatmaps"]
    assert maps[0, 4].abs().max() == 0
    assert maps[0, 3].max() > 0.75


# ---- losses per stage -------------------------------------------------------------------------


def test_the_stages_of_the_schedule() -> None:
    assert STAGES == ("hourglass", "pose_regressor", "full", "transfer")
    assert stages_for(tiny_cfg()["model"]) == ("hourglass", "pose_regressor", "full")
    # a pose-only network has no mesh for a pose regressor to read
    assert stages_for(tiny_cfg(*POSE_ONLY)["model"]) == ("hourglass", "full")
    assert stages_for(tiny_cfg(*TRANSFER)["model"]) == STAGES
    with pytest.raises(ValueError, match=r"unknown stage 'warmup'"):
        PretrainModule(tiny_cfg(), "warmup")
    with pytest.raises(ValueError, match=r"stage 'transfer' does not belong to this network"):
        PretrainModule(tiny_cfg(), "transfer")
    with pytest.raises(ValueError, match=r"'pose_regressor' does not belong .* hourglass, full"):
        PretrainModule(tiny_cfg(*POSE_ONLY), "pose_regressor")


@pytest.mark.parametrize(("stage", "overrides"), STAGE_CASES)
def test_compute_losses_returns_the_documented_finite_terms(
    prepared: dict[str, torch.Tensor], stage: str, overrides: tuple[str, ...]
) -> None:
    module = make_module(stage, *overrides)
    terms, out = module.compute_losses(prepared)
    mesh_terms = {"vertex", "normal", "edge", "laplacian"}
    assert set(terms) == TERMS[stage] - (mesh_terms if overrides == POSE_ONLY else set())
    for name, value in terms.items():
        assert value.ndim == 0, name
        assert torch.isfinite(value), name
        assert value >= 0, name
    if stage == "full":
        weights = module.cfg["train"]["loss_weights"]
        expected = sum(weights[k] * v for k, v in terms.items() if k != "total")
        torch.testing.assert_close(terms["total"], expected)
        assert out is not None and out.joints.shape[0] == 4
        assert (out.vertices is None) == (overrides == POSE_ONLY)
    elif stage == "transfer":
        torch.testing.assert_close(terms["total"], terms["pose"])
    else:
        only = (TERMS[stage] - {"total"}).pop()
        torch.testing.assert_close(terms["total"], terms[only])
        assert out is None


def test_loss_weights_come_from_the_config(prepared: dict[str, torch.Tensor]) -> None:
    base = make_module("full")
    heavier = make_module("full", "train.loss_weights.laplacian=100.0")
    t1, _ = base.compute_losses(prepared)
    t2, _ = heavier.compute_losses(prepared)
    torch.testing.assert_close(t2["laplacian"], t1["laplacian"])
    torch.testing.assert_close(
        t2["total"] - t1["total"], 50.0 * t1["laplacian"], rtol=1e-4, atol=1e-3
    )


def test_pose_regressor_stage_is_exact_on_its_own_targets(
    prepared: dict[str, torch.Tensor],
) -> None:
    """Its input is the ground-truth mesh; a regressor that returned the GT joints scores 0."""
    module = make_module("pose_regressor")
    module.net.pose_regressor.forward = lambda vertices: prepared["joints_uvd"]  # type: ignore[method-assign]
    terms, _ = module.compute_losses(prepared)
    assert terms["pose"] < 1e-8


@pytest.mark.parametrize(("stage", "overrides"), STAGE_CASES)
def test_each_stage_trains_exactly_its_part(
    prepared: dict[str, torch.Tensor], stage: str, overrides: tuple[str, ...]
) -> None:
    module = make_module(stage, *overrides)
    terms, _ = module.compute_losses(prepared)
    terms["total"].backward()
    optimiser = module.configure_optimizers()
    optimised = {id(p) for group in optimiser.param_groups for p in group["params"]}
    part = module.net if stage == "full" else getattr(module.net, PARTS[stage])
    expected = {id(p) for p in part.parameters()}
    if stage == "full" and overrides == TRANSFER:
        # the latent regressor of a task-transfer network waits for the transfer stage
        assert module.net.latent_pose is not None
        expected -= {id(p) for p in module.net.latent_pose.parameters()}
    assert optimised == expected
    for name, p in module.net.named_parameters():
        in_part = id(p) in optimised
        if in_part:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        else:
            assert p.grad is None or not p.grad.any(), name
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    if stage == "full":  # the whole chain: hourglass, encoder, head and regressor all learn
        # (after one step: the head's output convolution starts at zero and blocks the rest)
        optimiser.step()
        optimiser.zero_grad()
        module.compute_losses(prepared)[0]["total"].backward()
        chain = {
            (): ("hourglass", "encoder", "head", "pose_regressor"),
            POSE_ONLY: ("hourglass", "encoder", "latent_pose"),
            TRANSFER: ("hourglass", "encoder", "head", "pose_regressor"),
        }[overrides]
        for child in chain:
            grads = [p.grad for p in getattr(module.net, child).parameters()]
            assert any(g is not None and g.abs().sum() > 0 for g in grads), child


@pytest.mark.parametrize(
    ("name", "kind"), [("rmsprop", torch.optim.RMSprop), ("adam", torch.optim.Adam)]
)
def test_configure_optimizers_follows_the_config(name: str, kind: type) -> None:
    optimiser = make_module("hourglass", f"train.optimizer={name}", "train.lr=0.01")
    opt = optimiser.configure_optimizers()
    assert isinstance(opt, kind)
    assert opt.param_groups[0]["lr"] == 0.01


def test_an_unknown_optimizer_is_a_clear_error() -> None:
    module = make_module("full", "train.optimizer=sgdx")
    with pytest.raises(ValueError, match=r"unknown train\.optimizer 'sgdx'"):
        module.configure_optimizers()


def test_checkpoint_hyperparameters_are_plain_data() -> None:
    """The config is saved with the checkpoints; weights_only loading needs plain containers."""
    module = make_module("full")
    assert module.hparams["stage"] == "full"
    assert module.hparams["cfg"] == module.cfg

    def plain(value: Any) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or isinstance(value, str | int | float | bool)

    assert plain(module.hparams["cfg"])


# ---- a tiny overfit run -----------------------------------------------------------------------

OVERFIT_STEPS = 300
OVERFIT_LR = 1e-3


@pytest.fixture
def one_thread() -> Iterator[None]:
    """A single intra-op thread: the run is then the same on every machine with the same seed
    (and no slower: the tensors are tiny)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.filterwarnings("ignore:.*self.log.*:UserWarning")
def test_full_stage_overfits_a_fixed_batch(
    batch: dict[str, torch.Tensor], one_thread: None
) -> None:
    """L_fully on two fixed samples, Adam at 1e-3: the lifted mesh error falls at least 5x.

    The loop calls `training_step` (prepare_batch + compute_losses) with the module's own
    optimiser. Errors are measured with the network in training mode (batch statistics), i.e.
    on the very function being optimised.
    """
    module = make_module("full", "train.optimizer=adam", f"train.lr={OVERFIT_LR}")
    fixed = {k: v[:2] for k, v in batch.items()}
    gt = prepare_batch(fixed, module.net.input_size, module.cfg["model"]["heatmap_sigma"])

    def mesh_error_mm() -> float:
        with torch.no_grad():
            vertices = module.predict_camera(gt)["vertices"]
        return float(mean_vertex_error(vertices, fixed["vertices"]).mean())

    optimiser = module.configure_optimizers()
    module.train()
    start = mesh_error_mm()
    losses = []
    for step in range(OVERFIT_STEPS):
        optimiser.zero_grad()
        loss = module.training_step(fixed, step)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    end = mesh_error_mm()
    assert math.isfinite(end)
    assert end <= start / 5, f"mesh error {start:.1f} -> {end:.1f} mm ({start / end:.1f}x)"
    assert sum(losses[-10:]) < sum(losses[:10]) / 3


@pytest.mark.parametrize("head", ["mano", "lbs"])
def test_the_baseline_heads_train_in_the_full_stage(
    prepared: dict[str, torch.Tensor], head: str
) -> None:
    """Same losses, same schedule: only model.head.name changes; a few steps lower the loss."""
    module = make_module("full", f"model.head.name={head}", "train.optimizer=adam")
    first, last = a_few_steps(module, prepared, 15, "vertex")
    assert last < first


def a_few_steps(
    module: PretrainModule, prepared: dict[str, torch.Tensor], steps: int, term: str
) -> tuple[float, float]:
    """``steps`` optimiser steps on one batch; the loss ``term`` before and after them (every
    term finite along the way)."""
    optimiser = module.configure_optimizers()
    first = None
    for _ in range(steps):
        terms, _ = module.compute_losses(prepared)
        assert all(torch.isfinite(v) for v in terms.values())
        first = first if first is not None else terms[term].item()
        optimiser.zero_grad()
        terms["total"].backward()
        optimiser.step()
    assert first is not None
    return first, module.compute_losses(prepared)[0][term].item()


# ---- pose-only networks and task transfer (Fig. 8) ---------------------------------------------


def test_the_end_to_end_stage_of_task_transfer_is_the_papers(
    prepared: dict[str, torch.Tensor],
) -> None:
    """Same seed, same losses: the task-transfer network's end-to-end stage trains exactly what
    the paper's network trains (the joints from the mesh), whatever its latent regressor says."""
    papers, _ = make_module("full").compute_losses(prepared)
    transfer, _ = make_module("full", *TRANSFER).compute_losses(prepared)
    for name, value in papers.items():
        torch.testing.assert_close(transfer[name], value, msg=name)


def test_the_transfer_stage_leaves_the_trained_network_untouched(
    prepared: dict[str, torch.Tensor],
) -> None:
    """Training mode of the transfer stage keeps the frozen parts in eval mode: their batch-norm
    statistics stay; a few steps change the latent regressor only, and lower its loss."""
    module = make_module("transfer", *TRANSFER, "train.optimizer=adam")
    module.train()
    assert module.net.latent_pose is not None and module.net.latent_pose.training
    assert not module.net.hourglass.training and not module.net.head.training
    frozen = {
        k: v.clone() for k, v in module.net.state_dict().items() if not k.startswith("latent_pose.")
    }
    first, last = a_few_steps(module, prepared, 10, "pose")
    for k, v in module.net.state_dict().items():
        if k in frozen:
            assert torch.equal(v, frozen[k]), k
    assert last < first


def test_a_pose_only_network_trains_and_validates_on_its_joints(
    prepared: dict[str, torch.Tensor],
) -> None:
    module = make_module("full", *POSE_ONLY, "train.optimizer=adam")
    assert module.monitor == "val/pose_error" and not module.net.has_mesh
    assert make_module("full").monitor == "val/mesh_error"
    first, last = a_few_steps(module, prepared, 15, "pose")
    assert last < first
    with torch.no_grad():
        pred = module.predict_camera(prepared)
    assert set(pred) == {"joints"} and pred["joints"].shape == (4, 21, 3)


def test_training_on_meshes_of_another_topology_is_a_clear_error(
    prepared: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    from handshape.handmodel.mano_io import write_mano
    from meshes import subdivided_hand

    path = tmp_path / "finer.pkl"
    write_mano(subdivided_hand(HandModel.default().data), path)
    module = make_module("full", f"handmodel.mano={path}")
    n = HandModel.default().num_vertices
    with pytest.raises(ValueError, match=rf"data's meshes have {n} vertices, .*finer.pkl"):
        module.compute_losses(prepared)
