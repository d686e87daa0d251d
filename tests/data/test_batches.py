"""Specification of batch preparation: a data batch resized to a network's input, with its
targets (intrinsics, uvd and normalised coordinates, heat-maps)."""

from __future__ import annotations

import pytest
import torch

from handshape.data.batches import prepare_batch
from handshape.geometry.camera import from_uvd, project

DATA_SIZE = 64  # the pixels of `synthetic_batch`


@pytest.fixture(scope="module")
def batch(synthetic_batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return synthetic_batch


@pytest.fixture(scope="module")
def prepared(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return prepare_batch(batch, DATA_SIZE, 2.0)


@pytest.mark.parametrize("size", [32, 64, 96, 128])
def test_resized_intrinsics_project_the_3d_joints_onto_the_rescaled_2d_joints(
    batch: dict[str, torch.Tensor], size: int
) -> None:
    gt = prepare_batch(batch, size, 2.0)
    assert gt["image"].shape == (4, 3, size, size)
    # The stored 2D joints, rescaled with pixel centres at integers.
    rescaled = (batch["joints_2d"] + 0.5) * (size / DATA_SIZE) - 0.5
    projected = project(batch["joints_3d"].float(), gt["K"])
    # Exact up to float precision (the spec's bound is 0.5 px; a half-pixel slip is 0.5 px).
    assert (projected - rescaled).norm(dim=-1).max() < 0.01
    # The data batch itself is left alone.
    assert batch["image"].shape[-1] == DATA_SIZE
    assert not torch.equal(gt["K"], batch["K"]) or size == DATA_SIZE


def test_an_image_already_at_the_input_size_is_not_resampled(
    batch: dict[str, torch.Tensor], prepared: dict[str, torch.Tensor]
) -> None:
    assert torch.equal(prepared["image"], batch["image"])
    torch.testing.assert_close(prepared["K"], batch["K"].float())


def test_a_resized_image_keeps_its_content(batch: dict[str, torch.Tensor]) -> None:
    """Downsampling the 128-pixel version back gives (nearly) the original: no flip, no shift."""
    big = prepare_batch(batch, 128, 2.0)["image"]
    back = torch.nn.functional.avg_pool2d(big, 2)
    assert (back - batch["image"]).abs().mean() < 0.02


@pytest.mark.parametrize("size", [64, 128])
def test_uvd_targets_lift_back_to_the_ground_truth(
    batch: dict[str, torch.Tensor], size: int
) -> None:
    gt = prepare_batch(batch, size, 2.0)
    vertices = from_uvd(gt["vertices_uvd"], gt["K"], gt["root"][:, 2], gt["scale"], size)
    joints = from_uvd(gt["joints_uvd"], gt["K"], gt["root"][:, 2], gt["scale"], size)
    assert (vertices - batch["vertices"]).norm(dim=-1).max() < 1e-5
    assert (joints - batch["joints_3d"]).norm(dim=-1).max() < 1e-5
    # uv in the crop, the root at depth 0; normalised coordinates root-relative with unit scale.
    assert gt["vertices_uvd"][..., :2].abs().max() < 1.0
    assert gt["joints_uvd"][:, 0, 2].abs().max() < 1e-6
    assert gt["joints_n"][:, 0].abs().max() < 1e-6
    torch.testing.assert_close(
        (gt["joints_n"][:, 9] - gt["joints_n"][:, 10]).norm(dim=-1), torch.ones(4)
    )
    torch.testing.assert_close(gt["root"], batch["joints_3d"][:, 0])


@pytest.mark.parametrize("size", [64, 128])
def test_heatmaps_peak_at_the_joints(batch: dict[str, torch.Tensor], size: int) -> None:
    gt = prepare_batch(batch, size, 2.0)
    cells = size // 4
    maps = gt["heatmaps"]
    assert maps.shape == (4, 21, cells, cells)
    joints = (batch["joints_2d"] + 0.5) * (size / DATA_SIZE) - 0.5  # input pixels
    centre = (joints + 0.5) * (cells / size) - 0.5  # heat-map cells
    flat = maps.flatten(2).argmax(-1)
    peak = torch.stack([flat % cells, flat // cells], dim=-1)
    inside = ((joints >= 0) & (joints <= size - 1)).all(-1)
    assert inside.any()
    expected = centre.round().clamp(0, cells - 1).long()
    assert torch.equal(peak[inside], expected[inside])
    assert (maps.flatten(2).amax(-1)[inside] > 0.75).all()
    assert maps.max() <= 1.0


def test_heatmaps_of_joints_outside_the_crop_are_empty(batch: dict[str, torch.Tensor]) -> None:
    moved = dict(batch)
    moved["joints_2d"] = batch["joints_2d"].clone()
    moved["joints_2d"][0, 4] = torch.tensor([-40.0, 10.0])
    maps = prepare_batch(moved, 64, 2.0)["heatmaps"]
    assert maps[0, 4].abs().max() == 0
    assert maps[0, 3].max() > 0.75
