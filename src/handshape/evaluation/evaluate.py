"""Evaluation of a trained network: mesh and pose error (mm), 3D PCK and AUC, as JSON and a plot.

Protocol (paper Sec. 5): predictions are lifted to camera space with the ground-truth root depth
and hand scale (|J9 - J10|); mesh error is the mean vertex distance, pose error the mean joint
distance; PCK over 0-50 mm and AUC over 20-50 mm (both threshold conventions, see
handshape.evaluation.metrics.pck_report). A network whose hand model has another topology than
the data's (an official MANO file, 778 vertices, against handshape's synthetic meshes) is
compared on the data's vertices: each is read off the closest point of the network model's
rest template, put on the data model's by a similarity fit of the rest joints (`mesh_alignment`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from handshape.data.batches import network_input, prepare_batch
from handshape.data.keypoint_data import keypoint_view
from handshape.evaluation.metrics import THRESHOLDS_ZIMMERMANN, pck_curve, pck_report, plot_pck
from handshape.geometry.correspondence import TopologyMap, topology_map
from handshape.handmodel.model import HandModel
from handshape.nets.network import CameraHand, HandNet
from handshape.safeio.atomic import atomic_write_text

PROTOCOL = (
    "paper Sec. 5 on synthetic validation: lifted with the ground-truth root depth and hand "
    "scale, mean vertex / joint distance; pck: auc_20_50 over linspace(20, 50, 20) mm, "
    "auc_20_50_zb over Zimmermann & Brox's 12 thresholds from 21.05 mm, pck_curve over "
    "linspace(0, 50, 20) mm"
)


@torch.no_grad()
def predict_batch(
    net: HandNet,
    cfg: dict[str, Any],
    batch: dict[str, torch.Tensor],
    lifter: Callable[..., CameraHand] | None = None,
) -> tuple[dict[str, torch.Tensor], CameraHand]:
    """A data batch prepared for `net` (`prepare_batch`) and the network's mesh and joints in
    the camera frame, lifted with the batch's true root depth and hand scale; with `lifter`
    (`handshape.inference.crop_lifter.CropLifter`) the keypoint network's on the batch's
    images, through MediaPipe's landmarks."""
    gt = prepare_batch(batch, net.input_size, cfg["model"]["heatmap_sigma"])
    if lifter is not None:
        return gt, lifter(batch["image"], batch["K"], gt["root"][:, 2], gt["scale"])
    return gt, net.lift(net(network_input(gt)), gt["K"], gt["root"][:, 2], gt["scale"])


def mesh_alignment(predicted: HandModel, truth: HandModel) -> TopologyMap | None:
    """None when both models share one topology (vertex to vertex); otherwise the map from the
    predicted model's vertices to the ground truth model's (`topology_map` of the rest
    templates, aligned on the rest joints)."""
    if predicted.num_vertices == truth.num_vertices and np.array_equal(
        predicted.data.faces, truth.data.faces
    ):
        return None
    return topology_map(
        predicted.data.v_template,
        predicted.data.faces,
        predicted.rest_joints,
        truth.data.v_template,
        truth.rest_joints,
    )


def _describe(alignment: TopologyMap | None) -> str:
    """How predicted and true vertices were paired, for metrics.json."""
    if alignment is None:
        return "vertex to vertex"
    return (
        f"closest point on the aligned rest template ({alignment.num_source} -> "
        f"{alignment.num_target} vertices)"
    )


@torch.no_grad()
def evaluate(
    net: HandNet,
    cfg: dict[str, Any],
    dataset: Dataset,
    batch_size: int = 16,
    limit: int | None = None,
    progress: bool = True,
    lifter: Callable[..., CameraHand] | None = None,
) -> dict[str, Any]:
    """Metrics of `net` on the samples of `dataset` (e.g. `handshape.data.registry.eval_dataset`);
    ``mesh_error_mm`` is None for a pose-only network, ``mesh_alignment`` says how predicted and
    true vertices were paired. A keypoint network reads each sample's true keypoints with the
    simulated errors of its config (`handshape.data.keypoint_data.keypoint_view`), or with
    `lifter` MediaPipe's landmarks of each sample's image (`predict_batch`)."""
    if limit is not None:
        dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
    if net.input == "keypoints" and lifter is None:
        # The image network's samples, seen as keypoints with simulated landmark errors.
        dataset = keypoint_view(dataset, cfg)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=0)
    # Synthetic meshes are handshape's own hand, whatever model the network poses.
    alignment = mesh_alignment(HandModel.load(cfg["handmodel"]["mano"]), HandModel.default())
    vertex_errors, joint_errors = [], []
    for batch in tqdm(loader, desc="eval", unit="batch", disable=not progress):
        gt, pred = predict_batch(net, cfg, batch, lifter)
        if pred.vertices is not None:
            vertices = pred.vertices if alignment is None else alignment.apply(pred.vertices)
            vertex_errors.append((vertices - gt["vertices"]).norm(dim=-1).mean(-1) * 1000)
        joint_errors.append((pred.joints - gt["joints_3d"]).norm(dim=-1) * 1000)
    per_joint = torch.cat(joint_errors).numpy()
    return {
        "protocol": PROTOCOL,
        "samples": len(per_joint),
        "mesh_error_mm": float(torch.cat(vertex_errors).mean()) if vertex_errors else None,
        "mesh_alignment": _describe(alignment) if vertex_errors else "none (pose only)",
        "pose_error_mm": float(per_joint.mean()),
        "pck": pck_report(per_joint),
        "pck_curve": {
            "thresholds_mm": THRESHOLDS_ZIMMERMANN.tolist(),
            "pck": pck_curve(per_joint, THRESHOLDS_ZIMMERMANN).tolist(),
        },
    }


def write_results(
    results: dict[str, Any],
    out: Path,
    label: str = "handshape",
    title: str = "3D PCK (synthetic validation)",
) -> tuple[Path, Path]:
    """metrics.json and pck.png (of `results["pck_curve"]`) in `out`, written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=1)
    json_path = atomic_write_text(out / "metrics.json", text)
    curve = results["pck_curve"]
    plot = plot_pck(
        {label: (np.asarray(curve["thresholds_mm"]), np.asarray(curve["pck"]))},
        out / "pck.png",
        title=title,
    )
    return json_path, plot
