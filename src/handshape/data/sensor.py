"""What a consumer RGB-D camera does to a clean rendered depth map and colour image.

The demonstration domain of weak supervision (`handshape.data.demo`) needs depth maps that look
like a structured-light / stereo sensor's, not like a renderer's z-buffer:

- axial noise whose standard deviation grows with the square of the distance (sigma(z) =
  noise_at_1m * z^2, the usual model for disparity-based sensors, Khoshelham & Elberink 2012);
- holes along depth edges (the projector and camera see the edge from two places; pixels there
  have no valid match and read 0), dropped with probability `edge_drop`;
- quantisation to steps that also grow with z^2 (depth comes from integer disparities).

All functions are pure: the randomness comes from the generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["SensorModel", "degrade_depth", "degrade_image", "depth_edges"]


@dataclass(frozen=True)
class SensorModel:
    """Settings of `degrade_depth` and `degrade_image` (metres, pixels, [0, 255] intensities)."""

    noise_at_1m: float = 0.0025  # depth noise sigma at 1 m (grows with z^2)
    quantum_at_1m: float = 0.002  # depth step at 1 m (grows with z^2)
    edge_jump: float = 0.01  # a depth difference to a neighbour above this marks an edge pixel
    edge_drop: float = 0.6  # probability that an edge pixel reads no depth
    blur_sigma: float = 1.0  # Gaussian blur of the colour image, px
    image_noise: float = 4.0  # sigma of the colour image's additive noise, in 0..255 units


def depth_edges(depth: np.ndarray, jump: float) -> np.ndarray:
    """(H, W) bool: valid pixels (depth > 0) with a 4-neighbour that is invalid or more than
    `jump` away in depth, i.e. the pixels on a depth discontinuity."""
    valid = depth > 0
    padded = np.pad(depth, 1, mode="edge")
    pvalid = np.pad(valid, 1, mode="edge")
    edge = np.zeros_like(valid)
    h, w = depth.shape
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        other = padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        other_valid = pvalid[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        edge |= ~other_valid | (np.abs(other - depth) > jump)
    return edge & valid


def degrade_depth(depth: np.ndarray, rng: np.random.Generator, model: SensorModel) -> np.ndarray:
    """A clean depth map (H, W) in metres, 0 = no surface -> what the sensor reads, float32.

    Pixels without a surface stay 0; edge pixels (`depth_edges`) read 0 with probability
    `model.edge_drop`; every other reading is z + N(0, (noise_at_1m z^2)^2) rounded to a
    multiple of quantum_at_1m z^2. The input is not modified.
    """
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth must be an (H, W) map, got shape {depth.shape}")
    valid = depth > 0
    z2 = np.square(depth)
    noisy = depth + model.noise_at_1m * z2 * rng.standard_normal(depth.shape)
    step = np.maximum(model.quantum_at_1m * z2, 1e-9)
    quantised = np.round(noisy / step) * step
    holes = depth_edges(depth, model.edge_jump) & (rng.random(depth.shape) < model.edge_drop)
    keep = valid & ~holes & (quantised > 0)
    return np.where(keep, quantised, 0.0).astype(np.float32)


def degrade_image(image: np.ndarray, rng: np.random.Generator, model: SensorModel) -> np.ndarray:
    """(H, W, 3) uint8 -> the same blurred by `blur_sigma` px and with Gaussian noise, uint8."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    out = image
    if model.blur_sigma > 0:
        blurred = Image.fromarray(image).filter(ImageFilter.GaussianBlur(model.blur_sigma))
        out = np.asarray(blurred)
    noisy = out.astype(np.float64) + model.image_noise * rng.standard_normal(out.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)
