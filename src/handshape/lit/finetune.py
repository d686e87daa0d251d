"""Weakly supervised fine-tuning on a target domain (paper Sec. 4.4), one LightningModule.

Stages: "ft_hourglass" fine-tunes the hourglass with L_H on the target images' 2D joints;
"weak" fine-tunes everything with

    L_weakly = w_H L_H + w_D L_D + L_pM (+ w_J L_J on samples with has_joints_3d),
    L_pM = w_e L_e + w_l L_l against pseudo-ground-truth meshes (`handshape.data.pseudo_gt`),

every weight from `finetune.loss_weights` (the paper: 0.1, 0.1, 1, 50, 10), lr `finetune.lr`.

Depth convention (L_D): the predicted mesh (uvd) is lifted to camera metres with a root depth
and a hand scale: where the sample has 3D joint labels, the wrist's depth and the labelled hand
scale (the paper's test-time assumption); where it has none (the demo domain, a user's capture),
the root depth is the median valid reference depth within `finetune.depth.window` px of the
wrist's 2D joint plus `wrist_inset` (the wrist joint sits inside the hand, behind the skin the
sensor sees), and the scale is `finetune.depth.scale` (0: the template hand's). The mesh is
rendered (`handshape.render.depth_raster`) at `finetune.depth.size` px square in the crop's K
scaled to that size, and compared (`losses.rendered_depth_loss`) with the reference depth
resized the same way (nearest, pixel centres), over the hand pixels: the item's mask where the
set has one, else the valid readings within 15 cm of the root depth; both depths divided by the
hand scale (so `finetune.depth.beta` and `miss` are in hand scales), and summed over the hand
pixels like the other terms' per-sample sums (`finetune.depth.reduction: sum`; `mean` divides
by the hand's pixel count). L_pM and L_J compare
scale-normalised coordinates (xyz / scale; both terms ignore a shared translation).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

from handshape.data.batches import joint_heatmaps, resize_image
from handshape.data.demo import DemoDataModule
from handshape.data.pseudo_gt import PseudoGTDataset, build_pseudo_gt, cache_folder, file_hash
from handshape.data.real import RealDataset
from handshape.data.real_datamodule import RealDataModule, real_splits
from handshape.evaluation.metrics import mean_joint_error, mean_vertex_error, pck_report
from handshape.geometry.camera import from_uvd, hand_scale, scale_intrinsics
from handshape.geometry.mesh_ops import mesh_edges, uniform_laplacian
from handshape.handmodel.model import HandModel
from handshape.lit import losses
from handshape.lit.epoch_metrics import EpochMetrics
from handshape.lit.pretrain import make_optimizer
from handshape.nets.network import HandNet, NetOutput
from handshape.render.depth_raster import DepthRenderer
from handshape.safeio.atomic import record_once

logger = logging.getLogger(__name__)

STAGES = ("ft_hourglass", "weak")
HAND_EXTENT = 0.15  # m: without a mask, readings this close to the root depth are the hand's

__all__ = [
    "STAGES",
    "FinetuneModule",
    "evaluate_domain",
    "prepare_weak_batch",
    "pseudo_gt_predictor",
    "root_from_depth",
    "run_finetune",
]


# ---- batch preparation ---------------------------------------------------------------------


def root_from_depth(
    depth: torch.Tensor, mask: torch.Tensor, wrist: torch.Tensor, window: int, inset: float
) -> torch.Tensor:
    """(B,) root depth from the reference: the median of the valid hand readings (depth > 0 and
    mask) within `window` px of the wrist pixel, plus `inset`; where there is none, the median
    of all the hand's readings; where the hand has none either, 0.5 m (L_D is 0 there anyway).

    depth, mask: (B, H, W); wrist: (B, 2) px in the same image."""
    b, h, w = depth.shape
    ys = torch.arange(h, device=depth.device)[None, :, None]
    xs = torch.arange(w, device=depth.device)[None, None, :]
    near = ((xs - wrist[:, 0, None, None]).abs() <= window + 0.5) & (
        (ys - wrist[:, 1, None, None]).abs() <= window + 0.5
    )
    valid = (depth > 0) & mask
    out = torch.full((b,), 0.5, dtype=depth.dtype, device=depth.device)
    for i in range(b):
        for region in (valid[i] & near[i], valid[i]):
            if region.any():
                out[i] = depth[i][region].median() + inset
                break
    return out


def prepare_weak_batch(
    batch: dict[str, torch.Tensor],
    size: int,
    sigma: float,
    depth_cfg: Mapping[str, Any],
    default_scale: float,
) -> dict[str, torch.Tensor]:
    """Resize a target-domain batch to the network's input and derive what the losses need.

    Adds: image (B, 3, size, size); K of the resized crop; heatmaps from the 2D joints
    (visible ones); root_depth (B,) and scale (B,) (module docstring); root (B, 3) (zeros
    without 3D labels: only differences are compared); joints_n (B, 21, 3) = (joints - root) /
    scale; ref_depth / ref_mask / K_render at the depth loss's resolution.
    """
    out = dict(batch)
    src = batch["image"].shape[-1]
    out["image"] = resize_image(batch["image"], size)
    out["K"] = scale_intrinsics(batch["K"], src, size)
    out["heatmaps"] = joint_heatmaps(batch["joints_2d"], src, size, sigma, batch["visibility"])
    depth = batch["depth"].float()
    labelled = batch["has_joints_3d"].bool()
    joints = batch["joints_3d"].float()
    mask = batch["mask"].bool()
    has_mask = batch.get("has_mask", torch.ones_like(labelled)).bool()
    guess = root_from_depth(
        depth,
        mask | ~has_mask[:, None, None],
        batch["joints_2d"].float()[:, 0],
        int(depth_cfg["window"]),
        float(depth_cfg["wrist_inset"]),
    )
    safe = torch.where(labelled[:, None, None], joints, torch.ones_like(joints))
    scale = torch.where(labelled, hand_scale(safe), torch.full_like(guess, default_scale))
    root_depth = torch.where(labelled, joints[:, 0, 2], guess)
    root = torch.where(labelled[:, None], joints[:, 0], torch.zeros_like(joints[:, 0]))
    out["root_depth"], out["scale"], out["root"] = root_depth, scale, root
    out["joints_n"] = (joints - root[:, None]) / scale[:, None, None]
    r = int(depth_cfg["size"])
    hand = torch.where(
        has_mask[:, None, None], mask, (depth - root_depth[:, None, None]).abs() < HAND_EXTENT
    )
    ref = F.interpolate(depth[:, None], size=(r, r), mode="nearest-exact")[:, 0]
    ref_mask = F.interpolate(hand[:, None].float(), size=(r, r), mode="nearest-exact")[:, 0] > 0
    out["ref_depth"], out["ref_mask"] = ref, ref_mask & (ref > 0)
    out["K_render"] = scale_intrinsics(batch["K"], src, r)
    return out


# ---- pseudo ground truth -------------------------------------------------------------------


def pseudo_gt_predictor(net: HandNet, sigma: float) -> Callable[[dict[str, Any]], torch.Tensor]:
    """batch -> (B, N, 3) uvd mesh of `net` with the ground-truth heat-maps fed to its encoder
    in place of its own (with its own image features), as the paper makes pseudo-GT meshes."""
    if net.head is None:
        raise ValueError("pseudo-ground-truth meshes need a network with a mesh head")
    size = net.input_size

    def predict(batch: dict[str, Any]) -> torch.Tensor:
        net.eval()
        image = batch["image"].float()
        maps = joint_heatmaps(batch["joints_2d"], image.shape[-1], size, sigma)
        image = resize_image(image, size)
        _, features = net.hourglass(image)
        latent = net.encoder(torch.cat([maps, features], dim=1))
        assert net.head is not None
        return net.head(latent)

    return predict


# ---- the module ----------------------------------------------------------------------------


class FinetuneModule(pl.LightningModule):
    """The network plus the losses of one fine-tuning stage (module docstring).

    cfg: the resolved experiment config as a plain dict; stage: one of `STAGES`. Batches are
    target-domain items with `pseudo_vertices` added (the weak stage needs them).
    """

    def __init__(self, cfg: dict[str, Any], stage: str) -> None:
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"unknown fine-tuning stage '{stage}' (expected one of {STAGES})")
        self.save_hyperparameters({"cfg": cfg, "stage": stage})
        self.cfg, self.stage = cfg, stage
        self.ft = cfg["finetune"]
        self.net = HandNet.from_config(cfg)
        if self.net.head is None:
            raise ValueError("weak supervision needs a network with a mesh head")
        self.net.requires_grad_(stage == "weak")
        self.net.hourglass.requires_grad_(True)
        if self.net.latent_pose is not None:
            self.net.latent_pose.requires_grad_(False)
        model = HandModel.load(cfg["handmodel"]["mano"])
        faces = torch.as_tensor(model.data.faces, dtype=torch.long)
        self.register_buffer("edges", mesh_edges(faces), persistent=False)
        self.laplacian = uniform_laplacian(faces, model.num_vertices)
        size = int(self.ft["depth"]["size"])
        self.renderer = DepthRenderer(faces, size, size)  # culls back faces: the hand is closed
        scale = float(self.ft["depth"]["scale"])
        self.default_scale = scale if scale > 0 else model.rest_scale
        self.weights = self.ft["loss_weights"]
        self._epoch = EpochMetrics()

    monitor = "val/total"

    def on_train_start(self) -> None:
        self.train()

    def train(self, mode: bool = True) -> FinetuneModule:
        super().train(mode)
        if mode and self.stage == "ft_hourglass":
            self.net.eval()  # the frozen parts keep their batch-norm statistics
            self.net.hourglass.train()
        return self

    def prepare(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return prepare_weak_batch(
            batch,
            self.net.input_size,
            float(self.cfg["model"]["heatmap_sigma"]),
            self.ft["depth"],
            self.default_scale,
        )

    def lift(self, uvd: torch.Tensor, gt: dict[str, torch.Tensor]) -> torch.Tensor:
        return from_uvd(uvd, gt["K"], gt["root_depth"], gt["scale"], self.net.input_size)

    def compute_losses(
        self, gt: dict[str, torch.Tensor], out: NetOutput | None = None
    ) -> dict[str, torch.Tensor]:
        """The stage's loss terms on a prepared batch; `out`: the network's output on it, when
        already computed."""
        if self.stage == "ft_hourglass":
            maps = out.heatmaps if out is not None else self.net.hourglass(gt["image"])[0]
            heat = losses.heatmap_loss(maps, gt["heatmaps"])
            return {"heatmap": heat, "total": heat}
        w = self.weights
        out = out if out is not None else self.net(gt["image"])
        assert out.vertices is not None and out.mesh_joints is not None
        terms: dict[str, torch.Tensor] = {}
        terms["heatmap"] = losses.heatmap_loss(out.heatmaps, gt["heatmaps"])
        vertices = self.lift(out.vertices, gt)
        render = self.renderer(vertices, gt["K_render"])
        scale = gt["scale"][:, None, None]
        # Depths in hand scales, like the other terms' coordinates: the same L_D for a small
        # hand near the camera and a large one far away.
        per_pixel = losses.rendered_depth_loss(
            render.depth / scale,
            render.coverage,
            gt["ref_depth"] / scale,
            gt["ref_mask"],
            beta=float(self.ft["depth"]["beta"]),
            miss=float(self.ft["depth"]["miss"]),
        )
        if str(self.ft["depth"]["reduction"]) == "sum":
            # The per-sample sum of the other terms: a mean over ~100 hand pixels would leave
            # 0.1 L_D a thousandth of L_weakly (measured, docs/benchmarks.md).
            per_pixel = per_pixel * gt["ref_mask"].flatten(1).sum(1)
        terms["depth"] = per_pixel.mean()
        pred_n = vertices / scale
        pseudo_n = self.lift(gt["pseudo_vertices"].float(), gt) / scale
        terms["edge"] = losses.edge_loss(pred_n, pseudo_n, self.edges)
        terms["laplacian"] = losses.laplacian_loss(pred_n, pseudo_n, self.laplacian)
        joints_n = (self.lift(out.mesh_joints, gt) - gt["root"][:, None]) / scale
        terms["pose"] = losses.labelled_pose_loss(joints_n, gt["joints_n"], gt["has_joints_3d"])
        terms["total"] = sum(float(w[k]) * v for k, v in terms.items())
        return terms

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        gt = self.prepare(batch)
        terms = self.compute_losses(gt)
        self.log_dict(
            {f"train/{k}": v.detach() for k, v in terms.items()}, batch_size=len(gt["image"])
        )
        self.log("loss", terms["total"].detach(), prog_bar=True, logger=False)
        return terms["total"]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        gt = self.prepare(batch)
        size = len(gt["image"])
        out = self.net(gt["image"])  # once, for the losses and the errors
        if self.stage == "weak" and "pseudo_vertices" not in gt:
            # Validation items have no pseudo-GT: the mesh terms compare with the output itself.
            gt["pseudo_vertices"] = out.vertices.detach()  # type: ignore[union-attr]
        terms = self.compute_losses(gt, out)
        for key, value in terms.items():
            self._epoch.add(key, value, size)
        errors = camera_errors(self.net, batch, out)
        for key in ("mesh_error", "pose_error"):
            if key in errors:
                self._epoch.add(key, errors[key].mean(), len(errors[key]))
        if "joint_errors" in errors:
            self._epoch.add_errors(errors["joint_errors"])

    def on_validation_epoch_end(self) -> None:
        self._epoch.log(self, prog_bar=("pose_error", "mesh_error"))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return make_optimizer(self.net, str(self.ft["optimizer"]), float(self.ft["lr"]), "finetune")


# ---- evaluation ----------------------------------------------------------------------------


def camera_errors(
    net: HandNet, batch: dict[str, torch.Tensor], out: NetOutput | None = None
) -> dict[str, torch.Tensor]:
    """Mesh and pose errors (mm) of `net` on a raw batch, lifted with the true root depth and
    scale (the paper's test-time assumption): mesh_error (B,) where `eval_vertices` exist,
    pose_error (B,) and joint_errors (B, 21) where 3D joints exist (`eval_joints_3d`, else
    labelled `joints_3d`; unlabelled samples are left out). `out`: `net`'s output on the batch
    resized to its input, when already computed."""
    joints = batch.get("eval_joints_3d")
    keep = torch.ones(len(batch["image"]), dtype=torch.bool)
    if joints is None:
        keep = batch["has_joints_3d"].bool()
        joints = batch["joints_3d"]
    if not keep.any():
        return {}
    joints = joints[keep].float()
    size = net.input_size
    K = scale_intrinsics(batch["K"][keep], batch["image"].shape[-1], size)
    with torch.no_grad():
        if out is None:
            out = net(resize_image(batch["image"], size))
        kept = out._replace(
            vertices=None if out.vertices is None else out.vertices[keep], joints=out.joints[keep]
        )
        lifted = net.lift(kept, K, joints[:, 0, 2], hand_scale(joints))
    result = {
        "pose_error": mean_joint_error(lifted.joints, joints),
        "joint_errors": torch.linalg.vector_norm(lifted.joints - joints, dim=-1) * 1000,
    }
    if "eval_vertices" in batch and lifted.vertices is not None:
        truth = batch["eval_vertices"][keep].float()
        result["mesh_error"] = mean_vertex_error(lifted.vertices, truth)
    return result


def evaluate_domain(net: HandNet, dataset: Dataset, batch_size: int = 16) -> dict[str, Any]:
    """Mean mesh and pose error (mm) and the PCK report of `net` over `dataset`, plus the
    per-joint errors (mm) for PCK curves."""
    net.eval()
    parts: dict[str, list[np.ndarray]] = {"mesh_error": [], "pose_error": [], "joint_errors": []}
    for batch in DataLoader(dataset, batch_size=batch_size):
        for key, value in camera_errors(net, batch).items():
            parts[key].append(value.cpu().numpy())
    result: dict[str, Any] = {}
    for key in ("mesh_error", "pose_error"):
        if parts[key]:
            result[key] = float(np.concatenate(parts[key]).mean())
    if parts["joint_errors"]:
        errors = np.concatenate(parts["joint_errors"])
        result["joint_errors"] = errors
        result.update(pck_report(errors))
    return result


# ---- data ----------------------------------------------------------------------------------


def target_datasets(cfg: Mapping[str, Any], size: int) -> dict[str, Dataset]:
    """The fine-tuning sets of `data.name`: train (augmented where the set augments), plain
    (the same samples unaugmented, for the pseudo-GT) and val (held out of the training split,
    as in pretraining: `handshape.data.real_datamodule.real_splits`)."""
    name, root = str(cfg["data"]["name"]), Path(cfg["data"]["root"])
    if name == "demo":
        sets = DemoDataModule.from_config(cfg).datasets()
        return {"train": sets["train"], "plain": sets["train"], "val": sets["val"]}
    if name in ("rhd", "stb"):
        # The splits pretraining uses, with depth: validation is held out of the training
        # split, never the benchmark's test split.
        num_vertices = HandModel.load(cfg["handmodel"]["mano"]).num_vertices
        train, val = real_splits(name, root, cfg, num_vertices, depth=True)
        assert isinstance(train, RealDataset)
        plain = RealDataset(train.reader, size=size, num_vertices=num_vertices)
        return {"train": train, "plain": plain, "val": val}
    raise ValueError(f"data.name={name}: weak supervision reads demo, rhd or stb")


# ---- the schedule --------------------------------------------------------------------------


def finetune_config(
    config: DictConfig | Mapping[str, Any], bundle_cfg: Mapping[str, Any]
) -> dict[str, Any]:
    """The plain config a fine-tuning run trains under: the experiment's, with the network
    (model, handmodel) of the bundle it starts from (its config `bundle_cfg`), and train.* set
    from finetune.* (stages, batch size, optimiser) so that the shared stage runner reads them."""
    plain = config
    if isinstance(config, DictConfig):
        plain = OmegaConf.to_container(config, resolve=True)  # type: ignore[assignment]
    cfg = copy.deepcopy(dict(plain))  # type: ignore[arg-type]
    cfg["model"], cfg["handmodel"] = bundle_cfg["model"], bundle_cfg["handmodel"]
    ft = cfg["finetune"]
    cfg["train"]["stages"] = copy.deepcopy(ft["stages"])
    cfg["train"]["batch_size"] = ft["batch_size"]
    cfg["train"]["lr"], cfg["train"]["optimizer"] = ft["lr"], ft["optimizer"]
    cfg["output"] = ft["output"]
    return cfg


def check_source(out: Path, source: dict[str, str]) -> None:
    """Record what a fine-tuning output folder starts from (out/source.json); raise ValueError
    when it holds a run from another bundle or data set (its stages would be stale)."""
    path = out / "source.json"
    before = record_once(path, source)
    if before is not None:
        raise ValueError(
            f"{path}: {out} holds a fine-tuning of {before}, not {source}; choose another "
            "finetune.output or delete it"
        )


def run_finetune(
    config: DictConfig | Mapping[str, Any],
    net: HandNet,
    net_cfg: Mapping[str, Any],
    progress: bool = True,
) -> Path:
    """Pseudo-GT, then the two stages (each resumable), then a bundle; returns its folder
    (finetune.output/bundle). Runs again continue where they stopped.

    net, net_cfg: the pretrained network of `finetune.bundle` and its config, as
    `handshape.nets.bundle.load_network` reads them (the caller loads it: evaluation sits above
    this layer)."""
    from handshape.lit.reuse import done_steps
    from handshape.lit.train import (
        checkpoint_weights,
        export_bundle,
        share_cpu_with_workers,
        train_stage,
    )

    cfg = finetune_config(config, net_cfg)
    ft = cfg["finetune"]
    out = Path(ft["output"])
    out.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(int(cfg["train"]["seed"]), workers=True)
    share_cpu_with_workers(cfg)
    bundle = Path(ft["bundle"])
    source = {"bundle_hash": file_hash(bundle), "data": str(cfg["data"]["name"])}
    check_source(out, source)
    sets = target_datasets(cfg, net.input_size)
    folder = cache_folder(
        Path(ft["pseudo_gt"]["cache"]), source["data"], "train", source["bundle_hash"]
    )
    root = cfg["finetune"]["demo"]["root"] if source["data"] == "demo" else cfg["data"]["root"]
    key = {"dataset": source["data"], "root": str(root), "checkpoint": source["bundle_hash"]}
    build_pseudo_gt(
        pseudo_gt_predictor(net, float(cfg["model"]["heatmap_sigma"])),
        sets["plain"],
        folder,
        chunk=int(ft["pseudo_gt"]["chunk"]),
        key=key,
    )
    data = RealDataModule(
        [(source["data"], PseudoGTDataset(sets["train"], folder), sets["val"], 1.0)],
        int(ft["batch_size"]),
        int(cfg["train"]["num_workers"]),
    )
    init = {f"net.{k}": v for k, v in net.state_dict().items()}
    for stage in STAGES:
        steps = int(ft["stages"][stage]["steps"])
        last = out / stage / "checkpoints" / "last.ckpt"
        if done_steps(out / stage, steps):
            logger.info("fine-tuning stage '%s' already done (%s)", stage, last)
        else:
            logger.info("fine-tuning stage '%s': %d steps", stage, steps)
            train_stage(cfg, stage, out, data, init, progress, module_cls=FinetuneModule)
        init = checkpoint_weights(last)
    return export_bundle(cfg, last, out / "bundle")
