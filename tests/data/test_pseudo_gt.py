"""The pseudo-ground-truth cache: keyed by data set, split and checkpoint; chunks written
atomically; a killed run continues with the missing chunks only; served per item."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from handshape.data.pseudo_gt import PseudoGTDataset, build_pseudo_gt, cache_folder, file_hash

N = 5  # vertices of the toy meshes


class Items(Dataset):
    def __init__(self, num: int) -> None:
        self.num = num

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"index": torch.tensor(index), "image": torch.zeros(3, 4, 4)}


class Predictor:
    """Mesh i = i everywhere; counts the samples it saw; dies after `die_after` samples."""

    def __init__(self, die_after: int | None = None) -> None:
        self.seen: list[int] = []
        self.die_after = die_after

    def __call__(self, batch: dict[str, Any]) -> torch.Tensor:
        if self.die_after is not None and len(self.seen) >= self.die_after:
            raise KeyboardInterrupt("killed")
        index = batch["index"]
        self.seen.extend(index.tolist())
        return index.float()[:, None, None].expand(-1, N, 3).clone()


KEY = {"dataset": "rhd", "split": "train", "checkpoint": "abc"}


def test_a_killed_run_continues_with_the_missing_chunks(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    data = Items(10)
    with pytest.raises(KeyboardInterrupt):
        build_pseudo_gt(Predictor(die_after=8), data, folder, chunk=4, batch_size=2, key=KEY)
    done = sorted(p.name for p in folder.iterdir())
    assert done == ["chunk_00000.npy", "chunk_00001.npy", "manifest.json"]  # no partial file
    again = Predictor()
    build_pseudo_gt(again, data, folder, chunk=4, batch_size=2, key=KEY)
    assert again.seen == [8, 9]
    served = PseudoGTDataset(data, folder)
    for i in range(10):
        item = served[i]
        assert item["index"] == i
        np.testing.assert_array_equal(item["pseudo_vertices"], np.full((N, 3), i, np.float32))
    finished = Predictor()
    build_pseudo_gt(finished, data, folder, chunk=4, batch_size=2, key=KEY)
    assert finished.seen == []


def test_a_folder_made_for_another_run_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    build_pseudo_gt(Predictor(), Items(3), folder, chunk=2, key=KEY)
    with pytest.raises(ValueError, match=r"manifest\.json: made for"):
        build_pseudo_gt(Predictor(), Items(3), folder, chunk=2, key={**KEY, "checkpoint": "x"})
    with pytest.raises(ValueError, match="made for 3 samples"):
        PseudoGTDataset(Items(4), folder)
    assert json.loads((folder / "manifest.json").read_text())["checkpoint"] == "abc"


def test_an_incomplete_cache_is_not_served(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    build_pseudo_gt(Predictor(), Items(4), folder, chunk=2, key=KEY)
    (folder / "chunk_00001.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"chunk_00001\.npy"):
        PseudoGTDataset(Items(4), folder)
    with pytest.raises(FileNotFoundError, match="build it first"):
        PseudoGTDataset(Items(4), tmp_path / "nothing")


def test_the_cache_is_keyed_by_data_set_split_and_checkpoint_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.write_bytes(b"weights one")
    b.write_bytes(b"weights two")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model.safetensors").write_bytes(b"weights one")
    assert file_hash(a) != file_hash(b)
    assert file_hash(bundle) == file_hash(a) and len(file_hash(a)) == 16
    folders = {
        cache_folder(tmp_path, d, s, file_hash(c))
        for d in ("rhd", "stb")
        for s in ("train", "val")
        for c in (a, b)
    }
    assert len(folders) == 8
    assert cache_folder(tmp_path, "rhd", "train", "0f") == tmp_path / "rhd-train-0f"
    with pytest.raises(ValueError, match="not a plain name"):
        cache_folder(tmp_path, "../x", "train", "0f")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        file_hash(tmp_path / "missing")
