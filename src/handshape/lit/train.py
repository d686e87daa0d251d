"""Running the pretraining schedule: stages in order, each resumable, then an inference bundle.

OUT/<stage>/checkpoints/{last,best}.ckpt per stage, OUT/<stage>/DONE once a stage finished,
OUT/logs/ (CSV, and W&B offline unless disabled), OUT/bundle/ (safetensors weights and the
resolved config). Running the same command again continues where it stopped: finished stages
are skipped and an interrupted stage resumes from its last checkpoint (step count, optimiser and
schedule included).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger, Logger
from pytorch_lightning.utilities import rank_zero_only

from handshape.data.registry import build_datamodule, data_labels
from handshape.handmodel.model import HandModel
from handshape.lit.pretrain import (
    TRAINED_BY,
    PretrainModule,
    check_labels,
    check_topology,
    stages_for,
)
from handshape.lit.reuse import check_reusable, done_steps
from handshape.safeio.atomic import atomic_write, atomic_write_text

logger = logging.getLogger(__name__)


def _loggers(cfg: dict[str, Any], out: Path, stage: str) -> list[Logger]:
    loggers: list[Logger] = [CSVLogger(out / "logs", name=stage, version=0)]
    mode = cfg["train"]["logging"]["wandb"]
    if mode != "disabled":
        from pytorch_lightning.loggers import WandbLogger

        os.environ.setdefault("WANDB_MODE", mode)
        os.environ.setdefault("WANDB_SILENT", "true")
        loggers.append(
            WandbLogger(
                project=cfg["train"]["logging"]["project"],
                name=f"{cfg['experiment']}-{stage}",
                group=cfg["train"]["logging"].get("group") or cfg["experiment"],
                save_dir=str(out / "logs"),
                offline=mode == "offline",
            )
        )
    return loggers


def _initial_weights(path: str | None) -> dict[str, torch.Tensor]:
    """The network weights of `train.init` (an inference bundle folder, its model.safetensors,
    or a training .ckpt) as a module state dict ("net." prefixed); {} when not set."""
    if not path:
        return {}
    source = Path(path)
    weights_file = source / "model.safetensors" if source.is_dir() else source
    if not weights_file.is_file():
        raise FileNotFoundError(
            f"{weights_file}: train.init names no bundle (folder with model.safetensors) or "
            "checkpoint"
        )
    if weights_file.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return {f"net.{k}": v for k, v in load_file(str(weights_file)).items()}
        except Exception as err:  # safetensors raises its own error type
            raise ValueError(f"{weights_file}: not a readable safetensors file ({err})") from err
    try:
        return checkpoint_weights(weights_file)
    except Exception as err:  # zip, pickle and weights-only errors of several types
        raise ValueError(f"{weights_file}: not a handshape training checkpoint ({err})") from err


def checkpoint_weights(path: Path) -> dict[str, torch.Tensor]:
    """The network weights of a checkpoint; never unpickles arbitrary objects."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state["state_dict"]


def train_stage(
    cfg: dict[str, Any],
    stage: str,
    out: Path,
    data: pl.LightningDataModule,
    init: dict[str, torch.Tensor] | None = None,
    progress: bool = True,
    module_cls: type[pl.LightningModule] | None = None,
) -> Path:
    """Fit one stage (resuming if it was interrupted); returns its last checkpoint.

    module_cls: the LightningModule of the stage (default `PretrainModule`; weak supervision's
    `FinetuneModule` runs through here too)."""
    folder = out / stage
    ckpt_dir = folder / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    train = cfg["train"]
    steps = int(train["stages"][stage]["steps"])
    module = (module_cls or PretrainModule)(cfg, stage)
    if init and not last.exists():
        # Sub-modules trained by earlier stages; the rest starts from its initialisation.
        try:
            missing = module.load_state_dict(init, strict=False)
        except RuntimeError as err:  # shapes differ: weights of another network
            raise ValueError(f"the starting weights do not fit this network ({err})") from err
        if missing.unexpected_keys:
            raise ValueError(
                "the starting weights hold parts this network lacks: "
                f"{', '.join(missing.unexpected_keys[:5])}"
            )
    best = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor=module.monitor,
        mode="min",
        save_top_k=1,
        auto_insert_metric_name=False,
    )
    # A checkpoint of its own for "last": Lightning's save_last only refreshes last.ckpt when
    # the monitored metric improves, which would make a resumed run repeat steps.
    latest = ModelCheckpoint(
        dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1, enable_version_counter=False
    )
    data.setup("fit")
    batches = len(data.train_dataloader())
    trainer = pl.Trainer(
        max_steps=steps,
        val_check_interval=min(int(train["val_every"]), batches),
        check_val_every_n_epoch=None,
        limit_val_batches=int(train["val_batches"]),
        num_sanity_val_steps=0,
        callbacks=[best, latest, *([TQDMProgressBar(refresh_rate=10)] if progress else [])],
        logger=_loggers(cfg, out, stage),
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=10,
        default_root_dir=folder,
        **train["trainer"],
    )
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if last.exists() else None)
    if trainer.global_step >= steps and not last.exists():
        # A stage shorter than an epoch and the validation interval ends before any callback
        # saved it; its weights are kept all the same (every rank calls, rank zero writes).
        trainer.save_checkpoint(last)
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger":
            logger.experiment.finish()  # one W&B run per stage, grouped by experiment
    if trainer.global_step >= steps and trainer.is_global_zero:
        atomic_write_text(folder / "DONE", f"{trainer.global_step} steps\n")
    return last


def write_bundle(state: Mapping[str, torch.Tensor], cfg: Any, out: Path) -> Path:
    """An inference bundle in `out`: the network's state dict as safetensors weights and the
    resolved config (a dict or DictConfig), what inference needs. Returns `out`."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.contiguous() for k, v in state.items()}
    atomic_write(out / "model.safetensors", lambda tmp: save_file(weights, tmp), durable=True)
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(cfg)))
    return out


def export_bundle(cfg: dict[str, Any], checkpoint: Path, out: Path) -> Path:
    """The bundle (`write_bundle`) of the network in a training checkpoint."""
    state = {
        k.removeprefix("net."): v
        for k, v in checkpoint_weights(checkpoint).items()
        if k.startswith("net.")
    }
    return write_bundle(state, cfg, out)


def share_cpu_with_workers(cfg: Mapping[str, Any]) -> None:
    """On a CPU trainer, leave a core to each DataLoader worker: on a small CPU, torch's
    threads competing with the workers make a training step several times slower (measured
    10x on 2 cores)."""
    if cfg["train"]["trainer"]["accelerator"] == "cpu":
        cores = os.cpu_count() or 1
        torch.set_num_threads(max(1, cores - int(cfg["train"]["num_workers"])))


def best_or_last(folder: Path) -> Path:
    """A finished stage's best checkpoint (by its validation metric), else its last one."""
    best = folder / "checkpoints" / "best.ckpt"
    return best if best.exists() else folder / "checkpoints" / "last.ckpt"


def run_pretraining(
    config: DictConfig, progress: bool = True, stages: tuple[str, ...] | None = None
) -> Path:
    """The network's stages (`stages_for`), then the bundle; returns the bundle folder.

    With ``stages`` given, only those of the network's stages train, and the bundle is
    written only if they include its last stage (a study trains the stages its variants share
    once, see `handshape.studies`)."""
    cfg = OmegaConf.to_container(config, resolve=True)
    assert isinstance(cfg, dict)
    budgets = cfg["train"]["stages"]
    for stage in stages_for(cfg["model"]):
        if "steps" not in (budgets.get(stage) or {}):
            raise ValueError(f"train.stages.{stage}.steps is missing from the config")
    # A stage with no steps is skipped: its part keeps its initial (or train.init) weights.
    schedule = tuple(s for s in stages_for(cfg["model"]) if int(budgets[s]["steps"]) > 0)
    if not schedule:
        raise ValueError("every stage has train.stages.<stage>.steps=0: nothing to train")
    todo = schedule if stages is None else tuple(s for s in schedule if s in stages)
    labels = data_labels(cfg)  # before any training: a refusal costs nothing
    for stage in todo:
        check_labels(stage, labels, str(cfg["data"]["name"]))
    start_from = _initial_weights(cfg["train"].get("init"))
    data = build_datamodule(cfg)
    if "mesh" in labels and "pose_regressor" in schedule:
        # A mesh to train on: refuse another topology before training.
        data.setup("fit")
        sample = data.train_set[0]
        model = HandModel.load(cfg["handmodel"]["mano"])
        check_topology(cfg, int(sample["vertices"].shape[-2]), model.num_vertices)
    out = Path(cfg["output"])
    out.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(int(cfg["train"]["seed"]), workers=True)
    share_cpu_with_workers(cfg)
    # The end-to-end stage starts from the parts trained before it; the transfer stage from the
    # end-to-end network (its best checkpoint, the one a bundle would hold); with train.init,
    # every stage starts from those weights, updated by the stages before it.
    init: dict[str, torch.Tensor] = dict(start_from)
    for stage in schedule:
        last = out / stage / "checkpoints" / "last.ckpt"
        saved = None
        if last.exists():  # finished or interrupted: only under the settings it saw
            saved = torch.load(last, map_location="cpu", weights_only=True)
            check_reusable(stage, last, cfg, saved)
        done = done_steps(out / stage, int(cfg["train"]["stages"][stage]["steps"]))
        if stage not in todo and not done:
            continue
        if done:
            logger.info("stage '%s' already done (%s)", stage, last)
        else:
            logger.info("stage '%s': %s steps", stage, cfg["train"]["stages"][stage]["steps"])
            start = init if stage in ("full", "transfer") or start_from else None
            last = train_stage(cfg, stage, out, data, start, progress)
            saved = None  # the checkpoint changed: read it again below
        if stage == "full":
            init = checkpoint_weights(best_or_last(out / stage))
        elif stage != "transfer":
            prefix = f"net.{TRAINED_BY[stage]}."
            weights = saved["state_dict"] if saved is not None else checkpoint_weights(last)
            init.update({k: v for k, v in weights.items() if k.startswith(prefix)})
    if schedule[-1] not in todo:
        return out
    if rank_zero_only.rank != 0:  # under DDP every rank runs this; one writes the bundle
        return out / "bundle"
    return export_bundle(cfg, best_or_last(out / schedule[-1]), out / "bundle")
