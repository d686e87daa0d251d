"""Square hand crops: where pixels, 2D points and intrinsics go, and mirroring."""

from __future__ import annotations

import numpy as np
import pytest

from handshape.data.crop import (
    box_from_joints,
    box_from_xywh,
    crop_depth,
    crop_image,
    crop_mask,
    crop_transform,
    mirror_image,
    mirror_intrinsics,
    mirror_points_2d,
    mirror_points_3d,
    transform_points,
)


def project(K: np.ndarray, points: np.ndarray) -> np.ndarray:
    uvw = points @ K.T
    return uvw[:, :2] / uvw[:, 2:3]


def test_box_from_joints_is_centred_square_with_margin() -> None:
    joints = np.array([[10.0, 20.0], [50.0, 30.0], [30.0, 80.0]])
    cx, cy, side = box_from_joints(joints, margin=1.5)
    assert (cx, cy) == (30.0, 50.0)
    assert side == pytest.approx(60.0 * 1.5)
    assert box_from_joints(np.zeros((21, 2)), min_side=16.0)[2] == 16.0


def test_box_from_xywh_covers_the_given_pixels() -> None:
    cx, cy, side = box_from_xywh(np.array([100, 40, 50, 30]))
    assert (cx, cy, side) == (124.5, 54.5, 50.0)
    with pytest.raises(ValueError, match="w, h > 0"):
        box_from_xywh(np.array([0, 0, 0, 5]))


def test_crop_maps_box_edges_to_crop_edges() -> None:
    A = crop_transform((99.5, 49.5, 100.0), 50)
    # The box spans pixel edges [49.5 - 0.5 ... ], i.e. pixels 50..149 map onto 0..49.
    corners = transform_points(A, np.array([[49.5 - 0.0, -0.5], [149.5, 99.5]]))
    assert np.allclose(corners, [[-0.5, -0.5], [49.5, 49.5]])
    assert np.allclose(transform_points(A, np.array([[99.5, 49.5]])), [[24.5, 24.5]])


@pytest.mark.parametrize("side", [40.0, 160.0, 400.0])  # enlarging, shrinking, shrinking > 2x
def test_a_bright_pixel_lands_where_its_coordinates_go(side: float) -> None:
    image = np.zeros((300, 400, 3), np.uint8)
    u, v = 210, 140
    image[v - 2 : v + 3, u - 2 : u + 3] = 255  # 5x5 block centred on (u, v)
    A = crop_transform((200.0, 150.0, side), 64)
    crop = crop_image(image, A, 64).astype(float).sum(axis=2)
    ys, xs = np.mgrid[:64, :64]
    centroid = np.array([(xs * crop).sum(), (ys * crop).sum()]) / crop.sum()
    expected = transform_points(A, np.array([[u, v]], float))[0]
    assert np.allclose(centroid, expected, atol=0.3)


def test_crop_intrinsics_project_onto_cropped_points() -> None:
    rng = np.random.default_rng(0)
    K = np.array([[500.0, 0, 320], [0, 510.0, 240], [0, 0, 1]])
    points = rng.normal(0, 0.05, (21, 3)) + np.array([0, 0, 0.6])
    A = crop_transform((300.0, 260.0, 180.0), 128)
    assert np.allclose(project(A @ K, points), transform_points(A, project(K, points)))


def test_depth_and_mask_use_nearest_and_follow_the_image() -> None:
    depth = np.zeros((100, 100), np.float32)
    depth[30:60, 40:70] = 0.55
    depth[45:60, 40:70] = 0.75
    mask = depth > 0
    image = np.where(mask[..., None], 200, 0).astype(np.uint8).repeat(3, axis=2)
    A = crop_transform((55.0, 45.0, 50.0), 37)
    cropped_depth = crop_depth(depth, A, 37)
    assert set(np.unique(cropped_depth).tolist()) <= {0.0, np.float32(0.55), np.float32(0.75)}
    cropped_mask = crop_mask(mask, A, 37)
    assert cropped_mask.dtype == bool
    assert np.array_equal(cropped_mask, cropped_depth > 0)
    bright = crop_image(image, A, 37)[..., 0] > 100
    assert (bright == cropped_mask).mean() > 0.95


def test_outside_the_image_is_zero() -> None:
    image = np.full((20, 20, 3), 255, np.uint8)
    # A 40 px box centred on the image's top-left pixel corner: the image is its lower right.
    crop = crop_image(image, crop_transform((-0.5, -0.5, 40.0), 40), 40)
    assert crop[:20].max() == 0 and crop[:, :20].max() == 0
    assert crop[20:, 20:].min() == 255


def test_mirroring_keeps_projection_consistent() -> None:
    rng = np.random.default_rng(1)
    width = 320
    K = np.array([[300.0, 0.5, 150], [0, 305.0, 170], [0, 0, 1]])
    points = rng.normal(0, 0.05, (21, 3)) + np.array([0.02, 0, 0.5])
    uv = project(K, points)
    K_m = mirror_intrinsics(K, width)
    points_m = mirror_points_3d(points)
    assert np.allclose(project(K_m, points_m), mirror_points_2d(uv, width))
    assert np.allclose(mirror_points_2d(mirror_points_2d(uv, width), width), uv)


def test_mirrored_image_pixel_goes_where_mirrored_point_goes() -> None:
    image = np.zeros((10, 16), np.uint8)
    image[3, 2] = 1
    flipped = mirror_image(image)
    v, u = np.argwhere(flipped)[0]
    assert (u, v) == tuple(mirror_points_2d(np.array([[2.0, 3.0]]), 16)[0])
