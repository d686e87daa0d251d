"""Pseudo-ground-truth meshes for weak supervision (paper Sec. 4.4): cached on disk, resumable.

The pretrained network, run over the real training images with ground-truth heat-maps in place
of its own (`handshape.lit.finetune.pseudo_gt_predictor`), gives a well-formed mesh per image;
L_pM keeps the fine-tuned mesh's edges and Laplacian close to it. This module only stores and
serves those meshes, so it does not depend on the network (the layering: data below nets).

Layout: ``CACHE/<dataset>-<split>-<checkpoint hash>/`` with ``manifest.json`` (what was run)
and ``chunk_00000.npy``... (float32 (n, N, 3): the network's uvd output, the same
parametrisation as its predictions, so that it can be lifted with any root depth and scale).
Each chunk is written atomically; a killed run leaves whole chunks only, and running again
computes just the missing ones. Another checkpoint or data set gets another folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from handshape.safeio.atomic import atomic_write, record_once

logger = logging.getLogger(__name__)

__all__ = ["PseudoGTDataset", "build_pseudo_gt", "cache_folder", "file_hash"]

Predictor = Callable[[dict[str, Any]], torch.Tensor]  # a collated batch -> (B, N, 3) uvd


def file_hash(path: Path) -> str:
    """The first 16 hex digits of the SHA-256 of a file (a checkpoint's weights), or of a bundle
    folder's model.safetensors."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint to key the pseudo-ground truth by")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def cache_folder(cache: Path, dataset: str, split: str, checkpoint_hash: str) -> Path:
    """Where the pseudo-ground truth of (data set, split, checkpoint) lives under `cache`."""
    for name, value in (("dataset", dataset), ("split", split), ("hash", checkpoint_hash)):
        if not value or "/" in value or value.startswith("."):
            raise ValueError(f"pseudo-GT cache key {name}={value!r} is not a plain name")
    return Path(cache) / f"{dataset}-{split}-{checkpoint_hash}"


def _chunk_path(folder: Path, k: int) -> Path:
    return folder / f"chunk_{k:05d}.npy"


def _chunks(num: int, chunk: int) -> Iterator[tuple[int, range]]:
    for k, start in enumerate(range(0, num, chunk)):
        yield k, range(start, min(num, start + chunk))


def build_pseudo_gt(
    predict: Predictor,
    dataset: Dataset,
    folder: Path,
    chunk: int = 64,
    batch_size: int = 16,
    num_workers: int = 0,
    key: dict[str, Any] | None = None,
) -> Path:
    """Run `predict` over every item of `dataset` (unaugmented, in order) into `folder`,
    skipping the chunks already there; returns `folder`.

    key: what identifies the run (data set, split, checkpoint hash...), written to the manifest;
    a folder whose manifest records another key or chunk size is refused (ValueError)."""
    folder = Path(folder)
    num = len(dataset)  # type: ignore[arg-type]
    manifest = {"num": num, "chunk": int(chunk), **(key or {})}
    path = folder / "manifest.json"
    before = record_once(path, manifest)
    if before is not None:
        raise ValueError(
            f"{path}: made for {before}, not {manifest}; delete {folder} to rebuild it"
        )
    todo = [(k, r) for k, r in _chunks(num, chunk) if not _chunk_path(folder, k).is_file()]
    if todo:
        total = -(-num // chunk)
        logger.info("pseudo-GT: %d of %d chunks to compute in %s", len(todo), total, folder)
    for k, indices in todo:
        loader = DataLoader(
            Subset(dataset, list(indices)), batch_size=batch_size, num_workers=num_workers
        )
        with torch.no_grad():
            parts = [predict(batch).detach().float().cpu().numpy() for batch in loader]
        values = np.concatenate(parts).astype(np.float32)
        if values.shape[0] != len(indices):
            raise RuntimeError(f"predictor returned {values.shape[0]} meshes for {len(indices)}")
        atomic_write(_chunk_path(folder, k), lambda tmp, v=values: _save(tmp, v))
    return folder


def _save(path: str, values: np.ndarray) -> None:
    # Through a handle: given a name, np.save would append ".npy" to the temporary one.
    with open(path, "wb") as handle:
        np.save(handle, values, allow_pickle=False)


class PseudoGTDataset(Dataset):
    """`base`'s items with `pseudo_vertices` (N, 3) float32 added from a complete cache."""

    def __init__(self, base: Dataset, folder: Path) -> None:
        self.base, self.folder = base, Path(folder)
        path = self.folder / "manifest.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no pseudo-ground truth here (build it first)")
        manifest = json.loads(path.read_text())
        self.chunk = int(manifest["chunk"])
        if int(manifest["num"]) != len(base):  # type: ignore[arg-type]
            raise ValueError(
                f"{path}: made for {manifest['num']} samples, the data set has {len(base)}"  # type: ignore[arg-type]
            )
        missing = [
            str(_chunk_path(self.folder, k))
            for k, _ in _chunks(len(base), self.chunk)  # type: ignore[arg-type]
            if not _chunk_path(self.folder, k).is_file()
        ]
        if missing:
            raise FileNotFoundError(f"pseudo-GT cache incomplete, missing {missing[0]} and others")

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.base[index])
        k, offset = divmod(int(index), self.chunk)
        chunk = np.load(_chunk_path(self.folder, k), mmap_mode="r", allow_pickle=False)
        item["pseudo_vertices"] = torch.from_numpy(np.array(chunk[offset], dtype=np.float32))
        return item
