"""Specification of the validation metrics combined over an epoch and across DDP ranks."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from handshape.evaluation.metrics import pck_report
from handshape.lit.epoch_metrics import EpochMetrics


def test_batch_means_are_weighted_by_their_samples_and_prefixed() -> None:
    epoch = EpochMetrics()
    epoch.add("pose_error", torch.tensor(10.0), 3)
    epoch.add("pose_error", 20.0, 1)
    epoch.add("mesh_error", 5.0, 0)  # a batch without meshes records nothing
    assert epoch.summary() == {"val/pose_error": pytest.approx(12.5)}


def test_the_pck_report_covers_every_batch_and_the_epoch_starts_afresh() -> None:
    epoch = EpochMetrics()
    first, second = np.full((2, 21), 10.0), np.full((1, 21), 60.0)
    epoch.add_errors(torch.from_numpy(first))
    epoch.add_errors(second)
    summary = epoch.summary()
    expected = pck_report(np.concatenate([first.ravel(), second.ravel()]))
    assert summary["val/pck_50"] == pytest.approx(expected["pck_50"]) == pytest.approx(2 / 3)
    assert summary["val/mean_mm"] == pytest.approx(expected["mean_mm"])
    assert list(summary) == sorted(summary)
    assert epoch.summary() == {}


def _rank(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        epoch = EpochMetrics()
        if rank == 0:  # this rank saw meshes, and logged them before the loss
            epoch.add("mesh_error", 30.0, 2)
            epoch.add("total", 1.0, 2)
            epoch.add_errors(np.full((2, 21), 10.0))
        else:  # this one saw no meshes at all
            epoch.add("total", 4.0, 1)
            epoch.add_errors(np.full((1, 21), 40.0))
        Path(out, f"{rank}.json").write_text(json.dumps(epoch.summary()))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_ranks_that_saw_different_metrics_agree_on_one_summary(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(port, str(tmp_path)), nprocs=2, join=True)
    zero, one = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    assert zero == one
    assert zero["val/mesh_error"] == pytest.approx(30.0)
    assert zero["val/total"] == pytest.approx((2 * 1.0 + 4.0) / 3)
    assert zero["val/pck_20"] == pytest.approx(2 / 3)
