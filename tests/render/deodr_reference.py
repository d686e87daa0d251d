"""DEODR's depth renderer on handshape's conventions: the reference of the depth rasteriser's
tests and benchmark (DEODR is a dev dependency; src/ never imports it)."""

from __future__ import annotations

import numpy as np
import torch


def deodr_depth(
    vertices: torch.Tensor, faces: np.ndarray, K: np.ndarray, height: int, width: int
) -> torch.Tensor:
    """One mesh: (N, 3) float64 camera-frame vertices (OpenCV frame) -> (H, W) depth, 0 on the
    background, with DEODR's one-pixel anti-aliased edges; differentiable through DEODR's own
    backward. `faces` must wind counter-clockwise seen from outside (as handshape's hand)."""
    from deodr.pytorch import CameraPytorch, ColoredTriMeshPytorch, Scene3DPytorch

    mesh = ColoredTriMeshPytorch(
        np.asarray(faces), vertices=vertices, clockwise=False, colors=np.zeros((len(vertices), 1))
    )
    scene = Scene3DPytorch()
    scene.set_mesh(mesh)
    scene.set_background_color(np.zeros(1))
    # integer_pixel_centers: pixel (0, 0) has its centre at (0, 0), handshape's convention.
    camera = CameraPytorch(
        extrinsic=np.eye(3, 4), intrinsic=np.asarray(K, float), height=height, width=width
    )
    return scene.render_depth(camera, depth_scale=1.0)[..., 0]
