"""The mean orientation of the hands of a synthetic split, as the axis-angle `start_rotation`
of the parametric heads (model.head.mano / model.head.lbs).

Each sample's rotation is the one that best turns the hand model's rest joints onto its
camera-frame joints (root-relative, Kabsch); the mean is the rotation nearest to their sum
(the chordal mean). The parametric heads start from one orientation; starting them from the
data's mean makes a head comparison fair to them.

    .venv/bin/python scripts/mean_orientation.py data/synthetic-quick/train
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from handshape.data.synth.reader import SyntheticDataset
from handshape.geometry.rotations import axis_angle_to_matrix, kabsch, matrix_to_axis_angle
from handshape.handmodel.model import HandModel


def mean_orientation(split: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(3,) axis-angle of the chordal mean rotation, (K,) each sample's angle to it (rad)."""
    rest = torch.as_tensor(HandModel.default().rest_joints, dtype=torch.float64)
    rest = rest - rest[:1]
    rotations = []
    for batch in DataLoader(SyntheticDataset(split, train=False), batch_size=64):
        joints = batch["joints_3d"].double()
        rotations.append(kabsch(rest.expand(len(joints), -1, -1), joints - joints[:, :1]))
    every = torch.cat(rotations)
    # The rotation R maximising trace(R^T M): Kabsch from the basis vectors to M's columns.
    mean = kabsch(torch.eye(3, dtype=torch.float64), every.sum(0).T)
    cosine = ((mean.T @ every).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return matrix_to_axis_angle(mean), torch.arccos(cosine.clamp(-1, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("split", type=Path, help="a synthetic split folder, e.g. DATA/train")
    args = parser.parse_args()
    rotvec, spread = mean_orientation(args.split)
    default = torch.tensor([math.pi, 0.0, 0.0], dtype=torch.float64)
    values = ", ".join(f"{v:.3f}" for v in rotvec.tolist())
    print(f"mean orientation (axis-angle): [{values}]")
    print(f"median angle of a sample to it: {math.degrees(float(spread.median())):.1f} deg")
    print(f"angle from the default start (pi about x): {_angle(rotvec, default):.1f} deg")
    print(f"start_rotation: [{values}]")


def _angle(a: torch.Tensor, b: torch.Tensor) -> float:
    """Degrees between two rotations given as axis-angle (3,)."""
    relative = axis_angle_to_matrix(a).T @ axis_angle_to_matrix(b)
    return math.degrees(math.acos(max(-1.0, min(1.0, (float(relative.trace()) - 1) / 2))))


if __name__ == "__main__":
    main()
