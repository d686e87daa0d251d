"""Validation metrics gathered over a whole epoch and combined across DDP ranks at its end.

Why not `LightningModule.log(..., sync_dist=True)` in `validation_step`: Lightning reduces each
logged key with one collective call per key, in the order the keys were first logged on that
rank. With mixed data (a synthetic part with meshes, a real part without) a key such as
``val/mesh_error`` may be logged on one rank and never on another, or first on one and second
on another; the collectives then pair up different metrics or wait forever. Here each rank only
accumulates (sums and weights, joint errors), and the epoch end exchanges everything in one
`all_gather_object`, after which every rank logs the same keys in the same order with the same
values.

`EpochMetrics.add` takes batch means with their weights (the number of samples behind them);
`EpochMetrics.summary` returns weighted means over all ranks and the PCK report
(`handshape.evaluation.metrics.pck_report`) of all ranks' joint errors, then starts a new epoch;
`EpochMetrics.log` logs that summary from a LightningModule.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist

from handshape.evaluation.metrics import pck_report

__all__ = ["EpochMetrics", "gather_objects"]


def gather_objects(obj: object) -> list[object]:
    """Every rank's ``obj`` (a list of one element outside distributed runs)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    gathered: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


class EpochMetrics:
    """Per-rank accumulator of weighted batch means and joint errors (see the module docstring)."""

    def __init__(self, prefix: str = "val/") -> None:
        self.prefix = prefix
        self._sums: dict[str, float] = {}
        self._weights: dict[str, float] = {}
        self._errors: list[np.ndarray] = []

    def add(self, key: str, mean: torch.Tensor | float, weight: int | float) -> None:
        """Record a batch's mean of ``key`` over ``weight`` samples (weight 0 records nothing)."""
        if weight <= 0:
            return
        value = float(mean.detach()) if isinstance(mean, torch.Tensor) else float(mean)
        self._sums[key] = self._sums.get(key, 0.0) + value * weight
        self._weights[key] = self._weights.get(key, 0.0) + float(weight)

    def add_errors(self, errors_mm: torch.Tensor | np.ndarray) -> None:
        """Record per-joint errors (mm), (B, J), for the epoch's PCK report."""
        if isinstance(errors_mm, torch.Tensor):
            errors_mm = errors_mm.detach().cpu().numpy()
        self._errors.append(np.asarray(errors_mm, dtype=np.float64).reshape(-1))

    def summary(self) -> dict[str, float]:
        """Weighted means over every rank, and the PCK report of every rank's joint errors
        (keys as `pck_report`'s), sorted by key; identical on every rank. Resets the epoch."""
        local = (self._sums, self._weights, self._errors)
        self._sums, self._weights, self._errors = {}, {}, []
        sums: dict[str, float] = {}
        weights: dict[str, float] = {}
        errors: list[np.ndarray] = []
        for rank_sums, rank_weights, rank_errors in gather_objects(local):  # type: ignore[misc]
            for key, value in rank_sums.items():
                sums[key] = sums.get(key, 0.0) + value
                weights[key] = weights.get(key, 0.0) + rank_weights[key]
            errors.extend(rank_errors)
        out = {key: sums[key] / weights[key] for key in sums}
        if errors:
            out.update(pck_report(np.concatenate(errors)))
        return {f"{self.prefix}{key}": out[key] for key in sorted(out)}

    def log(self, module: pl.LightningModule, prog_bar: Collection[str] = ()) -> dict[str, float]:
        """Log `summary()` from ``module`` (at the end of a validation epoch); keys named in
        ``prog_bar`` (without the prefix) also go to the progress bar. Returns the summary."""
        values = self.summary()
        for key, value in values.items():
            # sync_dist on values already equal on every rank: a no-op average that keeps
            # Lightning from warning about unsynchronised epoch-level logging.
            shown = key.removeprefix(self.prefix) in prog_bar
            module.log(key, value, sync_dist=True, prog_bar=shown)
        return values
