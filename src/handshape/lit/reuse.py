"""When trained work may be reused: a finished or interrupted stage under a changed config, a
stage trained for one study variant copied into another.

A stage is reused only if every setting it saw is unchanged. What a stage does not see: where
it writes, how it logs, on which devices it runs (`RUN_SETTINGS`); step budgets (an interrupted
stage may resume under a new one; a finished stage's own budget is checked against its DONE
record by `done_steps`); the sections of heads the network does not use; and per stage
`UNSEEN_BY`: the hourglass and the pose regressor see neither the head, nor where the joints
come from, nor the mesh losses; the end-to-end stage of a network with a mesh does not see the
latent pose regressor, which only the transfer stage trains.

Configs are compared as flat ``{"a.b.c": value}`` dicts; a setting missing on one side (a
config written before the setting existed) counts as changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = [
    "LEGACY",
    "RUN_SETTINGS",
    "UNSEEN_BY",
    "changed_settings",
    "check_reusable",
    "done_steps",
    "flat",
    "unseen_by",
]

RUN_SETTINGS = (
    "output",
    "experiment",
    "train.logging.",
    "train.trainer.accelerator",
    "train.trainer.devices",
    "train.trainer.num_nodes",
    "train.trainer.strategy",
    "train.stages.",
    "train.val_every",
    "train.val_batches",
    "train.num_workers",
    "finetune.",  # fine-tuning settings: pretraining never sees them
)
_NOT_THE_MESH = ("model.head.", "model.pose_from", "model.latent_pose.", "train.loss_weights.")
UNSEEN_BY = {
    "hourglass": _NOT_THE_MESH,
    "pose_regressor": _NOT_THE_MESH,
    "full": (),
    "transfer": (),
}


_MISSING = object()  # a setting one config does not have
# Settings added later, with the value configs written before them behaved as.
LEGACY = {"model.pose_from": "mesh", "data.name": "synthetic", "data.mix": [], "train.init": None}
# Values written differently before, with the value they mean now.
RENAMED = {("data.config", "configs/data/synthetic.yaml"): "synthetic"}


def flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {"a.b.c": leaf}; lists are leaves."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): tree}


def unseen_by(stage: str, cfg: dict[str, Any]) -> tuple[str, ...]:
    """Setting prefixes that stage ``stage`` of the network of ``cfg`` (plain dict) ignores."""
    extra: tuple[str, ...] = ()
    if stage == "full" and str(cfg["model"]["head"]["name"]) != "none":
        extra = ("model.pose_from", "model.latent_pose.")
    return RUN_SETTINGS + UNSEEN_BY[stage] + extra


def _unused(cfg: dict[str, Any], keys: set[str]) -> set[str]:
    """Setting prefixes the network of ``cfg`` does not use: other heads' sections, the latent
    pose regressor and the transfer stage unless its joints come from the latent vector."""
    model = cfg.get("model", {})
    head = str(model.get("head", {}).get("name"))
    latent = str(model.get("pose_from", "mesh")) == "latent"  # older configs: from the mesh
    heads = {k.split(".")[2] for k in keys if k.startswith("model.head.") and k.count(".") > 2}
    out = {f"model.head.{name}." for name in heads - {head}}
    if not latent:
        out |= {"model.latent_pose.", "train.stages.transfer."}
    if head == "none":
        out.add("train.stages.pose_regressor.")
    return out


def _renamed(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: RENAMED.get((k, v), v) if isinstance(v, str) else v for k, v in settings.items()}


def changed_settings(
    before: dict[str, Any], now: dict[str, Any], ignore: tuple[str, ...] = RUN_SETTINGS
) -> list[str]:
    """The settings two plain configs disagree on, sorted; ``ignore`` prefixes and settings
    that neither network uses are left out. Settings added after a config was written count as
    changed unless they reproduce what older configs did (`LEGACY`)."""
    a, b = ({**LEGACY, **_renamed(flat(cfg))} for cfg in (before, now))
    keys = set(a) | set(b)
    skip = ignore + tuple(_unused(before, keys) & _unused(now, keys))
    return sorted(
        k for k in keys if a.get(k, _MISSING) != b.get(k, _MISSING) and not k.startswith(skip)
    )


def check_reusable(
    stage: str, checkpoint: Path, cfg: dict[str, Any], saved: dict[str, Any] | None = None
) -> None:
    """Raise ValueError, naming the checkpoint and the settings, when the stage in
    ``checkpoint`` was trained under settings it sees that differ from ``cfg``'s. ``saved``:
    the checkpoint's content where the caller has read it already (else read here, with
    weights_only=True)."""
    if saved is None:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    before = saved.get("hyper_parameters", {}).get("cfg")
    if not isinstance(before, dict):
        raise ValueError(f"{checkpoint}: not a handshape training checkpoint (no saved config)")
    changed = changed_settings(before, cfg, unseen_by(stage, cfg))
    if changed:
        raise ValueError(
            f"{checkpoint}: stage '{stage}' was trained with other settings ({', '.join(changed)});"
            f" train into another output folder or delete {checkpoint.parent.parent}"
        )


def done_steps(folder: Path, steps: int) -> bool:
    """Whether the stage in ``folder`` finished ``steps`` steps (its DONE record); raise
    ValueError when it finished another number (a changed budget: its results would be stale)."""
    record = folder / "DONE"
    if not record.exists():
        return False
    text = record.read_text().split()
    done = int(text[0]) if text and text[0].isdigit() else None
    if done != steps:
        raise ValueError(
            f"{record}: the stage finished {done} steps, the config now asks for {steps}; "
            f"train into another output folder or delete {folder}"
        )
    return True
