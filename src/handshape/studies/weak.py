"""The weak-supervision study (paper Table 3 / Fig. 8 in shape) on the demo domain.

A study file in the usual schema (configs/study/weak.yaml) whose variants override only
`finetune.*`: every variant fine-tunes the same pretrained bundle (`finetune.bundle`) on the same
demo domain with the same seed and budget; a variant whose fine-tuning stages have 0 steps is
the pretrained network evaluated as is. The pseudo-ground truth is computed once and shared (its
cache is keyed by the bundle). Results per variant: OUT/<variant>/metrics.json (mesh and pose
error, PCK report, on the demo domain's validation split, lifted with the true root depth and
scale); OUT/table.md; OUT/pck.png; OUT/meshes.png (the first validation images with each
variant's mesh, and the true mesh last; meshes alone, see `mesh_row`). Resumable: a variant
with metrics is skipped, an interrupted fine-tune resumes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import default_collate

from handshape.config import load_experiment
from handshape.data.batches import resize_image
from handshape.data.demo import DemoDataModule
from handshape.evaluation.metrics import THRESHOLDS_ZIMMERMANN, pck_curve, plot_pck
from handshape.geometry.camera import hand_scale, scale_intrinsics
from handshape.handmodel.model import HandModel
from handshape.lit.finetune import evaluate_domain, run_finetune
from handshape.nets.bundle import load_network
from handshape.nets.network import HandNet
from handshape.render.overlays import overlay_row
from handshape.safeio.atomic import atomic_write, atomic_write_text
from handshape.studies.report import label_rows
from handshape.studies.spec import Study

__all__ = ["mesh_row", "run_weak_study", "weak_variant_config"]

logger = logging.getLogger(__name__)
PREVIEW_COUNT = 4


def weak_variant_config(
    study: Study, name: str, overrides: list[str], out: Path, configs: Path | None
) -> DictConfig:
    """A variant's config: the demo domain, its own fine-tuning folder, a shared pseudo-GT."""
    for override in study.variants[name]:
        if not override.lstrip("+").startswith("finetune."):
            raise ValueError(
                f"study {study.name}, variant '{name}': '{override}' is not a finetune.* "
                "setting (every variant fine-tunes the same network on the same data)"
            )
    cfg = load_experiment(study.experiment, [*overrides, *study.variants[name]], configs)
    OmegaConf.update(cfg, "data.name", "demo")
    OmegaConf.update(cfg, "finetune.output", str(out / name))
    OmegaConf.update(cfg, "finetune.pseudo_gt.cache", str(out / "pseudo_gt"))
    OmegaConf.update(cfg, "experiment", f"{study.name}-{name}")
    OmegaConf.update(cfg, "train.logging.group", study.name)
    return cfg


def _pretrained_only(cfg: DictConfig) -> bool:
    return all(int(s.steps) == 0 for s in cfg.finetune.stages.values())


def mesh_row(
    image: torch.Tensor, K: torch.Tensor, vertices: torch.Tensor | None, faces: np.ndarray
) -> np.ndarray:
    """(S, B S, 3) uint8: images (B, 3, S, S) in [0, 1] with the wireframes of camera-frame
    meshes (B, N, 3) under intrinsics K (B, 3, 3) of those images drawn on them, nothing else.

    The figure compares meshes. It used to draw each network's skeleton over its mesh, and
    the pretrained network's hands on the demo domain come out two to three times too small
    on most images (it never saw that domain): its opaque skeleton, drawn at the same small
    size, then covered about half of the faint translucent wireframe, the rest could not be
    told from the hand in the image, and the "Pretrained" row looked as if it had no mesh.
    """
    return overlay_row({"image": image, "K": K}, vertices, None, faces, len(image))


def _mesh_row(
    net: HandNet, batch: dict[str, Any], image: torch.Tensor, K: torch.Tensor, faces: np.ndarray
) -> np.ndarray:
    """`net`'s meshes on a preview batch already resized to its input (`image`, `K`)."""
    joints = batch["eval_joints_3d"].float()
    with torch.no_grad():
        lifted = net.eval().lift(net(image), K, joints[:, 0, 2], hand_scale(joints))
    return mesh_row(image, K, lifted.vertices, faces)


def run_weak_study(
    study: Study,
    out: Path,
    overrides: list[str] | None = None,
    configs: Path | None = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Fine-tune and evaluate every variant (skipping finished ones); write table and figures."""
    out = Path(out)
    common = list(overrides or [])
    configs_of = {
        name: weak_variant_config(study, name, common, out, configs) for name in study.variants
    }
    results: dict[str, dict[str, Any]] = {}
    first = next(iter(configs_of.values()))
    val = DemoDataModule.from_config(OmegaConf.to_container(first, resolve=True)).datasets()["val"]
    nets: dict[str, HandNet] = {}
    for name, cfg in configs_of.items():
        net, net_cfg = load_network(Path(cfg.finetune.bundle))
        if not _pretrained_only(cfg):
            net, _ = load_network(run_finetune(cfg, net, net_cfg, progress))
        nets[name] = net
        path = out / name / "metrics.json"
        if path.is_file():
            results[name] = json.loads(path.read_text())
            logger.info("%s: done earlier (%s)", name, path)
            continue
        scores = evaluate_domain(net, val)
        errors = scores.pop("joint_errors")
        scores["pck_curve"] = pck_curve(errors, THRESHOLDS_ZIMMERMANN).tolist()
        atomic_write_text(path, json.dumps(scores, indent=1))
        results[name] = scores
    write_weak_report(study, out, results, nets, val)
    return results


def write_weak_report(
    study: Study,
    out: Path,
    results: dict[str, dict[str, Any]],
    nets: dict[str, HandNet],
    val: Any,
) -> str:
    """OUT/table.md, OUT/pck.png and OUT/meshes.png; returns the table."""
    lines = [
        f"### {study.title}",
        "",
        "| Variant | Mesh error (mm) | Pose error (mm) | 3D PCK AUC 20-50 |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['mesh_error']:.2f} | {r['pose_error']:.2f} | {r['auc_20_50']:.3f} |"
        )
    table = "\n".join(lines) + "\n"
    atomic_write_text(out / "table.md", table)
    thresholds = np.asarray(THRESHOLDS_ZIMMERMANN)
    curves = {n: (thresholds, np.asarray(r["pck_curve"])) for n, r in results.items()}
    plot_pck(curves, out / "pck.png", title=study.title)
    batch = default_collate([val[i] for i in range(min(PREVIEW_COUNT, len(val)))])
    faces = HandModel.default().data.faces
    size = next(iter(nets.values())).input_size  # every variant fine-tunes one network
    image = resize_image(batch["image"], size)
    K = scale_intrinsics(batch["K"], batch["image"].shape[-1], size)
    rows = [_mesh_row(net, batch, image, K, faces) for net in nets.values()]
    rows.append(mesh_row(image, K, batch["eval_vertices"], faces))
    grid = label_rows(np.concatenate(rows, axis=0), [*nets, "ground truth"], rows[0].shape[0])
    atomic_write(out / "meshes.png", lambda tmp: grid.save(tmp, format="PNG"))
    return table
