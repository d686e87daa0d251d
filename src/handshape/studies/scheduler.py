"""Variants side by side, one process per GPU, where several GPUs are visible."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from handshape.studies.spec import Study
from handshape.studies.variant import train_variant

__all__ = ["parallel_devices", "train_in_parallel"]

logger = logging.getLogger(__name__)


def parallel_devices(cfg: DictConfig) -> list[str]:
    """The GPUs a study can run its variants on side by side: every visible CUDA device, when
    there are several and each variant trains on one device; otherwise none (sequential: on
    CPU, or when each variant spreads over the GPUs itself with DDP)."""
    trainer = cfg.train.trainer
    if str(trainer.accelerator) not in ("gpu", "cuda", "auto") or str(trainer.devices) != "1":
        return []
    if int(trainer.num_nodes) != 1 or not torch.cuda.is_available():
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        ids = [d.strip() for d in visible.split(",") if d.strip()]
    else:
        ids = [str(i) for i in range(torch.cuda.device_count())]
    return ids if len(ids) > 1 else []


def _variant_process(study: Study, name: str, cfg: DictConfig, out: Path) -> None:
    """Entry point of a variant's own process (one GPU, set by its parent): output into
    OUT/<name>/train.log."""
    log = out / name / "train.log"
    with open(log, "a", buffering=1) as stream:
        # File descriptors, not sys.stdout: Lightning's and W&B's handlers write there too.
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)
        logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s", force=True)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        logger.info("%s on CUDA_VISIBLE_DEVICES=%s, started at %.3f", name, visible, time.time())
        train_variant(study, name, cfg, out, progress=False)


def train_in_parallel(
    study: Study, configs: dict[str, DictConfig], out: Path, devices: list[str], poll: float = 2.0
) -> None:
    """Each variant in its own process on its own device, as many at once as there are
    devices; a variant after another waits for it. Raises naming the variants that failed."""
    context = mp.get_context("spawn")  # a fresh CUDA state per process
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the shared stages trained here; give their memory back
    waiting = list(configs)
    running: dict[str, tuple[Any, str]] = {}
    free = list(devices)
    failed: list[str] = []
    while waiting or running:
        for name in list(waiting):
            if not free:
                break
            if study.after.get(name) in waiting or study.after.get(name) in running:
                continue  # the variant it continues has not finished yet
            device = free.pop(0)
            args = (study, name, configs[name], out)
            process = context.Process(target=_variant_process, args=args, name=f"study-{name}")
            # The child inherits the variable at start, before its imports could touch CUDA.
            previous = os.environ.get("CUDA_VISIBLE_DEVICES")
            os.environ["CUDA_VISIBLE_DEVICES"] = device
            try:
                process.start()
            finally:
                if previous is None:
                    del os.environ["CUDA_VISIBLE_DEVICES"]
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = previous
            running[name] = (process, device)
            waiting.remove(name)
            log = out / name / "train.log"
            logger.info("%s: started on device %s (log: %s)", name, device, log)
        time.sleep(poll)
        for name, (process, device) in list(running.items()):
            if process.is_alive():
                continue
            process.join()
            del running[name]
            free.append(device)
            if process.exitcode == 0:
                logger.info("%s: finished", name)
                continue
            failed.append(name)
            # Variants that continue a failed one (directly or not) cannot run.
            while lost := [v for v in waiting if study.after.get(v) in failed]:
                failed += lost
                waiting = [v for v in waiting if v not in lost]
    if failed:
        logs = ", ".join(str(out / name / "train.log") for name in failed)
        raise RuntimeError(f"study '{study.name}': variants {failed} did not finish; see {logs}")
