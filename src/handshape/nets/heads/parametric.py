"""Mesh heads that go through a parametric hand model: the baselines of Table 2 (paper Sec. 5.3).

- `ManoHead` ("MANO-based"): three FC layers regress the model's shape coefficients, the pose
  (16 x 3 axis-angle, the first row the global rotation) and a weak-perspective camera; the hand
  model's forward gives the mesh. It runs on handshape's own hand model or on the official MANO
  model when the experiment names MANO_RIGHT.pkl (`handmodel.mano`).
- `DirectLBSHead` ("direct LBS"): FC layers regress the 21 joints (root-relative, in hand-scale
  units) and a camera; closed-form inverse kinematics gives the pose that makes the mean-shape
  template reach them, and linear blend skinning of the template gives the mesh.

Both emit the same output as the Graph CNN head, uvd per vertex, through a weak-perspective
camera: with the posed model's joints J and scale h = |J9 - J10|,

    u, v = sigma * (x, y - J0_xy) / h + (t_u, t_v),   d = (z - J0_z) / h,

which is the uvd of `handshape.geometry.camera` for an orthographic view of the hand (the model
frame of the posed hand is the camera frame: x right, y down, z away from the camera).
sigma = SIGMA0 * exp(s) with (s, t_u, t_v) regressed. The hand model is not part of the state
dict (it is fixed data) and moves to the latent's device on first use.

Both start (output layer at zero) from the rest hand turned by ``start_rotation`` (axis-angle,
camera frame). The default, pi about x, stands the hand upright in the image with its back to the
camera. A data set's mean orientation (scripts/mean_orientation.py) is a closer first guess, but
on the quick preset it trained both heads to worse meshes than the default (docs/benchmarks.md).

Shapes: B batch, L latent size, N vertices of the hand model, S its shape coefficients.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from handshape.geometry.camera import hand_scale
from handshape.geometry.rotations import axis_angle_to_matrix
from handshape.handmodel.ik import inverse_kinematics
from handshape.handmodel.model import HandModel
from handshape.joints import NUM_KINEMATIC

__all__ = ["SIGMA0", "DirectLBSHead", "ManoHead", "weak_perspective_uvd"]

# uv units per hand-scale unit at s = 0: the synthetic crops show the hand (about 4 scale units
# long) over 55-85 % of the crop side, i.e. over about 1.4 of the 2 uv units.
SIGMA0 = 0.35
UPRIGHT_BACK = (math.pi, 0.0, 0.0)  # the default start_rotation (see the module docstring)


def weak_perspective_uvd(
    points: torch.Tensor, joints: torch.Tensor, camera: torch.Tensor
) -> torch.Tensor:
    """Points of a posed hand -> uvd under a weak-perspective camera.

    Args:
        points: (B, P, 3) points in the camera-aligned model frame (any unit).
        joints: (B, 21, 3) the same hand's joints (root = joint 0; scale from joints 9 and 10).
        camera: (B, 3) raw (s, t_u, t_v); sigma = SIGMA0 * exp(s).

    Returns:
        (B, P, 3) u, v, d.
    """
    h = hand_scale(joints)[:, None, None]  # (B, 1, 1)
    rel = (points - joints[:, :1]) / h
    sigma = SIGMA0 * torch.exp(camera[:, :1])[:, None]  # (B, 1, 1)
    uv = sigma * rel[..., :2] + camera[:, None, 1:3]
    return torch.cat([uv, rel[..., 2:]], dim=-1)


def _mlp(latent_dim: int, hidden: int, out: int) -> nn.Sequential:
    """Three FC layers; the last starts at zero so the head starts from the rest hand."""
    last = nn.Linear(hidden, out)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(
        nn.Linear(latent_dim, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        last,
    )


class _ParametricHead(nn.Module):
    """Holds a hand model outside the state dict and keeps it on the latent's device."""

    def __init__(
        self, latent_dim: int, hand: HandModel, start_rotation: tuple[float, ...] = UPRIGHT_BACK
    ) -> None:
        super().__init__()
        if latent_dim <= 0:
            raise ValueError(f"latent_dim must be positive, got {latent_dim}")
        if len(start_rotation) != 3:
            raise ValueError(f"start_rotation must be 3 numbers (axis-angle), got {start_rotation}")
        self.latent_dim = latent_dim
        self._hand = [hand]  # a list: not a registered sub-module, so not in the state dict
        start = torch.tensor([float(a) for a in start_rotation], dtype=torch.float32)
        self.register_buffer("start_rotation", start, persistent=False)

    @property
    def hand(self) -> HandModel:
        return self._hand[0]

    def _hand_on(self, like: torch.Tensor) -> HandModel:
        if self.hand.v_template.device != like.device:
            self._hand[0] = self.hand.to(like.device)
        return self.hand

    def _check(self, latent: torch.Tensor) -> None:
        if latent.dim() != 2 or latent.shape[1] != self.latent_dim:
            raise ValueError(
                f"expected a latent of shape (B, {self.latent_dim}), got {tuple(latent.shape)}"
            )


class ManoHead(_ParametricHead):
    """Latent (B, L) -> shape, pose and camera of a parametric hand -> vertices (B, N, 3) uvd.

    Args:
        latent_dim: L.
        hand: the parametric model (handshape's own or MANO read by `read_mano`).
        hidden: width of the two hidden FC layers.
        shape_scale: the regressed shape coefficients are multiplied by this (they are ~N(0, 1)).
        start_rotation: axis-angle (3,) of the global rotation the head starts from.
    """

    def __init__(
        self,
        latent_dim: int,
        hand: HandModel,
        hidden: int = 512,
        shape_scale: float = 1.0,
        start_rotation: tuple[float, ...] = UPRIGHT_BACK,
    ) -> None:
        super().__init__(latent_dim, hand, start_rotation)
        self.num_shapes = hand.num_shapes
        self.shape_scale = shape_scale
        self.fc = _mlp(latent_dim, hidden, self.num_shapes + NUM_KINEMATIC * 3 + 3)

    def parameters_of(self, latent: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, L) -> shape (B, S), pose (B, 16, 3) axis-angle, camera (B, 3)."""
        self._check(latent)
        out = self.fc(latent)
        s = self.num_shapes
        pose = out[:, s : s + NUM_KINEMATIC * 3].view(-1, NUM_KINEMATIC, 3)
        start = self.start_rotation.to(pose.dtype)[None, None]
        pose = torch.cat([pose[:, :1] + start, pose[:, 1:]], dim=1)
        return {"shape": out[:, :s] * self.shape_scale, "pose": pose, "camera": out[:, -3:]}

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        p = self.parameters_of(latent)
        posed = self._hand_on(latent)(shape=p["shape"], pose=p["pose"])
        return weak_perspective_uvd(posed.vertices, posed.joints, p["camera"])


class DirectLBSHead(_ParametricHead):
    """Latent (B, L) -> 21 joints and a camera -> IK -> LBS of the template -> (B, N, 3) uvd.

    The joints are regressed root-relative in hand-scale units; the template (mean shape) is
    posed by `inverse_kinematics`, so bone directions follow the regressed joints and bone
    lengths stay the template's.

    Args:
        latent_dim: L.
        hand: the parametric model whose template is skinned.
        hidden: width of the two hidden FC layers.
        start_rotation: axis-angle (3,) turning the rest joints the head starts from.
    """

    def __init__(
        self,
        latent_dim: int,
        hand: HandModel,
        hidden: int = 512,
        start_rotation: tuple[float, ...] = UPRIGHT_BACK,
    ) -> None:
        super().__init__(latent_dim, hand, start_rotation)
        self.fc = _mlp(latent_dim, hidden, 21 * 3 + 3)
        rest = torch.as_tensor(hand.rest_joints, dtype=torch.float32)
        turn = axis_angle_to_matrix(self.start_rotation)
        rest = (rest - rest[:1]) / hand_scale(rest[None])[0] @ turn.T
        self.register_buffer("rest", rest, persistent=False)

    def joints_and_camera(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) -> (B, 21, 3) regressed joints (root-relative, hand-scale units), (B, 3)."""
        self._check(latent)
        out = self.fc(latent)
        return self.rest + out[:, :63].view(-1, 21, 3), out[:, 63:]

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        joints, camera = self.joints_and_camera(latent)
        hand = self._hand_on(latent)
        # IK in float64: the closed form divides by bone lengths and plane normals.
        pose, translation = inverse_kinematics(hand, joints.double())
        posed = hand(pose=pose, translation=translation)
        vertices, posed_joints = posed.vertices.to(latent.dtype), posed.joints.to(latent.dtype)
        return weak_perspective_uvd(vertices, posed_joints, camera)
