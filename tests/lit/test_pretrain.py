"""Specification of the pretraining module: per-stage losses, optimisers and a tiny overfit
run, on a few real synthetic samples rendered at 64 pixels."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from handshape.config import PACKAGE_CONFIGS, load_experiment
from handshape.data.batches import prepare_batch
from handshape.evaluation.metrics import mean_vertex_error
from handshape.handmodel.model import HandModel
from handshape.lit.pretrain import STAGES, PretrainModule, stages_for

REPO = Path(__file__).resolve().parents[2]
CONFIGS = PACKAGE_CONFIGS
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
def batch(synthetic_batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return synthetic_batch


@pytest.fixture(scope="module")
def prepared(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return prepare_batch(batch, 64, 2.0)


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
