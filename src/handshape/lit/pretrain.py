"""Fully supervised pretraining on synthetic data (paper Sec. 4.3), one LightningModule.

Stages (the paper's schedule): "hourglass" trains the stacked hourglass with L_H; "pose_regressor"
trains the linear graph regressor with L_J on ground-truth meshes; "full" trains everything end to
end with L_fully = w_H L_H + L_M + w_J L_J, L_M = w_v L_v + w_n L_n + w_e L_e + w_l L_l. A network
decides which stages it has (`stages_for`): a pose-only one (``model.head.name: none``) has no
pose-regressor stage and no mesh terms, its L_J on the joints from the latent vector; a
task-transfer one (a mesh head and ``model.pose_from: latent``) trains "full" like the paper's
network, then "transfer" trains only the latent pose regressor with L_J, the rest frozen.

Each term uses the samples of a batch that have its label (the has_* flags of the items, see
`handshape.data.real`): L_H those with 2D joints, L_J those with 3D joints, the mesh terms those
with a mesh; a batch with none of a term's labels adds nothing for it. Which labels a data set
has at all decides the stages it can train (`STAGE_LABELS`, checked before training).

Mesh and pose terms are computed on root-relative, scale-normalised camera coordinates
((xyz - root) / scale, the predicted uvd lifted with the ground-truth root depth, scale and
intrinsics); the 2D vertex term on the normalised uv.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.loggers import WandbLogger

from handshape.data.batches import network_input, prepare_batch
from handshape.data.registry import data_labels
from handshape.evaluation.metrics import mean_joint_error, mean_vertex_error
from handshape.geometry.camera import from_uvd
from handshape.geometry.mesh_ops import mesh_edges, uniform_laplacian
from handshape.handmodel.model import HandModel
from handshape.lit import losses
from handshape.lit.epoch_metrics import EpochMetrics
from handshape.nets.network import NO_HEAD, HandNet, NetOutput
from handshape.render.overlays import preview_grid
from handshape.safeio.atomic import atomic_write

STAGES = ("hourglass", "pose_regressor", "full", "transfer")
# The part of the network each partial stage trains; "full" trains all of it.
TRAINED_BY = {
    "hourglass": "hourglass",
    "pose_regressor": "pose_regressor",
    "transfer": "latent_pose",
}
# The labels each stage's loss needs: all of them (pose regressor: it learns the map from
# true meshes to true joints) or, for "full", any of them (a term without labels is skipped).
STAGE_LABELS = {
    "hourglass": ("joints_2d",),
    "pose_regressor": ("mesh", "joints_3d"),
    "full": ("joints_2d", "joints_3d", "mesh"),
    "transfer": ("joints_3d",),
}
PREVIEW_IMAGES = 4  # validation images drawn with their predicted mesh at every validation


def stages_for(model_cfg: dict[str, Any]) -> tuple[str, ...]:
    """The stages a network of this model config trains, in order (see the module docstring);
    a keypoint network (``model.input: keypoints``) has no hourglass to train."""
    has_mesh = str(model_cfg["head"]["name"]) != NO_HEAD
    from_latent = str(model_cfg.get("pose_from", "mesh")) == "latent"
    from_image = str(model_cfg.get("input", "image")) == "image"
    return tuple(
        s
        for s in STAGES
        if (s != "hourglass" or from_image)
        and (s != "pose_regressor" or has_mesh)
        and (s != "transfer" or (has_mesh and from_latent))
    )


OPTIMIZERS = {"rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}


def make_optimizer(
    net: torch.nn.Module, name: str, lr: float, section: str
) -> torch.optim.Optimizer:
    """The optimiser `name` over the parameters that train in this stage (requires_grad);
    `section` names the config section in the error for another name."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown {section}.optimizer '{name}' ({' or '.join(OPTIMIZERS)})")
    return OPTIMIZERS[name]([p for p in net.parameters() if p.requires_grad], lr=lr)


def labelled(gt: dict[str, torch.Tensor], label: str) -> torch.Tensor:
    """(B,) bool: the samples of a batch that carry `label` (all of them when the batch has no
    flag for it)."""
    flag = gt.get(f"has_{label}")
    ref = gt["joints_3d"]
    if flag is None:
        return torch.ones(len(ref), dtype=torch.bool, device=ref.device)
    return flag.to(device=ref.device, dtype=torch.bool)


def pick(tensor: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The samples `keep` (B,) bool of a batch tensor (the tensor itself when all are kept)."""
    return tensor if bool(keep.all()) else tensor[keep]


def check_labels(stage: str, labels: frozenset[str], data: str) -> None:
    """Raise ValueError when data set `data`, whose items label `labels`, has nothing (or, for
    a partial stage, not everything) the loss of `stage` needs."""
    needed = STAGE_LABELS[stage]
    missing = [label for label in needed if label not in labels]
    if (stage != "full" and missing) or len(missing) == len(needed):
        what = " and ".join(needed) if stage != "full" else "any of " + ", ".join(needed)
        raise ValueError(
            f"stage '{stage}' needs {what} labels, which the data ({data}) lack "
            f"({', '.join(missing)}); skip the stage with "
            f"train.stages.{stage}.steps=0 and start from trained weights (train.init=BUNDLE)"
        )


def check_topology(cfg: dict[str, Any], data_vertices: int, model_vertices: int) -> None:
    """Raise ValueError when the data's meshes and the network's hand model differ in vertex
    count: the mesh losses compare vertex to vertex."""
    if data_vertices != model_vertices:
        model = cfg["handmodel"]["mano"] or "handshape's own hand"
        raise ValueError(
            f"the data's meshes have {data_vertices} vertices, the network's hand model "
            f"({model}) {model_vertices}: mesh losses need meshes of one topology, so train on "
            "data made with that model (handshape's synthetic data use its own hand; evaluation "
            "does align other topologies)"
        )


class PretrainModule(pl.LightningModule):
    """The network plus the losses and metrics of one pretraining stage.

    cfg: the resolved experiment config as a plain dict (OmegaConf.to_container), so that it is
    saved with the checkpoints in a form `torch.load(weights_only=True)` accepts.
    """

    def __init__(self, cfg: dict[str, Any], stage: str) -> None:
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"unknown stage '{stage}' (expected one of {STAGES})")
        self.save_hyperparameters({"cfg": cfg, "stage": stage})
        self.cfg, self.stage = cfg, stage
        self.net = HandNet.from_config(cfg)
        self.labels = data_labels(cfg)  # what the training data label (picks the monitor)
        model = HandModel.load(cfg["handmodel"]["mano"])
        faces = model.data.faces
        if stage not in stages_for(cfg["model"]):
            raise ValueError(
                f"stage '{stage}' does not belong to this network (its stages: "
                f"{', '.join(stages_for(cfg['model']))})"
            )
        # Only this stage's part learns; DDP refuses parameters that get no gradient. The
        # latent pose regressor of a task-transfer network waits for its own stage.
        self.net.requires_grad_(stage == "full")
        if stage in TRAINED_BY:
            getattr(self.net, TRAINED_BY[stage]).requires_grad_(True)
        elif self.net.has_mesh and self.net.latent_pose is not None:
            self.net.latent_pose.requires_grad_(False)
        self.register_buffer("faces", torch.as_tensor(faces, dtype=torch.long), persistent=False)
        self.register_buffer("edges", mesh_edges(faces), persistent=False)
        self.laplacian = uniform_laplacian(faces, model.num_vertices)
        self.weights = cfg["train"]["loss_weights"]
        self._epoch = EpochMetrics()

    @property
    def monitor(self) -> str:
        """The validation metric whose best value picks best.ckpt."""
        if self.stage == "hourglass":
            return "val/heatmap"
        mesh = self.stage == "full" and self.net.has_mesh and "mesh" in self.labels
        return "val/mesh_error" if mesh else "val/pose_error"

    def on_train_start(self) -> None:
        # Lightning (2.6) keeps the modes modules have at the start of fit; set them here.
        self.train()

    def train(self, mode: bool = True) -> PretrainModule:
        super().train(mode)
        if mode and self.stage == "transfer":
            # The frozen network keeps its batch-norm statistics: only the new regressor learns.
            self.net.eval()
            assert self.net.latent_pose is not None
            self.net.latent_pose.train()
        return self

    # -- forward pieces --------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> NetOutput:
        return self.net(x)

    def lift(self, uvd: torch.Tensor, gt: dict[str, torch.Tensor]) -> torch.Tensor:
        """Predicted uvd (B, N, 3) -> camera metres with the batch's root depth and scale."""
        return from_uvd(uvd, gt["K"], gt["root"][:, 2], gt["scale"], self.net.input_size)

    def _normalised(self, xyz: torch.Tensor, gt: dict[str, torch.Tensor]) -> torch.Tensor:
        return (xyz - gt["root"][:, None]) / gt["scale"][:, None, None]

    def _stage_joints(self, out: NetOutput) -> torch.Tensor:
        """The joints this stage trains and validates: the end-to-end stage of a task-transfer
        network trains the mesh's joints (its latent regressor is not trained yet)."""
        if self.stage == "full" and out.mesh_joints is not None:
            return out.mesh_joints
        return out.joints

    # -- losses ----------------------------------------------------------------------------------

    def compute_losses(
        self, gt: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], NetOutput | None]:
        """The stage's loss terms on the samples that label each (module docstring)."""
        w = self.weights
        if self.stage in ("pose_regressor", "full") and self.net.has_mesh:
            check_topology(self.cfg, gt["vertices"].shape[1], int(self.laplacian.shape[0]))
        terms: dict[str, torch.Tensor] = {}
        out: NetOutput | None = None
        if self.stage == "hourglass":
            maps, _ = self.net.hourglass(gt["image"])
            keep = labelled(gt, "joints_2d")
            if keep.any():
                terms["heatmap"] = losses.heatmap_loss(
                    [pick(m, keep) for m in maps], pick(gt["heatmaps"], keep)
                )
            anchor = maps[-1]
        elif self.stage == "pose_regressor":
            keep = labelled(gt, "mesh") & labelled(gt, "joints_3d")
            joints_uvd = self.net.pose_regressor(gt["vertices_uvd"])
            if keep.any():
                pred = self._normalised(self.lift(joints_uvd, gt), gt)
                terms["pose"] = losses.pose_loss(pick(pred, keep), pick(gt["joints_n"], keep))
            anchor = joints_uvd
        else:
            out = self.net(network_input(gt))
            anchor = out.joints
            joints = self._normalised(self.lift(self._stage_joints(out), gt), gt)
            has_3d = labelled(gt, "joints_3d")
            if self.stage == "full":
                has_2d, has_mesh = labelled(gt, "joints_2d"), labelled(gt, "mesh")
                if has_2d.any() and out.heatmaps:
                    terms["heatmap"] = losses.heatmap_loss(
                        [pick(m, has_2d) for m in out.heatmaps], pick(gt["heatmaps"], has_2d)
                    )
                if out.vertices is not None and has_mesh.any():
                    terms.update(self._mesh_terms(out.vertices, gt, has_mesh))
            if has_3d.any():
                terms["pose"] = losses.pose_loss(pick(joints, has_3d), pick(gt["joints_n"], has_3d))
        # A batch without any of the stage's labels still returns a loss on the graph (zero).
        total = sum((w[k] * v for k, v in terms.items()), anchor.sum() * 0.0)
        if self.stage != "full":  # a partial stage's single term is its loss, unweighted
            total = next(iter(terms.values()), anchor.sum() * 0.0)
        terms["total"] = total
        return terms, out

    def _mesh_terms(
        self, vertices_uvd: torch.Tensor, gt: dict[str, torch.Tensor], keep: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """L_v, L_n, L_e, L_l of the samples `keep` (B,) bool."""
        verts = pick(self._normalised(self.lift(vertices_uvd, gt), gt), keep)
        target = pick(gt["vertices_n"], keep)
        uv, true_uv = pick(vertices_uvd, keep)[..., :2], pick(gt["vertices_uvd"], keep)[..., :2]
        return {
            "vertex": losses.vertex_loss(verts, target, uv, true_uv),
            "normal": losses.normal_loss(verts, target, self.faces),
            "edge": losses.edge_loss(verts, target, self.edges),
            "laplacian": losses.laplacian_loss(verts, target, self.laplacian),
        }

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        gt = prepare_batch(batch, self.net.input_size, self.cfg["model"]["heatmap_sigma"])
        terms, _ = self.compute_losses(gt)
        self.log_dict(
            {f"train/{k}": v.detach() for k, v in terms.items()},
            prog_bar=False,
            batch_size=len(gt["joints_3d"]),
        )
        self.log("loss", terms["total"].detach(), prog_bar=True, logger=False)
        return terms["total"]

    # -- validation ------------------------------------------------------------------------------

    def predict_camera(self, gt: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Vertices and joints in camera metres (GT root depth and scale, as the paper)."""
        if self.stage == "pose_regressor":
            joints = self.lift(self.net.pose_regressor(gt["vertices_uvd"]), gt)
            return {"joints": joints}
        out = self.net(network_input(gt))
        lifted = self.net.lift(
            out._replace(joints=self._stage_joints(out)), gt["K"], gt["root"][:, 2], gt["scale"]
        )
        return {k: v for k, v in lifted._asdict().items() if v is not None}

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        gt = prepare_batch(batch, self.net.input_size, self.cfg["model"]["heatmap_sigma"])
        terms, _ = self.compute_losses(gt)
        size = len(gt["joints_3d"])
        for key, value in terms.items():
            self._epoch.add(key, value, size)
        if self.stage == "hourglass":
            return
        pred = self.predict_camera(gt)
        has_3d, has_mesh = labelled(gt, "joints_3d"), labelled(gt, "mesh")
        if has_3d.any():
            joints, true_joints = pick(pred["joints"], has_3d), pick(gt["joints_3d"], has_3d)
            self._epoch.add(
                "pose_error", mean_joint_error(joints, true_joints).mean(), int(has_3d.sum())
            )
            self._epoch.add_errors(torch.linalg.vector_norm(joints - true_joints, dim=-1) * 1000)
        if "vertices" in pred and has_mesh.any():
            self._epoch.add(
                "mesh_error",
                mean_vertex_error(
                    pick(pred["vertices"], has_mesh), pick(gt["vertices"], has_mesh)
                ).mean(),
                int(has_mesh.sum()),
            )
        if batch_idx == 0 and self.trainer.is_global_zero:
            self._log_preview(gt, pred)

    def _log_preview(self, gt: dict[str, torch.Tensor], pred: dict[str, torch.Tensor]) -> None:
        """The first validation images with the predicted (top) and true (bottom) mesh and
        joints: a PNG per validation under <stage>/previews/, and an image in W&B."""
        if not all(torch.isfinite(v).all() for v in pred.values()):
            return  # a diverged run logs NaN metrics; drawing NaN points would crash it
        grid = preview_grid(gt, pred, self.faces.cpu().numpy(), PREVIEW_IMAGES, self.net.input_size)
        step = int(self.global_step)
        folder = Path(self.trainer.default_root_dir) / "previews"
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(grid)
        atomic_write(folder / f"step_{step:07d}.png", lambda tmp: image.save(tmp, format="PNG"))
        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("val/preview", [grid], step=step, caption=["top: predicted"])

    def on_validation_epoch_end(self) -> None:
        self._epoch.log(self, prog_bar=("pose_error", "mesh_error"))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        train = self.cfg["train"]
        return make_optimizer(self.net, str(train["optimizer"]), float(train["lr"]), "train")
