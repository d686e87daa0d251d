"""Specification of the overlays: a prepared batch's images with meshes and skeletons drawn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handshape.data.batches import prepare_batch
from handshape.handmodel.model import HandModel
from handshape.render.overlays import preview_grid


@pytest.fixture(scope="module")
def prepared(synthetic_batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return prepare_batch(synthetic_batch, 64, 2.0)


def test_preview_grid_draws_prediction_above_ground_truth(
    prepared: dict[str, torch.Tensor],
) -> None:
    faces = HandModel.default().data.faces
    truth = {"vertices": prepared["vertices"], "joints": prepared["joints_3d"]}
    grid = preview_grid(prepared, truth, faces, count=3)
    assert grid.shape == (2 * 64, 3 * 64, 3) and grid.dtype == np.uint8
    np.testing.assert_array_equal(grid[:64], grid[64:])  # a perfect prediction: equal rows
    plain = (prepared["image"][:3].permute(0, 2, 3, 1) * 255).byte().numpy()
    assert (grid[64:, :64] != plain[0]).any()  # the mesh and skeleton are drawn on the image
    shifted = {k: v + torch.tensor([0.02, 0.0, 0.0]) for k, v in truth.items()}
    assert (preview_grid(prepared, shifted, faces, count=3)[:64] != grid[:64]).any()


def test_the_preview_of_a_pose_only_network_draws_its_skeleton_alone(
    prepared: dict[str, torch.Tensor],
) -> None:
    faces = HandModel.default().data.faces
    skeleton = preview_grid(prepared, {"joints": prepared["joints_3d"]}, faces, count=2)
    full = preview_grid(
        prepared,
        {"vertices": prepared["vertices"], "joints": prepared["joints_3d"]},
        faces,
        count=2,
    )
    np.testing.assert_array_equal(skeleton[64:], full[64:])  # the ground truth keeps its mesh
    assert (skeleton[:64] != full[:64]).any()  # no wireframe above it
    plain = (prepared["image"][:2].permute(0, 2, 3, 1) * 255).byte().numpy()
    assert (skeleton[:64, :64] != plain[0]).any()  # but the skeleton
