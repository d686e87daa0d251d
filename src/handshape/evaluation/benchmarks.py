"""Evaluation on the real benchmarks (RHD, STB, FreiHAND) under each one's own protocol.

One pass over an evaluation split (`read_truth`, or `run_network` which also predicts) gathers
the ground truth in the set's OWN frame: its camera, its image pixels and its handedness (the
readers mirror left hands and crop; `handshape.data.real.to_source_frame` undoes both). The
predictions, from a network or from a file in the layouts of
`handshape.evaluation.predictions`, are in that frame too, so a peer's outputs and ours are
scored by the same code (`score`):

- RHD, STB (Zimmermann & Brox's protocol as Ge et al. follow it, `protocols.hand3d_report`):
  a network's joints are lifted with the ground-truth root depth and hand scale (the paper's
  test-time assumption; a file's predictions are expected to be made the same way); each
  prediction's root is then moved onto the true root (no rescaling); per-joint 3D errors over
  all 21 joints; mean error (mm), 3D PCK, AUC over 20-50 mm in both threshold conventions.
  2D PCK in pixels of the set's own image (`protocols.pck_2d_report`): the predicted 3D joints
  projected with the sample's camera (for a network, exactly its own 2D estimate in the crop,
  since lifting back-projects it, mapped back through the crop), against the labelled 2D
  joints that are visible and inside the evaluated crop.
- FreiHAND (`protocols.freihand_report`, as its official eval.py): per-sample Procrustes with
  scale; PA-MPJPE, AUC 0-50 mm; with meshes on both sides F@5 / F@15 mm, and PA-MPVPE when the
  prediction has MANO's 778 vertices (a network posing the official MANO model).

A split without 3D labels (FreiHAND's evaluation set before the xyz release) cannot be scored
here; a network's predictions for it can still be saved (FreiHAND's pred.json for its server),
lifted at a nominal root depth (`NOMINAL_ROOT_DEPTH_M`) and the network model's hand scale,
which the aligned numbers do not depend on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from handshape.data.batches import prepare_batch
from handshape.data.real import project, to_source_frame
from handshape.evaluation.evaluate import write_results
from handshape.evaluation.metrics import (
    THRESHOLDS_0_50_100,
    THRESHOLDS_ZIMMERMANN,
    pck_curve,
)
from handshape.evaluation.pck_figure import plot_pck_vs_published
from handshape.evaluation.predictions import (
    check_ids,
    read_freihand_predictions,
    read_joint_predictions,
    write_freihand_predictions,
    write_joint_predictions,
)
from handshape.evaluation.protocols import (
    MANO_VERTICES,
    freihand_joint_errors,
    freihand_report,
    hand3d_errors,
    hand3d_report,
    pck_2d_report,
)
from handshape.evaluation.published import FIG9, published_aucs
from handshape.handmodel.model import HandModel
from handshape.nets.network import CameraHand, HandNet

__all__ = [
    "BENCHMARKS",
    "NOMINAL_ROOT_DEPTH_M",
    "Predictions",
    "Scored",
    "Truth",
    "match_predictions",
    "read_prediction_file",
    "read_truth",
    "run_network",
    "save_predictions",
    "score",
    "write_benchmark_results",
]

BENCHMARKS = ("rhd", "stb", "freihand")
# Root depth for lifting samples without 3D labels (only their aligned numbers are meaningful).
NOMINAL_ROOT_DEPTH_M = 0.5

PROTOCOL_3D = (
    "Zimmermann & Brox / Ge et al. Sec. 5: joints lifted with the ground-truth root depth and "
    "hand scale, prediction root moved onto the true root (no rescale), errors over all 21 "
    "joints; 2D: predicted joints projected into the set's own image, visible labelled joints "
    "inside the crop, PCK over 0-30 px"
)
PROTOCOL_FREIHAND = (
    "FreiHAND official eval.py: per-sample Procrustes with scale (joints and mesh separately), "
    "PA-MPJPE, AUC over linspace(0, 50, 100) mm, F-scores at 5 / 15 mm on the aligned mesh, "
    "PA-MPVPE for MANO's 778 vertices"
)
THRESHOLD_CONVENTIONS = {
    "auc_20_50": "linspace(20, 50, 20) mm (later papers)",
    "auc_20_50_zb": "the 12 thresholds of linspace(0, 50, 20) from 21.05 mm (Zimmermann & "
    "Brox's code, which Ge et al. follow)",
    "auc_0_50": "linspace(0, 50, 20) mm",
}


@dataclass
class Truth:
    """Ground truth of an evaluation split in the set's own frame, and how to project into it.

    ids: N sample ids (RHD pickle keys, STB "<seq>/<frame>", FreiHAND idx).
    joints_3d (N, 21, 3) m or None (a split without 3D labels); joints_2d (N, 21, 2) px in the
    set's image; visible (N, 21) bool (labelled visible and inside the crop); vertices
    (N, 778, 3) m or None; K_crop (N, 3, 3) the items' crop intrinsics; crop (N, 3, 3) full
    image -> crop px; mirrored (N,) bool; width (N,) int, of the full image.
    """

    dataset: str
    split: str
    ids: list[str]
    joints_3d: np.ndarray | None
    joints_2d: np.ndarray
    visible: np.ndarray
    vertices: np.ndarray | None
    K_crop: np.ndarray
    crop: np.ndarray
    mirrored: np.ndarray
    width: np.ndarray
    partial: bool = False  # only the first samples of the split (--limit)

    def project(self, joints: np.ndarray) -> np.ndarray:
        """(N, 21, 3) m in the set's own frame -> (N, 21, 2) px in the set's own image."""
        out = np.empty((*joints.shape[:2], 2))
        for i, xyz in enumerate(np.asarray(joints, dtype=np.float64)):
            seen = xyz * np.array([-1.0, 1.0, 1.0]) if self.mirrored[i] else xyz
            with np.errstate(divide="ignore", invalid="ignore"):  # depth 0: handled below
                uv_crop = project(self.K_crop[i], seen)
            out[i], _ = to_source_frame(
                uv_crop, seen, self.crop[i], bool(self.mirrored[i]), int(self.width[i])
            )
        # A joint at depth 0 has no pixel: count it as a miss, not as "not evaluated" (NaN).
        return np.where(np.isfinite(out), out, np.inf)


@dataclass
class Predictions:
    """Joints (N, 21, 3) and optionally vertices (N, V, 3) in metres, in the set's own frame,
    for the samples `ids`; `notes` say how they were made (for metrics.json)."""

    ids: list[str]
    joints: np.ndarray
    vertices: np.ndarray | None = None
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scored:
    """metrics.json's content and the per-joint errors (B, 21) mm that the plots draw."""

    results: dict[str, Any]
    errors_mm: np.ndarray


def _unmirror(points: torch.Tensor, mirrored: torch.Tensor) -> np.ndarray:
    """(B, N, 3) camera points of (possibly mirrored) items -> the set's handedness."""
    sign = torch.where(mirrored, -1.0, 1.0).double()
    out = points.detach().double().clone()
    out[..., 0] *= sign[:, None]
    return out.cpu().numpy()


def _collect(
    dataset: Dataset,
    name: str,
    split: str,
    net: HandNet | None,
    cfg: dict[str, Any] | None,
    batch_size: int,
    limit: int | None,
    progress: bool,
    workers: int = 0,
    lifter: Callable[..., CameraHand] | None = None,
) -> tuple[Truth, Predictions | None]:
    partial = limit is not None and limit < len(dataset)  # type: ignore[arg-type]
    if limit is not None:
        dataset = Subset(dataset, range(min(limit, len(dataset))))  # type: ignore[arg-type]
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    parts: dict[str, list] = {k: [] for k in ("j3", "j2", "vis", "verts", "K", "crop", "mir", "w")}
    ids: list[str] = []
    has_3d, has_mesh = [], []
    pred_j, pred_v = [], []
    nominal = False
    rest_scale: float | None = None
    for batch in tqdm(loader, desc=f"eval {name}", unit="batch", disable=not progress):
        mirrored = batch["mirrored"].bool()
        ids.extend(str(s) for s in batch["sample_id"])
        has_3d.append(batch["has_joints_3d"].bool())
        has_mesh.append(batch["has_mesh"].bool())
        parts["j3"].append(_unmirror(batch["joints_3d"], mirrored))
        if bool(batch["has_mesh"].all()):  # mesh-less sets carry zeros: not kept
            parts["verts"].append(_unmirror(batch["vertices"], mirrored))
        for i in range(len(mirrored)):
            uv, _ = to_source_frame(
                batch["joints_2d"][i].double().numpy(),
                np.zeros((21, 3)),
                batch["crop"][i].numpy(),
                bool(mirrored[i]),
                int(batch["image_size"][i, 0]),
            )
            parts["j2"].append(uv)
        parts["vis"].append(batch["visibility"].bool().numpy())
        parts["K"].append(batch["K"].double().numpy())
        parts["crop"].append(batch["crop"].double().numpy())
        parts["mir"].append(mirrored.numpy())
        parts["w"].append(batch["image_size"][:, 0].numpy())
        if net is not None and cfg is not None:
            gt = prepare_batch(batch, net.input_size, cfg["model"]["heatmap_sigma"])
            root_z, scale = gt["root"][:, 2], gt["scale"]
            known = batch["has_joints_3d"].bool()
            if not bool(known.all()):
                nominal = True
                if rest_scale is None:  # the network model's own scale, read once
                    rest_scale = HandModel.load(cfg["handmodel"]["mano"]).rest_scale
                root_z = torch.where(known, root_z, torch.full_like(root_z, NOMINAL_ROOT_DEPTH_M))
                scale = torch.where(known, scale, torch.full_like(scale, rest_scale))
            with torch.no_grad():
                if lifter is not None:  # the keypoint network through MediaPipe's landmarks
                    lifted = lifter(batch["image"], batch["K"], root_z, scale)
                else:
                    lifted = net.lift(net(gt["image"]), gt["K"], root_z, scale)
            pred_j.append(_unmirror(lifted.joints, mirrored))
            if lifted.vertices is not None:
                pred_v.append(_unmirror(lifted.vertices, mirrored))
    if not ids:
        raise ValueError(f"{name}:{split}: the evaluation split has no samples")
    all_3d = bool(torch.cat(has_3d).all())
    all_mesh = bool(torch.cat(has_mesh).all())
    truth = Truth(
        dataset=name,
        split=split,
        ids=ids,
        joints_3d=np.concatenate(parts["j3"]) if all_3d else None,
        joints_2d=np.stack(parts["j2"]),
        visible=np.concatenate(parts["vis"]),
        vertices=np.concatenate(parts["verts"]) if all_mesh else None,
        K_crop=np.concatenate(parts["K"]),
        crop=np.concatenate(parts["crop"]),
        mirrored=np.concatenate(parts["mir"]),
        width=np.concatenate(parts["w"]),
        partial=partial,
    )
    if net is None:
        return truth, None
    notes: dict[str, Any] = {"lifted_with": "ground-truth root depth and hand scale"}
    if nominal:
        notes["lifted_with"] = (
            f"a nominal root depth of {NOMINAL_ROOT_DEPTH_M} m and the hand model's scale where "
            "the split has no 3D labels"
        )
    verts = np.concatenate(pred_v) if pred_v else None
    return truth, Predictions(ids, np.concatenate(pred_j), verts, notes)


def read_truth(
    dataset: Dataset,
    name: str,
    split: str,
    batch_size: int = 16,
    limit: int | None = None,
    progress: bool = True,
    workers: int = 0,
) -> Truth:
    """The ground truth of `dataset` (a RealDataset of benchmark `name`), in the set's frame;
    `workers` DataLoader processes read the files."""
    return _collect(dataset, name, split, None, None, batch_size, limit, progress, workers)[0]


@torch.no_grad()
def run_network(
    net: HandNet,
    cfg: dict[str, Any],
    dataset: Dataset,
    name: str,
    split: str,
    batch_size: int = 16,
    limit: int | None = None,
    progress: bool = True,
    workers: int = 0,
    lifter: Callable[..., CameraHand] | None = None,
) -> tuple[Truth, Predictions]:
    """The ground truth and `net`'s predictions, both in the set's own frame. With `lifter`
    (a keypoint network, `handshape.inference.crop_lifter.CropLifter`) the answers are its, on
    each crop's image and intrinsics; `net` then only names the input size."""
    truth, pred = _collect(
        dataset, name, split, net, cfg, batch_size, limit, progress, workers, lifter
    )
    assert pred is not None
    return truth, pred


def save_predictions(path: Path, truth: Truth, pred: Predictions) -> Path:
    """Write predictions in the official layout of `truth.dataset`
    (`handshape.evaluation.predictions`)."""
    if truth.dataset == "freihand":
        if pred.vertices is None:
            raise ValueError(
                f"{path}: FreiHAND's pred.json needs a mesh per sample, and this network is "
                "pose only"
            )
        return write_freihand_predictions(path, pred.joints, pred.vertices)
    by_id = dict(zip(pred.ids, pred.joints, strict=True))
    return write_joint_predictions(path, by_id, truth.dataset)


PredictionFile = dict[str, np.ndarray] | tuple[np.ndarray, np.ndarray]


def read_prediction_file(path: Path, name: str, split_size: int) -> PredictionFile:
    """Another method's predictions for benchmark `name`, read and validated before any image
    is: RHD / STB id -> (21, 3) joints; FreiHAND (joints (N, 21, 3), vertices (N, V, 3)) with N
    the split's size. PredictionFileError naming the file and what is wrong."""
    path = Path(path)
    if name != "freihand":
        return read_joint_predictions(path, name)
    return read_freihand_predictions(path, split_size)


def match_predictions(found: PredictionFile, truth: Truth, path: Path) -> Predictions:
    """The predictions of `read_prediction_file` for the samples of `truth`, in its order;
    PredictionFileError naming the file and the missing / unexpected ids. With a partial
    `truth` (--limit), predictions of the later samples are ignored."""
    notes = {"read_from": str(path)}
    n = len(truth.ids)
    if isinstance(found, tuple):  # FreiHAND: index order
        joints, verts = found
        return Predictions(list(truth.ids), joints[:n], verts[:n], notes)
    wanted = set(truth.ids)
    keys = [k for k in found if k in wanted] if truth.partial else list(found)
    check_ids(keys, truth.ids, path)
    return Predictions(list(truth.ids), np.stack([found[k] for k in truth.ids]), None, notes)


def _mesh_note(truth: Truth, pred: Predictions) -> str:
    if truth.vertices is None:
        return "no ground-truth meshes in this split: joint numbers only"
    if pred.vertices is None:
        return "pose-only predictions: joint numbers only"
    if pred.vertices.shape[1] != MANO_VERTICES:
        return (
            f"predicted meshes have {pred.vertices.shape[1]} vertices, not MANO's 778: no "
            "PA-MPVPE; F-scores on the mesh moved by the joints' similarity (pose the official "
            "MANO model, handmodel.mano=PATH, for vertex errors)"
        )
    return "MANO's 778 vertices: PA-MPVPE vertex to vertex"


def score(truth: Truth, pred: Predictions) -> Scored:
    """`pred` scored against `truth` under the benchmark's protocol (module docstring)."""
    if pred.ids != truth.ids:
        raise ValueError("predictions and ground truth list different samples")
    if truth.joints_3d is None:
        raise ValueError(
            f"{truth.dataset}:{truth.split} has no 3D labels (e.g. FreiHAND's evaluation set "
            "without evaluation_xyz.json): it cannot be scored here; --save-predictions writes "
            "the file for the benchmark's server"
        )
    base: dict[str, Any] = {
        "dataset": truth.dataset,
        "split": truth.split,
        "samples": len(truth.ids),
        "predictions": pred.notes,
    }
    if truth.dataset == "freihand":
        report = freihand_report(pred.joints, truth.joints_3d, pred.vertices, truth.vertices)
        errors, _ = freihand_joint_errors(pred.joints, truth.joints_3d)
        curve = pck_curve(errors, THRESHOLDS_0_50_100)
        results = base | {
            "protocol": PROTOCOL_FREIHAND,
            "mesh": _mesh_note(truth, pred),
            "freihand": report,
            "pck_curve": {
                "what": "PCK of the Procrustes-aligned joints",
                "thresholds_mm": THRESHOLDS_0_50_100.tolist(),
                "pck": curve.tolist(),
            },
        }
        return Scored(results, errors)
    report = hand3d_report(pred.joints, truth.joints_3d)
    errors = hand3d_errors(pred.joints, truth.joints_3d)  # what the report scored
    results = base | {
        "protocol": PROTOCOL_3D,
        "pose_error_mm": report["mean_mm"],
        "mesh_error_mm": None,
        "pck": report,
        "auc_conventions": THRESHOLD_CONVENTIONS,
        "pck_curve": {
            "what": "3D PCK, root aligned",
            "thresholds_mm": THRESHOLDS_ZIMMERMANN.tolist(),
            "pck": pck_curve(errors, THRESHOLDS_ZIMMERMANN).tolist(),
        },
        "pck_2d": pck_2d_report(truth.project(pred.joints), truth.joints_2d, truth.visible),
        "published_auc_20_50": {
            "source": FIG9,
            "auc": {p.method: p.auc for p in published_aucs(truth.dataset)},
        },
    }
    return Scored(results, errors)


_TITLES = {"rhd": "RHD", "stb": "STB", "freihand": "FreiHAND"}


def write_benchmark_results(scored: Scored, out: Path, label: str = "handshape") -> list[Path]:
    """metrics.json and pck.png in `out`; for RHD and STB also pck_vs_published.png (Fig. 9
    style). Every file is written atomically. Returns the paths written."""
    results = scored.results
    dataset = results["dataset"]
    title = (
        f"{results['pck_curve']['what']} on {_TITLES[dataset]} {results['split']} "
        f"({results['samples']} samples; legend: AUC over 0-50 mm)"
    )
    paths = list(write_results(results, out, label, title))
    if dataset in ("rhd", "stb"):
        paths.append(
            plot_pck_vs_published({label: scored.errors_mm}, dataset, out / "pck_vs_published.png")
        )
    return paths
