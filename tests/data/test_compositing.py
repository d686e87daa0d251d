"""Specification tests for handshape.data.compositing."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from handshape.data.backgrounds import BackgroundSource
from handshape.data.compositing import (
    DEFAULT_AUGMENTATION,
    blend_sample,
    build_augmentation,
    composite,
    relight,
)

H = W = 64


def _hand(alpha: np.ndarray, seed: int = 0) -> np.ndarray:
    """Random-coloured RGBA with the given ``(H, W)`` alpha."""
    rgb = np.random.default_rng(seed).integers(0, 256, size=(*alpha.shape, 3), dtype=np.uint8)
    return np.concatenate([rgb, alpha[..., None].astype(np.uint8)], axis=-1)


def _background(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def _disc_alpha(radius: float = 20.0) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    return np.where(np.hypot(y - H / 2, x - W / 2) < radius, 255, 0).astype(np.uint8)


class _FixedBackground:
    def __init__(self, image: np.ndarray) -> None:
        self.image = image

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.image


@pytest.mark.parametrize("soft_edge", [0.0, 0.7, 2.0])
def test_transparent_gives_background_exactly(soft_edge: float) -> None:
    bg = _background()
    out = composite(_hand(np.zeros((H, W), np.uint8)), bg, soft_edge=soft_edge)
    assert out.dtype == np.uint8
    assert out.shape == (H, W, 3)
    assert np.array_equal(out, bg)


@pytest.mark.parametrize("soft_edge", [0.0, 0.7, 2.0])
def test_opaque_interior_gives_hand_exactly(soft_edge: float) -> None:
    alpha = _disc_alpha()
    hand = _hand(alpha)
    bg = _background()
    out = composite(hand, bg, soft_edge=soft_edge)
    y, x = np.mgrid[0:H, 0:W]
    interior = np.hypot(y - H / 2, x - W / 2) < 20 - 4 * max(soft_edge, 0.5)
    assert np.array_equal(out[interior], hand[..., :3][interior])
    assert np.array_equal(out[alpha == 0], bg[alpha == 0]), "no halo outside the hand"
    full = composite(_hand(np.full((H, W), 255, np.uint8)), bg, soft_edge=soft_edge)
    assert np.array_equal(full, _hand(np.full((H, W), 255, np.uint8))[..., :3])


def test_half_alpha_gives_average() -> None:
    hand = _hand(np.full((H, W), 128, np.uint8))
    bg = _background()
    out = composite(hand, bg, soft_edge=0.0).astype(int)
    expected = (hand[..., :3].astype(int) + bg.astype(int)) / 2
    assert np.abs(out - expected).max() <= 1.0


def test_soft_edge_blends_the_border() -> None:
    alpha = _disc_alpha()
    white = np.full((H, W, 3), 255, np.uint8)
    hand = np.concatenate([white, alpha[..., None]], axis=-1)
    black = np.zeros((H, W, 3), np.uint8)
    hard = composite(hand, black, soft_edge=0.0)
    soft = composite(hand, black, soft_edge=1.0)
    assert set(np.unique(hard).tolist()) <= {0, 255}, "no blur -> binary alpha stays binary"
    y, x = np.mgrid[0:H, 0:W]
    r = np.hypot(y - H / 2, x - W / 2)
    inner_border = (r < 20) & (r > 19)
    values = soft[inner_border][:, 0].astype(int)
    assert values.size > 0
    assert np.all((values > 0) & (values < 255)), "the border band is intermediate"


def test_composite_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        composite(np.zeros((H, W, 3), np.uint8), _background())
    with pytest.raises(ValueError):
        composite(_hand(np.zeros((H, W), np.uint8)), np.zeros((H, W + 1, 3), np.uint8))


def test_disabled_augmentation_is_identity() -> None:
    augment = build_augmentation({"enabled": False})
    image = _background()
    assert np.array_equal(augment(image=image)["image"], image)


def test_default_augmentation_shape_dtype_and_changes_pixels() -> None:
    augment = build_augmentation(None)
    image = _background()
    hand = _hand(np.zeros((H, W), np.uint8))
    changed = 0
    for seed in range(20):
        out = blend_sample(hand, _FixedBackground(image), np.random.default_rng(seed), augment)
        assert out.shape == (H, W, 3)
        assert out.dtype == np.uint8
        changed += int(not np.array_equal(out, image))
    assert changed >= 14


def test_augmentation_deterministic_with_same_rng() -> None:
    augment = build_augmentation(None)
    other = build_augmentation(None)
    hand = _hand(_disc_alpha())
    source = BackgroundSource(size=H)
    for seed in range(5):
        a = blend_sample(hand, source, np.random.default_rng(seed), augment)
        b = blend_sample(hand, source, np.random.default_rng(seed), other)
        assert np.array_equal(a, b)
    outs = [blend_sample(hand, source, np.random.default_rng(s), augment) for s in range(5)]
    assert len({o.tobytes() for o in outs}) == 5


def test_blend_sample_without_augment_equals_composite() -> None:
    bg = _background()
    hand = _hand(_disc_alpha())
    out = blend_sample(hand, _FixedBackground(bg), np.random.default_rng(0), None)
    assert np.array_equal(out, composite(hand, bg))


def test_blend_sample_resizes_background() -> None:
    hand = _hand(_disc_alpha())
    out = blend_sample(hand, BackgroundSource(size=40), np.random.default_rng(0), None)
    assert out.shape == (H, W, 3)


def test_config_override_and_validation() -> None:
    cfg = {"transforms": [{"name": "GaussNoise", "p": 1.0, "params": {"std_range": [0.2, 0.3]}}]}
    augment = build_augmentation(cfg)
    image = np.full((H, W, 3), 128, np.uint8)
    out = blend_sample(
        _hand(np.zeros((H, W), np.uint8)),
        _FixedBackground(image),
        np.random.default_rng(0),
        augment,
    )
    assert out.std() > 10, "strong noise was applied"
    with pytest.raises(ValueError, match="HorizontalFlip"):
        build_augmentation({"transforms": [{"name": "HorizontalFlip", "p": 1.0}]})
    with pytest.raises(ValueError, match="std_rnge"):
        build_augmentation({"transforms": [{"name": "GaussNoise", "params": {"std_rnge": [0, 1]}}]})
    with pytest.raises(ValueError):
        build_augmentation({"transforms": [{"name": "NoSuchTransform"}]})
    with pytest.raises(ValueError):
        build_augmentation({"enable": False})


def test_defaults_not_mutated() -> None:
    before = copy.deepcopy(DEFAULT_AUGMENTATION)
    build_augmentation(None)
    build_augmentation(DEFAULT_AUGMENTATION)
    assert before == DEFAULT_AUGMENTATION


# ----------------------------------------------------------------------------- relight


def _grey_hand(size: int = 16) -> np.ndarray:
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[4:12, 4:12] = (120, 120, 120, 255)
    return rgba


def test_relight_gives_the_hand_the_colour_of_the_background_light() -> None:
    rgba = _grey_hand()
    red = np.zeros((30, 20, 3), np.uint8)
    red[...] = (200, 130, 90)  # warm light: red > green > blue
    out = relight(rgba, red, 1.0)
    hand = out[4:12, 4:12, :3].astype(int)
    assert hand[..., 0].min() > hand[..., 1].max() > hand[..., 2].max()  # red > green > blue
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    np.testing.assert_array_equal(out[rgba[..., 3] == 0], rgba[rgba[..., 3] == 0])
    half = relight(rgba, red, 0.5)[4:12, 4:12, :3].astype(int)
    assert hand[0, 0, 0] - hand[0, 0, 2] > half[0, 0, 0] - half[0, 0, 2] > 0  # strength scales


def test_relight_follows_the_brightness_of_the_background() -> None:
    rgba = _grey_hand()
    dark = np.full((8, 8, 3), 20, np.uint8)
    bright = np.full((8, 8, 3), 250, np.uint8)
    assert relight(rgba, dark, 1.0)[8, 8, 0] < 120 < relight(rgba, bright, 1.0)[8, 8, 0]


def test_relight_at_zero_strength_is_the_identity_and_bad_strength_is_refused() -> None:
    rgba = _grey_hand()
    background = np.full((8, 8, 3), 90, np.uint8)
    np.testing.assert_array_equal(relight(rgba, background, 0.0), rgba)
    with pytest.raises(ValueError, match="strength"):
        relight(rgba, background, 1.5)
