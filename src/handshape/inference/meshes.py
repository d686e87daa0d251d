"""From hands found in a photograph to meshes in its camera frame.

Two ways, chosen by `handshape predict --model`:

- `KeypointMesher`: the keypoint network on each hand's landmarks (`handshape.data.
  keypoint_inputs`: the landmarks, the hand's presence score as every keypoint's confidence,
  MediaPipe's relative depths);
- `ImageMesher`: the image network on a square crop around each hand's landmarks (1.3x their
  box, as the image network's training crops fill 55-85 % of their side).

Both networks know right hands only: a left hand is mirrored on the way in (its landmarks, or
the photograph) and its mesh mirrored back on the way out (x negated in the camera frame, the
faces' winding reversed so that they face outwards again). Both answer in uvd; the hand is
placed at the wrist depth where its bones have the lengths of a hand of `hand_scale`
(`camera.root_depth`) unless the user gives that depth, then (`refine`, 0 to 1, default 1)
moved onto its landmarks' rays (`handshape.inference.refine`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from handshape.data.crop import box_from_joints, crop_image, crop_transform, mirror_intrinsics
from handshape.data.keypoint_inputs import keypoint_inputs
from handshape.geometry.camera import from_uvd, project
from handshape.handmodel.model import HandModel
from handshape.inference.camera import Camera, bone_ratios, root_depth
from handshape.inference.hands import Hand
from handshape.inference.refine import follow_weights, onto_rays
from handshape.nets.network import NetOutput

IMAGE_CROP_MARGIN = 1.3


@dataclass(frozen=True)
class HandMesh:
    """One hand's answer in the photograph's camera frame: joints_3d (21, 3) and vertices (N,
    3) in metres, joints_2d (21, 2) their projections (pixel centres at integers), faces (F, 3)
    facing outwards, and where it came from."""

    hand: Hand
    joints_3d: np.ndarray
    vertices: np.ndarray | None
    faces: np.ndarray
    joints_2d: np.ndarray
    root_depth: float
    hand_scale: float


class _Mesher:
    """What both meshers share: the network, the hand model's faces, bone ratios and scale."""

    def __init__(
        self,
        net: torch.nn.Module,
        cfg: dict[str, Any],
        hand_scale: float | None = None,
        refine: float = 1.0,
    ) -> None:
        self.net, self.cfg, self.refine = net, cfg, float(refine)
        self.size = int(cfg["model"]["input_size"])
        model = HandModel.load(cfg["handmodel"]["mano"])
        self.faces = model.data.faces.astype(np.int64)
        self.ratios = bone_ratios(model.rest_joints)
        self.follow = follow_weights(model.data.v_template, model.rest_joints)
        if hand_scale is not None and not hand_scale > 0:
            raise ValueError(f"--hand-scale must be a positive length in metres, got {hand_scale}")
        self.scale = float(hand_scale or model.rest_scale)

    @classmethod
    def load(cls, bundle: Path, hand_scale: float | None = None, refine: float = 1.0) -> _Mesher:
        """From an inference bundle (or checkpoint), as its inference copy."""
        from handshape.nets.bundle import load_network
        from handshape.nets.inference import for_inference

        net, cfg = load_network(bundle)
        with torch.inference_mode():
            fast = for_inference(net)
        return cls(fast, cfg, hand_scale, refine)

    def lift(
        self,
        out: NetOutput,
        K_square: torch.Tensor,
        K: torch.Tensor,
        keypoints: torch.Tensor,
        depth: torch.Tensor | None,
        scale: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(joints (B, 21, 3), vertices (B, N, 3) or None, root depth (B,)) in the camera frame
        of K (B, 3, 3), from the network's uvd answer in its square (K_square): placed at
        `depth` (B,) (None: `camera.root_depth`) with hand scale `scale` (B,) (None: the
        mesher's), then moved onto the rays of keypoints (B, 21, 2), pixels of K's image, by
        the refinement's strength."""
        scale = torch.full((len(K),), self.scale) if scale is None else scale.float()
        if depth is None:
            z = root_depth(out.joints, K_square, self.size, scale, self.ratios).float()
        else:
            z = depth.float()
        joints = from_uvd(out.joints, K_square, z, scale, self.size).float()
        vertices = None
        if out.vertices is not None:
            vertices = from_uvd(out.vertices, K_square, z, scale, self.size).float()
        if self.refine > 0:
            joints, vertices = onto_rays(
                joints, vertices, keypoints.float(), K.float(), self.follow, self.refine
            )
        return joints, vertices, z

    def _place(
        self,
        hands: list[Hand],
        out: NetOutput,
        K_square: torch.Tensor,
        K: torch.Tensor,
        camera: Camera,
        depth: float | None,
        width: int,
    ) -> list[HandMesh]:
        """Lift the answers in the frames the network saw (K: a left hand's mirrored, in an
        image `width` pixels wide), mirror left hands back, project."""
        b = len(hands)
        keypoints = torch.from_numpy(np.stack([self._as_right(h, width)[:, :2] for h in hands]))
        given = None if depth is None else torch.full((b,), float(depth))
        joints, vertices, z = self.lift(out, K_square, K, keypoints, given)
        left = torch.tensor([h.handedness == "left" for h in hands])
        mirror = torch.where(left, -1.0, 1.0)[:, None]
        joints = joints.clone()
        joints[..., 0] *= mirror
        if vertices is not None:
            vertices = vertices.clone()
            vertices[..., 0] *= mirror
        joints_2d = project(joints, camera.K()[None].expand(b, 3, 3))
        results = []
        for k, hand in enumerate(hands):
            faces = self.faces[:, ::-1].copy() if bool(left[k]) else self.faces
            results.append(
                HandMesh(
                    hand,
                    joints[k].numpy().astype(np.float64),
                    None if vertices is None else vertices[k].numpy().astype(np.float64),
                    faces,
                    joints_2d[k].numpy().astype(np.float64),
                    float(z[k]),
                    self.scale,
                )
            )
        return results

    @staticmethod
    def _image_K(hand: Hand, camera: Camera, width: int) -> torch.Tensor:
        """(3, 3) the camera as the network sees the hand: mirrored for a left hand."""
        K = camera.K().double().numpy()
        if hand.handedness == "left":
            K = mirror_intrinsics(K, width)
        return torch.from_numpy(K).float()

    @staticmethod
    def _as_right(hand: Hand, width: int) -> np.ndarray:
        """(21, 3) the hand's landmarks, mirrored across the image when it is a left hand."""
        points = hand.landmarks.copy()
        if hand.handedness == "left":
            points[:, 0] = (width - 1) - points[:, 0]
        return points


class KeypointMesher(_Mesher):
    """The keypoint network on each hand's landmarks (module docstring)."""

    @torch.inference_mode()
    def __call__(
        self, image: np.ndarray, hands: list[Hand], camera: Camera, depth: float | None = None
    ) -> list[HandMesh]:
        if not hands:
            return []
        width = image.shape[1]
        points = torch.from_numpy(np.stack([self._as_right(h, width) for h in hands])).float()
        K = torch.stack([self._image_K(h, camera, width) for h in hands])
        presence = torch.tensor([[h.presence] * 21 for h in hands])
        features, K_square = keypoint_inputs(
            points[..., :2], presence, points[..., 2], K, self.size
        )
        return self._place(hands, self.net(features), K_square, K, camera, depth, width)


class ImageMesher(_Mesher):
    """The image network on a crop around each hand (module docstring)."""

    @torch.inference_mode()
    def __call__(
        self, image: np.ndarray, hands: list[Hand], camera: Camera, depth: float | None = None
    ) -> list[HandMesh]:
        if not hands:
            return []
        width = image.shape[1]
        crops, squares = [], []
        K = torch.stack([self._image_K(h, camera, width) for h in hands])
        for hand, K_hand in zip(hands, K, strict=True):
            left = hand.handedness == "left"
            source = np.ascontiguousarray(image[:, ::-1]) if left else image
            box = box_from_joints(self._as_right(hand, width)[:, :2], margin=IMAGE_CROP_MARGIN)
            A = crop_transform(box, self.size)
            crops.append(crop_image(source, A, self.size))
            squares.append(torch.from_numpy(A @ K_hand.double().numpy()).float())
        tensor = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)
        return self._place(hands, self.net(tensor), torch.stack(squares), K, camera, depth, width)
