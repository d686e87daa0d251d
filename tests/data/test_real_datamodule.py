"""Training DataModules of the real sets and of mixtures: splits, weights, one batch format."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from handshape.config import load_experiment
from handshape.data.real_datamodule import HOLDOUT_EVERY, MixtureSampler, holdout, interleaved
from handshape.data.registry import build_datamodule, data_labels, eval_dataset
from real_formats import make_freihand, make_rhd, make_stb

pytestmark = pytest.mark.usefixtures("single_thread")


def config(*overrides: str) -> dict:
    cfg = OmegaConf.to_container(load_experiment("tiny", list(overrides)), resolve=True)
    assert isinstance(cfg, dict)
    return cfg


class Numbers:
    """A stand-in reader whose sample i is i."""

    def __len__(self) -> int:
        return 45

    def load(self, index: int) -> int:
        return index


def test_the_held_out_part_is_every_20th_sample_and_never_trains() -> None:
    train, val = holdout(Numbers(), "train"), holdout(Numbers(), "val")
    assert [val.load(i) for i in range(len(val))] == [0, 20, 40]
    assert len(train) + len(val) == 45
    assert not {train.load(i) for i in range(len(train))} & {0, 20, 40}
    assert HOLDOUT_EVERY == 20


def test_validation_interleaves_the_parts_of_a_mixture() -> None:
    assert interleaved([3, 1, 2]) == [0, 3, 4, 1, 5, 2]
    assert interleaved([2]) == [0, 1]


def test_a_mixture_draws_each_part_by_its_weight_in_its_own_order() -> None:
    torch.manual_seed(0)
    sampler = MixtureSampler([10, 1000], [3.0, 1.0])
    drawn = list(sampler)
    assert len(drawn) == len(sampler) == 1010
    share = sum(i < 10 for i in drawn) / len(drawn)
    assert share == pytest.approx(0.75, abs=0.04)  # the small part: 3/4 of the draws
    first = [i for i in drawn if i < 10][:10]
    assert sorted(first) == list(range(10))  # a permutation before any repeat
    with pytest.raises(ValueError, match="needs samples"):
        MixtureSampler([0, 5], [1.0, 1.0])


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("real")
    make_rhd(base / "rhd", "training", 42)
    make_stb(
        base / "stb", {f"B{i}{kind}": 4 for i in range(2, 7) for kind in ("Counting", "Random")}
    )
    make_freihand(base / "freihand", 40)
    return {name: base / name for name in ("rhd", "stb", "freihand")}


@pytest.mark.parametrize("name", ["rhd", "stb", "freihand"])
def test_a_real_set_trains_with_the_synthetic_item_format(name: str, roots: dict) -> None:
    data = build_datamodule(config(f"data.name={name}", f"data.root={roots[name]}"))
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (4, 3, 64, 64)  # cropped at the network's input size
    assert batch["vertices"].shape == (4, 1050, 3)  # the network's topology, zeros here
    assert not batch["has_mesh"].any() and batch["has_joints_3d"].all()
    assert not batch["has_depth"].any()  # training never reads depth: RHD's and STB's skipped
    assert len(data.val_set) > 0 and len(data.train_set) > len(data.val_set)


def test_freihand_meshes_label_only_a_mano_network(roots: dict) -> None:
    ours = config("data.name=freihand", f"data.root={roots['freihand']}")
    assert "mesh" not in data_labels(ours)  # 778 MANO vertices do not fit handshape's hand
    # depth is on disk, but training items leave it out (fine-tuning reads it itself)
    assert data_labels(config("data.name=rhd")) == {"joints_2d", "joints_3d", "mask"}


def test_a_mixture_batches_synthetic_and_real_samples_together(
    roots: dict, tmp_path: Path, tiny_data_overrides
) -> None:
    from handshape.data.registry import prepare_data

    overrides = tiny_data_overrides(tmp_path)
    synth_root = next(o for o in overrides if o.startswith("data.root=")).split("=", 1)[1]
    mix = (
        f"data.mix=[{{name: synthetic, root: '{synth_root}', weight: 1.0}},"
        f" {{name: rhd, root: '{roots['rhd']}', weight: 1.0}}]"
    )
    cfg = config(*overrides, "data.name=mix", mix, "train.batch_size=16")
    prepare_data(cfg)  # renders the synthetic part
    assert data_labels(cfg) == {"joints_2d", "joints_3d", "mesh", "depth", "mask"}
    torch.manual_seed(0)
    batch = next(iter(build_datamodule(cfg).train_dataloader()))
    kinds = Counter(bool(m) for m in batch["has_mesh"])
    assert kinds[True] > 0 and kinds[False] > 0  # renders (with meshes) and RHD photos
    assert batch["vertices"].shape == (16, 1050, 3)


def test_a_mixture_refuses_malformed_parts() -> None:
    with pytest.raises(ValueError, match=r"data.mix\[0\]: unknown data set 'nope'"):
        data_labels(config("data.name=mix", "data.mix=[{name: nope, root: x, weight: 1}]"))
    with pytest.raises(ValueError, match=r"needs parts in data.mix"):
        data_labels(config("data.name=mix"))


def test_evaluation_reads_the_benchmark_split_without_augmentation(roots: dict) -> None:
    make_rhd(roots["rhd"], "evaluation", 3)
    data = eval_dataset("rhd", roots["rhd"])
    assert len(data) == 3 and not data.train
    assert not data[0]["has_depth"]  # scores never read depth
    with pytest.raises(FileNotFoundError, match="STB"):
        eval_dataset("stb", roots["rhd"])  # the layout names what is missing


def test_a_misspelt_generator_setting_is_refused_even_for_a_real_set(roots: dict) -> None:
    from handshape.data.registry import prepare_data

    cfg = config("data.name=rhd", f"data.root={roots['rhd']}", "+data.settings.view_conee=30")
    with pytest.raises(ValueError, match="view_conee"):
        prepare_data(cfg)
    prepare_data(config("data.name=rhd", f"data.root={roots['rhd']}"))  # the defaults pass
