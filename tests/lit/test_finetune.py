"""Specification of weak supervision: batch preparation (root depth, scale, the 32-px depth
reference), pseudo-GT meshes from ground-truth heat-maps, the weak loss's terms and weights, and
the two-stage fine-tune on tiny RHD and STB fixtures and on a tiny demo domain."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from handshape.config import PACKAGE_CONFIGS, load_experiment
from handshape.geometry.camera import hand_scale
from handshape.lit import finetune as finetune_mod
from handshape.lit.finetune import (
    FinetuneModule,
    prepare_weak_batch,
    pseudo_gt_predictor,
    root_from_depth,
    run_finetune,
)
from handshape.lit.train import write_bundle
from handshape.nets.network import HandNet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from real_formats import make_rhd, make_stb

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning"
    ),
    pytest.mark.usefixtures("single_thread"),
]
DEPTH = {
    "size": 4,
    "window": 1,
    "wrist_inset": 0.01,
    "beta": 0.3,
    "miss": 1.0,
    "scale": 0.0,
    "reduction": "sum",
}


# ---- batch preparation ---------------------------------------------------------------------


def test_root_from_depth_is_the_median_hand_reading_near_the_wrist_plus_the_inset() -> None:
    depth = torch.zeros(3, 8, 8)
    depth[0, 2:5, 2:5] = torch.arange(9.0).reshape(3, 3) / 10 + 0.5  # median 0.9 around (3, 3)
    depth[0, 7, 7] = 5.0  # far from the wrist: ignored
    depth[1, 6:8, 6:8] = 0.7  # nothing near the wrist: the hand's median
    mask = torch.ones(3, 8, 8, dtype=torch.bool)
    mask[0, 4, 4] = False  # not the hand: 0.5 + 0.8 = 1.3 left out, median of 8 readings
    wrist = torch.tensor([[3.0, 3.0], [0.0, 0.0], [3.0, 3.0]])
    root = root_from_depth(depth, mask, wrist, window=1, inset=0.01)
    inner = torch.tensor([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]).median()
    torch.testing.assert_close(
        root, torch.stack([inner + 0.01, torch.tensor(0.71), torch.tensor(0.5)])
    )


def weak_batch(labelled: bool) -> dict[str, torch.Tensor]:
    joints = torch.zeros(1, 21, 3)
    joints[..., 2] = 0.6
    joints[0, :, 0] = torch.linspace(0, 0.1, 21)
    depth = torch.zeros(1, 8, 8)
    depth[0, 2:6, 2:6] = 0.55
    mask = depth > 0
    return {
        "image": torch.rand(1, 3, 8, 8),
        "K": torch.tensor([[[10.0, 0, 3.5], [0, 10.0, 3.5], [0, 0, 1]]]),
        "joints_2d": torch.full((1, 21, 2), 3.0),
        "visibility": torch.ones(1, 21, dtype=torch.bool),
        "joints_3d": joints if labelled else torch.zeros_like(joints),
        "has_joints_3d": torch.tensor([labelled]),
        "depth": depth,
        "mask": mask,
        "has_mask": torch.tensor([True]),
    }


def test_labelled_samples_use_their_root_and_scale_others_the_depth_and_default() -> None:
    labelled = prepare_weak_batch(weak_batch(True), 8, 1.0, DEPTH, default_scale=0.03)
    assert labelled["root_depth"].item() == pytest.approx(0.6)
    joints = weak_batch(True)["joints_3d"]
    assert labelled["scale"].item() == pytest.approx(hand_scale(joints).item())
    torch.testing.assert_close(labelled["joints_n"][0, 0], torch.zeros(3))
    plain = prepare_weak_batch(weak_batch(False), 8, 1.0, DEPTH, default_scale=0.03)
    assert plain["root_depth"].item() == pytest.approx(0.56)
    assert plain["scale"].item() == pytest.approx(0.03)
    # The 8 px reference resized to 4 px by pixel centres: rows/columns 2..5 -> 1..2.
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[1:3, 1:3] = True
    assert torch.equal(plain["ref_mask"][0], expected)
    assert torch.all(plain["ref_depth"][0][expected] == 0.55)
    assert plain["heatmaps"].shape == (1, 21, 2, 2)


def test_without_a_mask_the_hand_is_the_readings_near_the_root() -> None:
    batch = weak_batch(True)
    batch["depth"][0, 0, :] = 1.2  # a wall behind the hand
    batch["has_mask"] = torch.tensor([False])
    batch["mask"] = torch.zeros_like(batch["mask"])
    out = prepare_weak_batch(batch, 8, 1.0, DEPTH, default_scale=0.03)
    assert out["ref_mask"][0, 1:3, 1:3].all() and not out["ref_mask"][0, 0].any()


# ---- a tiny network and its bundle ---------------------------------------------------------


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("weak")
    synth = base / "synthetic.yaml"
    settings = yaml.safe_load((PACKAGE_CONFIGS / "data" / "synthetic.yaml").read_text())
    synth.write_text(yaml.safe_dump({**settings, "size": 64, "shard_size": 8}))
    cfg = load_experiment("tiny", [f"data.config={synth}"])
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    torch.manual_seed(0)
    net = HandNet.from_config(plain).eval()
    with torch.no_grad():  # the mesh head starts at zero: a mesh worth rendering needs weights
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    bundle = write_bundle(net.state_dict(), cfg, base / "bundle")
    return {"base": base, "synth": synth, "net": net, "cfg": plain, "bundle": bundle}


def experiment(setup: dict[str, Any], name: str, root: Path, *extra: str) -> DictConfig:
    base = setup["base"] / name
    return load_experiment(
        "tiny",
        [
            f"data.config={setup['synth']}",
            f"data.name={name}",
            f"data.root={root}",
            f"finetune.bundle={setup['bundle']}",
            f"finetune.output={base / 'out'}",
            f"finetune.pseudo_gt.cache={base / 'pseudo_gt'}",
            f"finetune.demo.root={base / 'demo'}",
            "train.val_batches=1",
            *extra,
        ],
    )


def test_pseudo_gt_meshes_come_from_ground_truth_heatmaps(setup: dict[str, Any]) -> None:
    net: HandNet = setup["net"]
    batch = {"image": torch.rand(2, 3, 64, 64), "joints_2d": torch.rand(2, 21, 2) * 60}
    predict = pseudo_gt_predictor(net, sigma=1.0)
    with torch.no_grad():
        meshes = predict(batch)
        own = net(batch["image"]).vertices
        moved = predict({**batch, "joints_2d": batch["joints_2d"].flip(1)})
    assert meshes.shape == own.shape
    assert not torch.allclose(meshes, own)  # not the network's own heat-maps
    assert not torch.allclose(meshes, moved)  # the given 2D joints steer it


def test_weak_loss_terms_and_weights(setup: dict[str, Any]) -> None:
    """Against its own mesh as pseudo-GT, L_pM is 0; the total is the weighted sum."""
    cfg = {**setup["cfg"], "finetune": {**setup["cfg"]["finetune"]}}
    module = FinetuneModule(cfg, "weak").eval()
    module.net.load_state_dict(setup["net"].state_dict())
    batch = weak_batch(True)
    batch["image"] = torch.rand(1, 3, 64, 64)
    batch["K"] = torch.tensor([[[80.0, 0, 31.5], [0, 80.0, 31.5], [0, 0, 1]]])
    batch["depth"] = torch.nn.functional.interpolate(batch["depth"][:, None], size=(64, 64))[:, 0]
    batch["mask"] = batch["depth"] > 0
    with torch.no_grad():
        gt = module.prepare(batch)
        gt["pseudo_vertices"] = module.net(gt["image"]).vertices
        terms = module.compute_losses(gt)
    assert terms["edge"].item() == pytest.approx(0.0, abs=1e-8)
    assert terms["laplacian"].item() == pytest.approx(0.0, abs=1e-8)
    assert terms["pose"].item() > 0 and terms["depth"].item() > 0
    w = cfg["finetune"]["loss_weights"]
    expected = sum(w[k] * terms[k] for k in ("heatmap", "depth", "edge", "laplacian", "pose"))
    assert terms["total"].item() == pytest.approx(float(expected), rel=1e-6)
    module.ft = {**module.ft, "depth": {**module.ft["depth"], "reduction": "mean"}}
    with torch.no_grad():
        mean = module.compute_losses(gt)["depth"]
    pixels = gt["ref_mask"].sum().item()
    assert pixels > 1 and terms["depth"].item() == pytest.approx(mean.item() * pixels, rel=1e-5)
    assert set(FinetuneModule(cfg, "ft_hourglass").compute_losses(gt)) == {"heatmap", "total"}


def test_only_the_hourglass_learns_in_the_first_stage(setup: dict[str, Any]) -> None:
    module = FinetuneModule(setup["cfg"], "ft_hourglass")
    learning = {n.split(".")[1] for n, p in module.named_parameters() if p.requires_grad}
    assert learning == {"hourglass"}
    with pytest.raises(ValueError, match="unknown fine-tuning stage"):
        FinetuneModule(setup["cfg"], "full")


# ---- the two-stage fine-tune ---------------------------------------------------------------


class Recording(FinetuneModule):
    """FinetuneModule noting each training step's total loss, per stage."""

    losses: ClassVar[dict[str, list[float]]] = {}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        Recording.losses.setdefault(self.stage, []).append(float(loss))
        return loss


def finetune(setup: dict[str, Any], cfg: DictConfig) -> Path:
    Recording.losses = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(finetune_mod, "FinetuneModule", Recording)
        return run_finetune(cfg, setup["net"], setup["cfg"], progress=False)


def check_run(out: Path, bundle: Path) -> None:
    for stage, steps in (("ft_hourglass", 2), ("weak", 4)):
        assert (out / stage / "DONE").read_text().strip() == f"{steps} steps"
    assert bundle == out / "bundle" and (bundle / "model.safetensors").is_file()
    # Every step sees the whole tiny set (one batch): the loss must fall.
    losses = Recording.losses["weak"]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]


def test_two_stage_finetune_on_rhd(setup: dict[str, Any]) -> None:
    root = setup["base"] / "RHD_published_v2"
    make_rhd(root, "training", num=4)
    cfg = experiment(setup, "rhd", root, "finetune.batch_size=3")  # 3 train, 1 held out
    out = Path(cfg.finetune.output)
    check_run(out, finetune(setup, cfg))
    cache = list((setup["base"] / "rhd" / "pseudo_gt").iterdir())
    assert len(cache) == 1 and cache[0].name.startswith("rhd-train-")
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.ckpt")}
    finetune(setup, cfg)  # finished: nothing trains again
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.ckpt")} == before
    assert json.loads((out / "source.json").read_text())["data"] == "rhd"
    with pytest.raises(ValueError, match="holds a fine-tuning of"):
        finetune(setup, experiment(setup, "demo", root, f"finetune.output={out}"))


def test_two_stage_finetune_on_stb(setup: dict[str, Any]) -> None:
    root = setup["base"] / "STB"
    sequences = {f"B{b}{k}": 1 for b in range(1, 7) for k in ("Counting", "Random")}
    make_stb(root, sequences, wall=True)
    cfg = experiment(setup, "stb", root, "finetune.batch_size=9")  # B6Random validates
    check_run(Path(cfg.finetune.output), finetune(setup, cfg))


def test_two_stage_finetune_on_the_demo_domain(setup: dict[str, Any]) -> None:
    cfg = experiment(
        setup,
        "demo",
        setup["base"] / "unused",
        "finetune.demo.num_train=4",
        "finetune.batch_size=4",
    )
    check_run(Path(cfg.finetune.output), finetune(setup, cfg))
    rows = list(
        csv.DictReader(
            (Path(cfg.finetune.output) / "logs" / "weak" / "version_0" / "metrics.csv").open()
        )
    )
    assert any(r.get("val/mesh_error") for r in rows)  # its meshes are kept for evaluation


def test_demo_items_carry_only_what_an_rgbd_capture_gives(setup: dict[str, Any]) -> None:
    from handshape.data.demo import DemoDataModule, eval_split

    cfg = OmegaConf.to_container(
        experiment(setup, "demo", setup["base"] / "unused", "finetune.demo.num_train=4"),
        resolve=True,
    )
    sets = DemoDataModule.from_config(cfg).datasets()  # made here unless made already
    item = sets["train"][0]
    assert not item["has_joints_3d"] and torch.all(item["joints_3d"] == 0)
    assert "vertices" not in item and item["eval_vertices"].abs().sum() > 0
    rendered = sets["train"].base[0]
    # the hand's pixels with a reading: not the forearm, sleeve or object beside it
    assert torch.equal(item["mask"], (item["depth"] > 0) & rendered["mask"])
    assert item["mask"].any() and not (item["mask"] & (rendered["ids"] != 1)).any()
    clean = rendered["depth"]
    assert (clean > 0).sum() > (item["depth"] > 0).sum()  # holes at the edges
    assert not torch.equal(item["depth"][item["mask"]], clean[item["mask"]])  # noise
    again = sets["train"][0]
    assert torch.equal(again["depth"], item["depth"]) and torch.equal(again["image"], item["image"])
    plan_root = Path(cfg["finetune"]["demo"]["root"])
    assert eval_split(plan_root, "val")[0]["has_joints_3d"]
