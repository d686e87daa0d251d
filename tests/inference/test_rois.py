"""The squares the two MediaPipe networks see: corners, mappings both ways, cutting them out."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from handshape.inference.rois import (
    Roi,
    Window,
    normalize_radians,
    tiles,
    transform_rect,
    upright_rotation,
    warp,
)


@pytest.mark.parametrize("rotation", [0.0, 0.4, -2.0, math.pi])
def test_a_roi_matrix_and_to_image_are_inverse_maps(rotation: float) -> None:
    roi = Roi(120.0, 80.0, 64.0, rotation)
    local = np.array([[0.0, 0.0], [1.0, 0.0], [0.3, 0.7], [0.5, 0.5]])
    image = roi.to_image(local)
    back = image @ roi.matrix(224)[:, :2].T + roi.matrix(224)[:, 2]
    assert np.allclose(back / 224, local, atol=1e-9)
    assert np.allclose(image[3], [120.0, 80.0])


def test_the_corners_follow_opencvs_box_points_order() -> None:
    roi = Roi(10.0, 20.0, 4.0, 0.0)
    assert np.allclose(roi.corners(), [[8, 22], [8, 18], [12, 18], [12, 22]])


def test_upright_rotation_turns_the_vector_to_point_up() -> None:
    assert upright_rotation(np.array([0, 0]), np.array([0, -1])) == pytest.approx(0.0)
    assert upright_rotation(np.array([0, 0]), np.array([1, 0])) == pytest.approx(math.pi / 2)
    assert upright_rotation(np.array([0, 0]), np.array([0, 1])) == pytest.approx(-math.pi)
    assert normalize_radians(3 * math.pi) == pytest.approx(-math.pi)


def test_transform_rect_shifts_along_its_own_axis_and_squares_the_long_side() -> None:
    roi = transform_rect(50, 50, 20, 40, math.pi / 2, scale=2.0, shift_y=-0.5)
    assert (roi.cx, roi.cy, roi.side, roi.rotation) == pytest.approx((70, 50, 80, math.pi / 2))


def test_windows_letterbox_the_whole_image_and_tiles_overlap_by_half() -> None:
    assert Window.whole(300, 100) == Window(0.0, -100.0, 300.0)
    grid = tiles(300, 300, 3)
    assert len(grid) == 9 and grid[0] == Window(0.0, 0.0, 150.0)
    assert grid[1].x0 == pytest.approx(75.0) and grid[-1].x0 == pytest.approx(150.0)


def test_warp_cuts_the_square_and_fills_outside_as_asked() -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, 20:] = 200
    window = Window(20.0, 0.0, 40.0)  # right half of the image, then past its edge
    black = warp(image, window.matrix(8), 8, replicate=False)
    repeated = warp(image, window.matrix(8), 8, replicate=True)
    # (the first column samples the white region's edge through the area prefilter)
    assert black[1:, 1:3].min() == 200 and black[:, 5:].max() == 0
    assert repeated[1:, 1:].min() == 200


def test_a_large_shrink_is_area_averaged_not_aliased() -> None:
    stripes = np.zeros((512, 512, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: bilinear sampling at 1/16 would alias
    out = warp(stripes, Window(0.0, 0.0, 512.0).matrix(32), 32, replicate=False)
    inside = out[1:-1, 1:-1]  # the outer ring mixes in the black beyond the edge
    assert np.abs(inside.astype(float) - 127.5).max() < 20


def test_the_corners_land_on_the_inputs_corners_as_mediapipe_maps_them() -> None:
    roi = Roi(60.0, 40.0, 30.0, 0.7)
    A = roi.matrix(224)
    mapped = roi.corners() @ A[:, :2].T + A[:, 2]
    assert np.allclose(mapped, [[0, 224], [0, 0], [224, 0], [224, 224]])


def test_a_shrunk_square_lands_where_a_plain_warp_puts_it() -> None:
    image = np.zeros((1200, 1200, 3), np.uint8)
    image[590:611, 990:1011] = 255  # a bright square centred on pixel (1000, 600)
    window = Window(0.0, 0.0, 1200.0)
    small = warp(image, window.matrix(120), 120, replicate=False).astype(float)[..., 0]
    ys, xs = np.mgrid[:120, :120]
    centre = np.array([(xs * small).sum(), (ys * small).sum()]) / small.sum()
    plain = cv2.warpAffine(image, window.matrix(120), (120, 120)).astype(float)[..., 0]
    expected = np.array([(xs * plain).sum(), (ys * plain).sum()]) / plain.sum()
    assert np.allclose(centre, expected, atol=0.05)  # a fifth of a pixel off before the fix
