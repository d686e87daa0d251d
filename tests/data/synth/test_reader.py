"""Reading the synthetic shards back: raw samples, errors, and the background-blending Dataset."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from handshape.config import PACKAGE_CONFIGS
from handshape.data.synth.generate import DEPTH_UNIT, Plan, generate
from handshape.data.synth.reader import (
    HAS_LABELS,
    LABEL_KEYS,
    SyntheticDataset,
    SyntheticShards,
)
from handshape.data.synth.scene import SynthConfig
from handshape.handmodel.model import HandModel

REPO = Path(__file__).resolve().parents[3]
CONFIG_PATH = PACKAGE_CONFIGS / "data" / "synthetic.yaml"
SIZE = 64
NUM = 10  # shards of 4, 4 and 2 samples
FLAT_PNG = [(200, 30, 30), (20, 180, 40), (30, 60, 220)]
FLAT_JPG = [(240, 240, 20)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = dataclasses.replace(SynthConfig.load(CONFIG_PATH), size=SIZE, shard_size=4)
    plan = Plan(tmp_path_factory.mktemp("reader") / "out", "train", NUM, 0, config)
    generate(plan, progress=False)
    return plan.folder


@pytest.fixture(scope="module")
def flat_backgrounds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A folder of single-colour PNG and JPG images and the colours they decode to."""
    root = tmp_path_factory.mktemp("backgrounds")
    (root / "nested").mkdir()
    colours = []
    for i, colour in enumerate(FLAT_PNG + FLAT_JPG):
        suffix = ".png" if colour in FLAT_PNG else ".jpg"
        path = root / ("nested" if i % 2 else ".") / f"flat{i}{suffix}"
        Image.new("RGB", (50 + 10 * i, 40), colour).save(path)
        with Image.open(path) as image:
            decoded = np.asarray(image.convert("RGB"))
        assert np.all(decoded == decoded[0, 0])  # flat after decoding, JPEG included
        colours.append(decoded[0, 0])
    return root, np.array(colours)


def copy_of(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy" / folder.name
    shutil.copytree(folder, target)
    return target


def as_uint8(image: torch.Tensor) -> np.ndarray:
    return (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


# ----------------------------------------------------------------------------- raw samples


def test_shards_give_every_stored_sample_with_depth_in_metres(folder: Path) -> None:
    shards = SyntheticShards(folder)
    assert len(shards) == NUM
    with np.load(folder / "shard_00001.npz") as z:
        stored = {key: z[key] for key in z.files}
    for i in range(NUM):
        sample = shards.get(i)
        assert int(sample["index"]) == i
        if 4 <= i < 8:
            for key, values in stored.items():
                if key != "depth":
                    assert np.array_equal(sample[key], values[i - 4]), key
            assert sample["depth"].dtype == np.float32
            np.testing.assert_allclose(
                sample["depth"], stored["depth"][i - 4] * DEPTH_UNIT, rtol=1e-6
            )
        assert sample["depth"].max() < 2.0  # metres, not storage units
        assert np.array_equal(sample["depth"] > 0, sample["rgba"][..., 3] > 0)


@pytest.mark.parametrize("index", [-1, NUM])
def test_out_of_range_index_is_refused(folder: Path, index: int) -> None:
    with pytest.raises(IndexError, match=r"out of range"):
        SyntheticShards(folder).get(index)


def test_a_folder_without_data_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"manifest\.json.*no synthetic data here"):
        SyntheticShards(tmp_path / "train")


def test_a_missing_shard_is_reported_with_its_folder(folder: Path, tmp_path: Path) -> None:
    broken = copy_of(folder, tmp_path)
    (broken / "shard_00001.npz").unlink()
    with pytest.raises(ValueError, match=r"1 of 3 shards are missing") as info:
        SyntheticShards(broken)
    assert str(broken) in str(info.value)
    assert "shard_00001.npz" in str(info.value)


def garbage(data: bytes) -> bytes:
    return b"this is not a shard\n" * 20


def empty(data: bytes) -> bytes:
    return b""


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def bit_flipped(data: bytes) -> bytes:
    middle = len(data) // 2
    return (
        data[:middle]
        + bytes(b ^ 0xFF for b in data[middle : middle + 2000])
        + data[middle + 2000 :]
    )


@pytest.mark.parametrize(
    "damage",
    [
        garbage,
        empty,
        truncated,
        bit_flipped,
    ],
)
def test_a_corrupt_shard_is_reported_by_name(
    folder: Path, tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    broken = copy_of(folder, tmp_path)
    path = broken / "shard_00001.npz"
    path.write_bytes(damage(path.read_bytes()))
    shards = SyntheticShards(broken)
    assert int(shards.get(0)["index"]) == 0  # the intact shards stay readable
    with pytest.raises(ValueError, match=r"shard_00001\.npz: corrupt shard"):
        shards.get(5)


def test_an_unreadable_manifest_is_reported(folder: Path, tmp_path: Path) -> None:
    broken = copy_of(folder, tmp_path)
    (broken / "manifest.json").write_text("{ not json")
    with pytest.raises(ValueError, match=r"manifest\.json: unreadable manifest"):
        SyntheticShards(broken)


# ----------------------------------------------------------------------------- the Dataset


def test_dataset_items_have_the_documented_shapes_and_types(folder: Path) -> None:
    model = HandModel.default()
    item = SyntheticDataset(folder, train=True)[3]
    expected = {
        "image": ((3, SIZE, SIZE), torch.float32),
        "mask": ((SIZE, SIZE), torch.bool),
        "depth": ((SIZE, SIZE), torch.float32),
        "joints_2d": ((21, 2), torch.float32),
        "joints_3d": ((21, 3), torch.float32),
        "vertices": ((model.num_vertices, 3), torch.float32),
        "K": ((3, 3), torch.float32),
        "visibility": ((21,), torch.bool),
        "shape": ((model.num_shapes,), torch.float32),
        "pose": ((16, 3), torch.float32),
    }
    frame = {"sample_id", "mirrored", "crop", "image_size"}  # as the real sets' items
    flags = {f"has_{label}" for label in HAS_LABELS}
    assert set(expected) == {"image", "mask", "depth", *LABEL_KEYS}
    assert set(item) == {*expected, *frame, *flags}
    assert all(bool(item[f]) for f in flags) and item["sample_id"] == "3"
    assert not item["mirrored"] and torch.equal(item["crop"], torch.eye(3, dtype=torch.float64))
    for key, (shape, dtype) in expected.items():
        assert tuple(item[key].shape) == shape, key
        assert item[key].dtype == dtype, key
    assert float(item["image"].min()) >= 0.0 and float(item["image"].max()) <= 1.0
    assert torch.equal(item["mask"], item["depth"] > 0)


def test_labels_are_the_stored_ones(folder: Path) -> None:
    raw = SyntheticShards(folder).get(6)
    item = SyntheticDataset(folder, train=True)[6]
    for key in LABEL_KEYS:
        assert np.array_equal(item[key].numpy(), raw[key]), key


def test_the_background_folder_fills_everything_but_the_hand(
    folder: Path, flat_backgrounds: tuple[Path, np.ndarray]
) -> None:
    root, colours = flat_backgrounds
    dataset = SyntheticDataset(folder, backgrounds=root, train=False)
    used = set()
    for i in range(NUM):
        item, raw = dataset[i], dataset.shards.get(i)
        image, mask = as_uint8(item["image"]), item["mask"].numpy()
        away = ~ndimage.binary_dilation(mask, iterations=3)
        inside = ndimage.binary_erosion(mask, iterations=3)
        assert away.sum() > SIZE * SIZE // 4 and inside.sum() > 20
        background = np.unique(image[away], axis=0)
        assert len(background) == 1, i  # one flat colour behind the hand ...
        match = np.flatnonzero(np.all(colours == background[0], axis=1))
        assert len(match) == 1, (i, background[0])  # ... from the folder
        used.add(int(match[0]))
        # The hand itself is the render, untouched (no augmentation for validation).
        np.testing.assert_array_equal(image[inside], raw["rgba"][..., :3][inside])
    assert len(used) >= 2  # the colours do change from sample to sample


def test_validation_images_are_fixed_and_training_images_follow_the_torch_seed(
    folder: Path,
) -> None:
    val = SyntheticDataset(folder, train=False)
    assert torch.equal(val[2]["image"], SyntheticDataset(folder, train=False)[2]["image"])
    torch.manual_seed(11)
    val_first = val[2]["image"]
    torch.manual_seed(12)
    assert torch.equal(val[2]["image"], val_first)
    assert not torch.equal(val[2]["image"], val[3]["image"])

    train = SyntheticDataset(folder, train=True)
    torch.manual_seed(11)
    first = train[2]["image"]
    torch.manual_seed(11)
    assert torch.equal(train[2]["image"], first)
    torch.manual_seed(12)
    second = train[2]["image"]
    mask = train[2]["mask"]
    assert not torch.equal(second[:, ~mask], first[:, ~mask])  # another background
