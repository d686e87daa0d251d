"""The error of a constant prediction: the mean root-relative, scale-normalised hand of a
training set, placed with each validation sample's true root and scale (what a network that
ignores its input at best learns). A floor any trained network must beat.

    .venv/bin/python scripts/constant_baseline.py data/synthetic-quick
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from handshape.data.batches import prepare_batch
from handshape.data.synth.reader import SyntheticDataset
from handshape.evaluation.metrics import pck_report


def normalised(
    split: Path,
) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, torch.Tensor]]]:
    batches = []
    for batch in DataLoader(SyntheticDataset(split, train=False), batch_size=64):
        gt = prepare_batch(batch, batch["image"].shape[-1], 2.0)
        keys = ("vertices_n", "joints_n", "vertices", "joints_3d", "root", "scale")
        batches.append({k: gt[k] for k in keys})
    verts = torch.cat([b["vertices_n"] for b in batches])
    joints = torch.cat([b["joints_n"] for b in batches])
    return verts, joints, batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="a synthetic set with train/ and val/")
    args = parser.parse_args()
    mean_v, mean_j, _ = normalised(args.root / "train")
    mean_v, mean_j = mean_v.mean(0), mean_j.mean(0)
    _, _, val = normalised(args.root / "val")
    mesh, joints = [], []
    for b in val:
        root, scale = b["root"][:, None], b["scale"][:, None, None]
        mesh.append((root + scale * mean_v - b["vertices"]).norm(dim=-1).mean(-1) * 1000)
        joints.append((root + scale * mean_j - b["joints_3d"]).norm(dim=-1) * 1000)
    per_joint = torch.cat(joints).numpy()
    print(
        json.dumps(
            {
                "mesh_error_mm": round(float(torch.cat(mesh).mean()), 1),
                "pose_error_mm": round(float(per_joint.mean()), 1),
                "auc_20_50": round(float(pck_report(per_joint)["auc_20_50"]), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
