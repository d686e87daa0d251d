"""Specification of when trained work may be reused under a changed config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from handshape.config import PACKAGE_CONFIGS, load_experiment
from handshape.lit.reuse import changed_settings, check_reusable, done_steps, flat, unseen_by

CONFIGS = PACKAGE_CONFIGS


def cfg(*overrides: str) -> dict[str, Any]:
    plain = OmegaConf.to_container(load_experiment("tiny", list(overrides), CONFIGS), resolve=True)
    assert isinstance(plain, dict)
    return plain


def test_flat_names_every_leaf_by_its_path() -> None:
    assert flat({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": 1, "a.c": [1, 2], "d": None}


def test_run_settings_and_budgets_are_not_changes() -> None:
    before = cfg()
    now = cfg("output=elsewhere", "train.trainer.devices=4", "train.stages.full.steps=99")
    assert changed_settings(before, now) == []
    assert changed_settings(before, cfg("train.trainer.precision=16-mixed")) == [
        "train.trainer.precision"
    ]


def test_sections_of_heads_neither_network_uses_are_not_changes() -> None:
    before = cfg()  # graphcnn
    assert changed_settings(before, cfg("model.head.mano.hidden=7")) == []
    assert changed_settings(
        cfg("model.head.name=mano"), cfg("model.head.name=mano", "model.head.mano.hidden=7")
    ) == ["model.head.mano.hidden"]


def test_a_setting_one_config_lacks_is_a_change() -> None:
    """Configs written before a setting existed: its absence is not taken for agreement..."""
    before = cfg()
    del before["model"]["graph_levels"]
    assert changed_settings(before, cfg()) == ["model.graph_levels"]


def test_settings_added_later_compare_as_older_configs_behaved() -> None:
    """... unless older configs behaved as the setting's value says (LEGACY), or the network
    does not use it (the latent regressor and transfer budget of a network posing from the
    mesh)."""
    before = cfg()
    del before["model"]["pose_from"], before["model"]["latent_pose"]
    del before["train"]["stages"]["transfer"]
    budgets = ("output",)  # budgets count here, as for a study's finished variants
    assert changed_settings(before, cfg(), budgets) == []
    assert changed_settings(before, cfg("model.pose_from=latent"), budgets) == [
        "model.latent_pose.hidden",
        "model.pose_from",
        "train.stages.transfer.steps",
    ]


def test_what_each_stage_does_not_see() -> None:
    mesh, only_pose = cfg(), cfg("model.head.name=none", "model.pose_from=latent")
    for stage in ("hourglass", "pose_regressor"):
        assert (
            changed_settings(
                mesh,
                cfg("model.head.name=mano", "train.loss_weights.edge=0"),
                unseen_by(stage, mesh),
            )
            == []
        )
        assert changed_settings(
            mesh, cfg("model.hourglass.channels=4"), unseen_by(stage, mesh)
        ) == ["model.hourglass.channels"]
    # the end-to-end stage of a mesh network does not see the latent pose regressor...
    transfer = cfg("model.pose_from=latent")
    assert changed_settings(mesh, transfer, unseen_by("full", transfer)) == []
    # ... but a pose-only network trains it there
    wider = cfg("model.head.name=none", "model.pose_from=latent", "model.latent_pose.hidden=64")
    assert changed_settings(only_pose, wider, unseen_by("full", wider)) == [
        "model.latent_pose.hidden"
    ]
    assert "model.head." not in unseen_by("full", mesh)


def test_check_reusable_reads_the_checkpoints_config(tmp_path: Path) -> None:
    path = tmp_path / "stage" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"hyper_parameters": {"cfg": cfg()}, "state_dict": {}}, path)
    check_reusable("hourglass", path, cfg("model.head.name=lbs"))  # unseen: accepted
    with pytest.raises(
        ValueError,
        match=r"last.ckpt: stage 'full' was trained with other settings "
        r"\(train.loss_weights.edge\).*delete .*stage",
    ):
        check_reusable("full", path, cfg("train.loss_weights.edge=0"))
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match=r"last.ckpt: not a handshape training checkpoint"):
        check_reusable("full", path, cfg())


def test_done_steps_accepts_only_the_budget_it_finished(tmp_path: Path) -> None:
    assert done_steps(tmp_path, 5) is False  # not finished: train (or resume)
    (tmp_path / "DONE").write_text("5 steps\n")
    assert done_steps(tmp_path, 5) is True
    with pytest.raises(
        ValueError, match=r"DONE: the stage finished 5 steps, the config now asks for 8"
    ):
        done_steps(tmp_path, 8)
