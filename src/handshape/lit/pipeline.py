"""The train-then-evaluate sequence, once: what `handshape pretrain` and every study variant run.

The data are made (synthetic) or checked first, then the network's stages train
(`run_pretraining`, resumable), then the bundle is evaluated on the data set's validation split.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import DictConfig

from handshape.data.registry import eval_dataset, prepare_data
from handshape.evaluation.benchmarks import BENCHMARKS
from handshape.evaluation.evaluate import evaluate
from handshape.lit.train import run_pretraining
from handshape.nets.bundle import load_network

__all__ = ["Outcome", "train_and_evaluate"]


class Outcome(NamedTuple):
    bundle: Path  # the inference bundle folder
    results: dict[str, Any]  # `evaluate`'s metrics on the validation split
    minutes: float  # wall time of the training stages (not of data or evaluation)


def train_and_evaluate(cfg: DictConfig, progress: bool = True, workers: int = 1) -> Outcome:
    """Make the data where missing, train the experiment's stages, evaluate its bundle.

    workers: processes for making synthetic data."""
    name = str(cfg.data.name)
    if name in BENCHMARKS or name == "mix":
        raise ValueError(
            f"data.name={name}: this sequence scores the synthetic validation set's meshes; "
            "train on a real set or a mixture, then score it under its benchmark's protocol "
            "(handshape.evaluation.benchmarks)"
        )
    prepare_data(cfg, workers)
    start = time.perf_counter()
    bundle = run_pretraining(cfg, progress)
    minutes = (time.perf_counter() - start) / 60
    net, resolved = load_network(bundle)
    dataset = eval_dataset(str(cfg.data.name), Path(cfg.data.root))
    return Outcome(bundle, evaluate(net, resolved, dataset, progress=progress), minutes)
