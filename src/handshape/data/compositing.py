"""Compositing rendered hands over backgrounds, and photometric augmentation.

Synthetic samples are stored as straight (non-premultiplied) RGBA ``uint8`` crops of shape
``(H, W, 4)``; alpha is the anti-aliased hand coverage. At training time each one is
pasted over a fresh random background (:func:`composite`) and then colour / blur / noise /
compression augmented (:func:`build_augmentation`), all driven by one
``numpy.random.Generator`` (:func:`blend_sample`).

Lighting that belongs to the picture (:func:`relight`) is applied here, at compositing time,
and not when rendering: backgrounds are drawn at training time from a folder the generator never
sees, and a fresh one every epoch, so a render cannot know its background. Every pixel of the
hand is albedo times the light arriving there; moving all lights' colour and exposure towards
the background's mean colour and brightness is one gain per channel on the rendered colours,
exact for a change of the lights' common colour. It cannot move shadows or add light from a
bright side of the picture; the render's own key / fill / rim set-up keeps providing shape.

The augmentation is photometric only: keypoint and mesh labels are pixel coordinates of
the crop, so any geometric change would silently invalidate them.
"""

from __future__ import annotations

import copy
import inspect
import os
import random
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

if TYPE_CHECKING:
    import albumentations as A

# YAML-friendly: a config file can restate this structure with other values. Each entry
# is {name: albumentations class, p: probability, params: constructor arguments}; the
# composites OneOf / SomeOf / Sequential take a nested "transforms" list instead of params.
DEFAULT_AUGMENTATION: dict[str, Any] = {
    "enabled": True,
    "transforms": [
        {
            "name": "ColorJitter",
            "p": 0.8,
            "params": {
                "brightness": [0.7, 1.3],
                "contrast": [0.7, 1.3],
                "saturation": [0.6, 1.4],
                # Small hue shifts only: large ones turn skin green/blue, which no test
                # image contains.
                "hue": [-0.05, 0.05],
            },
        },
        {"name": "RandomGamma", "p": 0.3, "params": {"gamma_limit": [70, 150]}},
        {
            "name": "OneOf",
            "p": 0.3,
            "transforms": [
                {
                    "name": "GaussianBlur",
                    "p": 1.0,
                    "params": {"blur_limit": [3, 7], "sigma_limit": [0.3, 1.5]},
                },
                {"name": "MotionBlur", "p": 1.0, "params": {"blur_limit": [3, 9]}},
            ],
        },
        # std_range is a fraction of the dtype maximum (255) in albumentations 2.x.
        {"name": "GaussNoise", "p": 0.3, "params": {"std_range": [0.01, 0.05]}},
        {"name": "ImageCompression", "p": 0.3, "params": {"quality_range": [40, 95]}},
    ],
}

_COMPOSITES = frozenset({"OneOf", "SomeOf", "Sequential"})
_CFG_KEYS = frozenset({"enabled", "transforms"})
_ENTRY_KEYS = frozenset({"name", "p", "params", "transforms", "n", "replace"})


class BackgroundSampler(Protocol):
    """Anything with ``sample(rng) -> (H, W, 3) uint8``, e.g. ``BackgroundSource``."""

    def sample(self, rng: np.random.Generator) -> np.ndarray: ...


def _albumentations() -> ModuleType:
    """Import albumentations with its online update check switched off.

    albumentations 2.x queries PyPI on import unless NO_ALBUMENTATIONS_UPDATE is set;
    training nodes may be offline and nothing is meant to touch the network at run time.
    The import is deferred to here so the variable is set before the first import.
    """
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations

    return albumentations


def composite(rgba: np.ndarray, background: np.ndarray, soft_edge: float = 0.7) -> np.ndarray:
    """Straight-alpha "over" compositing of a rendered hand onto a background.

    Args:
        rgba: ``(H, W, 4)`` uint8, straight (non-premultiplied) colour plus coverage alpha.
        background: ``(H, W, 3)`` uint8 RGB.
        soft_edge: sigma in pixels of a Gaussian blur applied to alpha first so the hand's
            border blends into the background instead of showing a render-perfect cut-out;
            0 disables it. The blurred alpha is never allowed above the original one: in
            straight alpha the colour of fully transparent pixels is meaningless (usually
            black), so feathering outwards would draw a dark halo around the hand.

    Returns:
        ``(H, W, 3)`` uint8 RGB. Exactly the background where the (feathered) alpha is 0 and
        exactly the hand colour where it is 255.
    """
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"rgba must have shape (H, W, 4), got {rgba.shape}")
    if background.shape != (*rgba.shape[:2], 3):
        raise ValueError(
            f"background must have shape {(*rgba.shape[:2], 3)} to match rgba, "
            f"got {background.shape}"
        )
    if rgba.dtype != np.uint8 or background.dtype != np.uint8:
        raise ValueError(f"expected uint8 inputs, got {rgba.dtype} and {background.dtype}")
    if soft_edge < 0:
        raise ValueError(f"soft_edge must be >= 0, got {soft_edge}")

    alpha = rgba[..., 3]
    if soft_edge > 0:
        # mode="nearest": a hand cut by the crop border must stay opaque up to that border.
        blurred = gaussian_filter(alpha.astype(np.float32), sigma=soft_edge, mode="nearest")
        alpha = np.minimum(np.rint(blurred), alpha).astype(np.uint8)
    weight = alpha.astype(np.uint32)[..., None]
    # Integer blend with rounding: bit-exact at alpha 0 and 255 (float math can be off by
    # one there), and the largest intermediate, 255 * 255 + 127, fits easily.
    blended = (
        rgba[..., :3].astype(np.uint32) * weight
        + background.astype(np.uint32) * (255 - weight)
        + 127
    ) // 255
    return blended.astype(np.uint8)


# sRGB code value -> linear light (a 2.2 gamma; close enough for a change of light colour).
_LINEAR = (np.arange(256, dtype=np.float32) / 255.0) ** 2.2


def relight(rgba: np.ndarray, background: np.ndarray, strength: float) -> np.ndarray:
    """The rendered hand as if lit by the light of the background it is pasted onto.

    Args:
        rgba: ``(H, W, 4)`` uint8 straight-alpha render.
        background: ``(h, w, 3)`` uint8 RGB, any size.
        strength: 0 leaves the render alone; 1 gives the hand the background's light colour
            (its mean colour, normalised, each channel's gain kept within 0.6-1.6) and moves
            its exposure to the background's mean brightness (by the square root of the
            ratio, at most 1.8x either way).

    Returns:
        ``(H, W, 4)`` uint8, alpha unchanged.
    """
    if not 0 <= strength <= 1:
        raise ValueError(f"relight strength must lie in [0, 1], got {strength}")
    hand = rgba[..., 3] > 0
    if strength == 0 or not hand.any():
        return rgba
    scene = _LINEAR[background[::4, ::4].reshape(-1, 3)].mean(axis=0) + 1e-4
    tint = np.clip(scene / scene.mean(), 0.6, 1.6)
    colour = _LINEAR[rgba[..., :3][hand]].mean()
    exposure = np.clip(np.sqrt(scene.mean() / (colour + 1e-4)), 1 / 1.8, 1.8)
    gain = (tint * exposure) ** strength
    # One lookup table per channel: code value in -> code value out.
    tables = np.rint(255.0 * np.clip(_LINEAR[:, None] * gain, 0, 1) ** (1 / 2.2)).astype(np.uint8)
    out = rgba.copy()
    for c in range(3):
        out[..., c] = np.where(hand, tables[rgba[..., c], c], rgba[..., c])
    return out


def _as_tuples(value: Any) -> Any:
    """YAML gives lists where albumentations expects tuples; convert recursively."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(_as_tuples(v) for v in value)
    return value


def _build_transform(entry: Mapping[str, Any], alb: ModuleType) -> Any:
    """One albumentations transform from a ``{name, p, params | transforms}`` entry."""
    if not isinstance(entry, Mapping) or "name" not in entry:
        raise ValueError(f"augmentation entry needs a 'name': {entry!r}")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise ValueError(f"augmentation entry {entry['name']!r} has unknown keys {sorted(unknown)}")
    name = str(entry["name"])
    cls = getattr(alb, name, None)
    if not isinstance(cls, type):
        raise ValueError(f"unknown albumentations transform {name!r}")
    p = float(entry.get("p", 1.0))
    if name in _COMPOSITES:
        children = [_build_transform(child, alb) for child in entry.get("transforms", [])]
        extra = {k: entry[k] for k in ("n", "replace") if k in entry}
        return cls(children, p=p, **extra)
    if not issubclass(cls, alb.ImageOnlyTransform):
        # Labels are pixel coordinates; a geometric transform would silently corrupt them.
        raise ValueError(
            f"{name} is not a photometric (image-only) albumentations transform; geometric "
            "augmentation must also move the labels and cannot be configured here"
        )
    params = {str(k): _as_tuples(v) for k, v in dict(entry.get("params") or {}).items()}
    # albumentations only warns about unknown arguments; a misspelt config key must not be
    # silently ignored.
    accepted = set(inspect.signature(cls).parameters)
    misspelt = set(params) - accepted
    if misspelt:
        raise ValueError(
            f"unknown parameters {sorted(misspelt)} for {name}; accepted: {sorted(accepted)}"
        )
    try:
        return cls(**params, p=p)
    except TypeError as exc:
        raise ValueError(f"bad parameters for {name}: {exc}") from exc


def build_augmentation(cfg: Mapping[str, Any] | None = None) -> A.Compose:
    """Photometric augmentation pipeline for ``(H, W, 3)`` uint8 images.

    Args:
        cfg: ``None`` for :data:`DEFAULT_AUGMENTATION`; otherwise a mapping with optional
            keys ``enabled`` (``False`` gives an identity pipeline) and ``transforms`` (a list
            in the format of :data:`DEFAULT_AUGMENTATION`, replacing the default list). Only
            image-only albumentations transforms (and OneOf / SomeOf / Sequential of them)
            are accepted. Pass plain containers (``OmegaConf.to_container``) from configs.

    Returns:
        An ``albumentations.Compose``; call it as ``augment(image=img)["image"]``. Seed it
        per sample through :func:`blend_sample` for reproducibility.
    """
    alb = _albumentations()
    if cfg is None:
        cfg = DEFAULT_AUGMENTATION
    unknown = set(cfg) - _CFG_KEYS
    if unknown:
        raise ValueError(f"unknown augmentation config keys {sorted(unknown)}")
    if not cfg.get("enabled", True):
        return alb.Compose([])
    entries = cfg.get("transforms", DEFAULT_AUGMENTATION["transforms"])
    # deepcopy: the default dict is module state and must not be aliased by a pipeline.
    transforms = [_build_transform(entry, alb) for entry in copy.deepcopy(list(entries))]
    return alb.Compose(transforms)


def _resize_rgb(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(h, w, 3)`` uint8 -> ``(height, width, 3)`` uint8, bilinear."""
    resized = Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def blend_sample(
    rgba: np.ndarray,
    background_source: BackgroundSampler,
    rng: np.random.Generator,
    augment: A.Compose | None = None,
    *,
    soft_edge: float = 0.7,
    light: float = 0.0,
    camera: A.Compose | None = None,
) -> np.ndarray:
    """Training image from a rendered sample: random background, composite, augment.

    Args:
        rgba: ``(H, W, 4)`` uint8 straight-alpha render.
        background_source: draws ``(S, S, 3)`` uint8 backgrounds; resized to ``(H, W)`` if
            ``S`` differs.
        rng: the only source of randomness; the same state gives the same image.
        augment: pipeline from :func:`build_augmentation`, or ``None`` to skip augmenting.
        soft_edge: alpha feathering sigma in pixels, see :func:`composite`.
        light: strength of :func:`relight` from the drawn background (0: off).
        camera: a pipeline from :func:`build_augmentation` simulating the camera (white
            balance, exposure, blur, noise, JPEG), applied last; None to skip.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    height, width = rgba.shape[:2]
    background = background_source.sample(rng)
    if background.shape[:2] != (height, width):
        background = _resize_rgb(background, height, width)
    if light > 0:
        rgba = relight(rgba, background, light)
    image = composite(rgba, background, soft_edge=soft_edge)
    for pipeline in (augment, camera):
        if pipeline is not None:
            image = _apply(pipeline, image, rng)
    return image


def _apply(pipeline: A.Compose, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    seed = int(rng.integers(2**31))
    # One shared generator pair for the whole pipeline rather than Compose.set_random_seed,
    # which gives every child transform an identically seeded generator of its own: their
    # "apply with probability p" draws would then be identical and all transforms would
    # fire or skip together.
    pipeline.set_random_state(np.random.default_rng(seed), random.Random(seed))
    out = pipeline(image=image)["image"]
    return np.ascontiguousarray(out, dtype=np.uint8)
