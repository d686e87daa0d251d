"""SyntheticDataModule: train/val loaders over a set made by `handshape synth`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from handshape.config import PACKAGE_CONFIGS
from handshape.data.synth.datamodule import SyntheticDataModule
from handshape.data.synth.generate import Plan, generate
from handshape.data.synth.reader import SyntheticShards
from handshape.data.synth.scene import SynthConfig
from handshape.handmodel.model import HandModel

REPO = Path(__file__).resolve().parents[2]
CONFIG_PATH = PACKAGE_CONFIGS / "data" / "synthetic.yaml"
SIZE = 64
NUM = {"train": 8, "val": 4}
BATCH = 4


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dm") / "out"
    # No simulated camera: its colour and blur would hide the flat backgrounds looked for below
    # (the camera is specified in tests/data/synth/test_reader.py).
    config = dataclasses.replace(
        SynthConfig.load(CONFIG_PATH), size=SIZE, shard_size=4, camera={"enabled": False}
    )
    for split, num in NUM.items():
        generate(Plan(out, split, num, 0, config), progress=False)
    return out


def fitted(root: Path, **kwargs: object) -> SyntheticDataModule:
    dm = SyntheticDataModule(root, batch_size=BATCH, num_workers=0, **kwargs)  # type: ignore[arg-type]
    dm.setup("fit")
    return dm


def images_by_sample(loader: torch.utils.data.DataLoader) -> dict[bytes, torch.Tensor]:
    """One epoch's images keyed by the sample's 3D joints (unique per sample)."""
    out = {}
    for batch in loader:
        for image, joints in zip(batch["image"], batch["joints_3d"], strict=True):
            out[joints.numpy().tobytes()] = image
    return out


def test_batches_have_the_documented_shapes_and_types(root: Path) -> None:
    model = HandModel.default()
    dm = fitted(root)
    expected = {
        "image": ((BATCH, 3, SIZE, SIZE), torch.float32),
        "mask": ((BATCH, SIZE, SIZE), torch.bool),
        "ids": ((BATCH, SIZE, SIZE), torch.uint8),
        "depth": ((BATCH, SIZE, SIZE), torch.float32),
        "joints_2d": ((BATCH, 21, 2), torch.float32),
        "joints_3d": ((BATCH, 21, 3), torch.float32),
        "vertices": ((BATCH, model.num_vertices, 3), torch.float32),
        "K": ((BATCH, 3, 3), torch.float32),
        "visibility": ((BATCH, 21), torch.bool),
        "shape": ((BATCH, model.num_shapes), torch.float32),
        "pose": ((BATCH, 16, 3), torch.float32),
    }
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        for batch in loader:
            # Plus the real sets' label flags and frame (tests/data/synth/test_reader.py).
            assert set(expected) < set(batch) and batch["has_mesh"].all()
            for key, (shape, dtype) in expected.items():
                assert tuple(batch[key].shape) == shape, key
                assert batch[key].dtype == dtype, key
            assert float(batch["image"].min()) >= 0.0 and float(batch["image"].max()) <= 1.0
            assert torch.equal(batch["ids"] > 0, batch["depth"] > 0)
            assert torch.equal(batch["mask"], batch["ids"] == 1)
    assert len(dm.train_dataloader()) == NUM["train"] // BATCH
    assert len(dm.val_dataloader()) == -(-NUM["val"] // BATCH)


def test_train_is_shuffled_and_val_is_in_order(root: Path) -> None:
    dm = fitted(root)
    val_joints = torch.cat([b["joints_3d"] for b in dm.val_dataloader()]).numpy()
    shards = SyntheticShards(root / "val")
    stored = np.stack([shards.get(i)["joints_3d"] for i in range(NUM["val"])])
    np.testing.assert_array_equal(val_joints, stored)
    orders = []
    for seed in range(4):
        torch.manual_seed(seed)
        joints = torch.cat([b["joints_3d"] for b in dm.train_dataloader()])
        orders.append(joints[:, 0, 0].numpy().tobytes())
    assert len(set(orders)) > 1


def test_train_backgrounds_change_between_epochs_and_val_images_do_not(root: Path) -> None:
    dm = fitted(root)
    epochs, val_epochs = [], []
    for epoch in range(2):
        torch.manual_seed(100 + epoch)  # as a new epoch's worker seed would
        epochs.append(images_by_sample(dm.train_dataloader()))
        val_epochs.append([b["image"] for b in dm.val_dataloader()])
    assert epochs[0].keys() == epochs[1].keys() and len(epochs[0]) == NUM["train"]
    for key, image in epochs[0].items():
        assert not torch.equal(image, epochs[1][key])
    for a, b in zip(*val_epochs, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_train_backgrounds_change_between_epochs_of_one_training_run(
    root: Path, num_workers: int
) -> None:
    torch.manual_seed(0)  # once, as seed_everything does at the start of a run
    dm = SyntheticDataModule(root, batch_size=BATCH, num_workers=num_workers)
    dm.setup("fit")
    loader = dm.train_dataloader()  # Lightning reuses one loader for every epoch
    first, second = images_by_sample(loader), images_by_sample(loader)
    same = [torch.equal(image, second[key]) for key, image in first.items()]
    assert not any(same)


def test_setup_for_validation_only_builds_the_val_set(root: Path) -> None:
    dm = SyntheticDataModule(root, batch_size=BATCH, num_workers=0)
    with pytest.raises(RuntimeError, match=r"setup\(\)"):
        dm.val_dataloader()
    dm.setup("validate")
    assert dm.train_set is None and dm.val_set is not None
    with pytest.raises(RuntimeError, match=r"setup\(\)"):
        dm.train_dataloader()
    assert len(list(dm.val_dataloader())) == 1


def test_a_missing_split_names_its_folder(root: Path, tmp_path: Path) -> None:
    dm = SyntheticDataModule(tmp_path, batch_size=BATCH, num_workers=0)
    with pytest.raises(FileNotFoundError, match=r"train.manifest\.json"):
        dm.setup("fit")


def test_the_background_folder_reaches_both_loaders(root: Path, tmp_path: Path) -> None:
    colour = (10, 200, 120)
    Image.new("RGB", (32, 32), colour).save(tmp_path / "flat.png")
    dm = fitted(root, backgrounds=tmp_path, augmentation={"enabled": False})
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        batch = next(iter(loader))
        corner = (batch["image"][:, :, 0, 0] * 255).round()
        off_hand = batch["ids"][:, 0, 0] == 0  # neither hand, forearm nor object there
        assert off_hand.any()
        assert torch.equal(corner[off_hand], torch.tensor([colour] * int(off_hand.sum())).float())


def test_an_experiments_nested_generator_settings_override_only_themselves() -> None:
    from handshape.config import load_experiment
    from handshape.data.synth.datamodule import generator_config

    quick = generator_config(load_experiment("quick").data)
    assert quick.view_prior == {"egocentric": 0.0, "third_person": 0.0}  # the preset's own
    cfg = load_experiment("quick", ["data.settings.forearm.enabled=false"])
    forearm = generator_config(cfg.data).forearm
    assert forearm["enabled"] is False and "length" in forearm  # the rest of the section stays
    with pytest.raises(ValueError, match=r"unknown settings \['objects\.probabilty'\]"):
        generator_config(load_experiment("quick", ["data.settings.objects.probabilty=0.5"]).data)
