"""The keypoint network on a data set's hand crops, through MediaPipe's landmarks: what
`handshape eval --model keypoints` scores under each benchmark's protocol.

A data set's crop is already a square around one right hand (left hands mirrored by the
reader) with its intrinsics known, so detection is skipped: the landmark network reads the
whole crop (`HandFinder.read_box`: at four turns, then refined as the finder refines), and the
keypoint network lifts them at the root depth and hand scale the protocol
gives (the paper's test-time assumption), refined onto the landmarks.
"""

from __future__ import annotations

import numpy as np
import torch

from handshape.data.keypoint_inputs import keypoint_inputs
from handshape.inference.hands import HandFinder
from handshape.inference.meshes import KeypointMesher
from handshape.nets.network import CameraHand


class CropLifter:
    """(images (B, 3, S, S) in [0, 1], their K (B, 3, 3), root depths (B,), scales (B,)) ->
    the keypoint network's joints and vertices in each crop's camera frame."""

    def __init__(self, finder: HandFinder, mesher: KeypointMesher) -> None:
        self.finder, self.mesher = finder, mesher

    def landmarks(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """(21, 3) landmarks in pixels and presence of a crop's hand: read in the crop's
        central square, whose 1.5x margin (`HandFinder.read_box`) is the whole crop."""
        size = image.shape[0]
        # Pixel centres run 0..size-1: the crop's centre is (size - 1) / 2, its side size.
        centre, half = (size - 1) / 2.0, size / 3.0
        box = np.array([centre - half, centre - half, centre + half, centre + half])
        found = self.finder.read_box(image, box)
        return found.points.copy(), found.presence

    @torch.inference_mode()
    def __call__(
        self, images: torch.Tensor, K: torch.Tensor, root_depth: torch.Tensor, scale: torch.Tensor
    ) -> CameraHand:
        crops = (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
        read = [self.landmarks(np.ascontiguousarray(c)) for c in crops]
        points = torch.from_numpy(np.stack([p for p, _ in read])).float()
        presence = torch.tensor([[s] * 21 for _, s in read]).float()
        K = K.float()
        features, K_square = keypoint_inputs(
            points[..., :2], presence, points[..., 2], K, self.mesher.size
        )
        joints, vertices, _ = self.mesher.lift(
            self.mesher.net(features), K_square, K, points[..., :2], root_depth, scale
        )
        return CameraHand(vertices, joints)
