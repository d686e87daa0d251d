"""The parametric hand as a differentiable torch module: shape, pose, translation -> mesh, joints.

Forward pass (MANO's formulation; pure torch, batched, any device and float dtype):
    v_shaped = v_template + shapedirs . beta
    J        = j_regressor . v_shaped                       (16 kinematic joints)
    v_posed  = v_shaped + posedirs . (R_1..15 - I)           (zero for handshape's own model)
    G_k      = G_parent(k) [R_k | J_k - J_parent(k)]         (kinematic chain)
    v        = sum_k w_k G_k (v_posed - J_k) + translation   (linear blend skinning)
Fingertip joints are surface vertices, so the 21 joints follow the skin.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from handshape.geometry.camera import hand_scale
from handshape.geometry.rotations import axis_angle_to_matrix
from handshape.handmodel.data import HandModelData
from handshape.handmodel.poses import GestureLibrary, JointLimits
from handshape.joints import KINEMATIC_TO_JOINT, NUM_JOINTS, NUM_KINEMATIC, TIP_JOINTS


class HandOutput(NamedTuple):
    vertices: torch.Tensor  # (B, N, 3)
    joints: torch.Tensor  # (B, 21, 3) project order


class HandModel(nn.Module):
    """A `HandModelData` made differentiable.

    Buffers are float64 and follow `.to(device)`; outputs take the dtype of the inputs (the
    default dtype when none is given).
    """

    def __init__(self, data: HandModelData) -> None:
        super().__init__()
        self.data = data
        # Kept in float64 so that a float64 forward is exact; a float32 input casts them down.
        as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
        self.register_buffer("v_template", as_t(data.v_template))
        self.register_buffer("shapedirs", as_t(data.shapedirs))
        self.register_buffer("posedirs", as_t(data.posedirs).reshape(-1, data.posedirs.shape[2]))
        self.register_buffer("j_regressor", as_t(data.j_regressor))
        self.register_buffer("weights", as_t(data.weights))
        self.register_buffer("faces", torch.as_tensor(data.faces, dtype=torch.long))
        self.register_buffer(
            "tip_vertex_ids", torch.as_tensor(data.tip_vertex_ids, dtype=torch.long)
        )
        self.parents = [int(p) for p in data.parents]
        self.has_pose_correctives = bool(np.any(data.posedirs))

    @classmethod
    def default(cls) -> HandModel:
        """handshape's own open hand model, shipped with the package."""
        from handshape.handmodel.template_builder import load_npz

        return cls(load_npz())

    @classmethod
    def load(cls, mano: str | Path | None = None) -> HandModel:
        """The official MANO model (or a file in its layout) at `mano`, else handshape's own."""
        from handshape.handmodel.mano_io import read_mano

        return cls(read_mano(Path(mano))) if mano else cls.default()

    @property
    def num_shapes(self) -> int:
        return int(self.shapedirs.shape[-1])

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @cached_property
    def rest_joints(self) -> np.ndarray:
        """(21, 3) joints of the mean shape at rest, float64."""
        d = self.data
        out = np.zeros((NUM_JOINTS, 3))
        out[list(KINEMATIC_TO_JOINT)] = d.j_regressor @ d.v_template
        out[list(TIP_JOINTS)] = d.v_template[d.tip_vertex_ids]
        return out

    @cached_property
    def rest_scale(self) -> float:
        """The hand scale (`geometry.camera.hand_scale`) of the mean shape at rest, metres."""
        return float(hand_scale(torch.from_numpy(self.rest_joints)[None])[0])

    @cached_property
    def limits(self) -> JointLimits:
        return JointLimits.load(self.rest_joints)

    def gesture(
        self, name: str, library: GestureLibrary | None = None, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Axis-angle pose (16, 3) of a named gesture (default dtype unless given)."""
        library = library or GestureLibrary.load()
        pose = library.pose(name, self.limits)
        return pose.to(device=self.v_template.device, dtype=dtype or torch.get_default_dtype())

    def forward(
        self,
        shape: torch.Tensor | None = None,
        pose: torch.Tensor | None = None,
        translation: torch.Tensor | None = None,
    ) -> HandOutput:
        """shape (B, S), pose (B, 16, 3) axis-angle, translation (B, 3) -> HandOutput.

        Any argument may be None (zeros); the batch size comes from the first one given.
        """
        ref = next((t for t in (shape, pose, translation) if t is not None), None)
        b = 1 if ref is None else ref.shape[0]
        dtype = torch.get_default_dtype() if ref is None else ref.dtype
        device = self.v_template.device
        if shape is None:
            shape = torch.zeros(b, self.num_shapes, dtype=dtype, device=device)
        if pose is None:
            pose = torch.zeros(b, NUM_KINEMATIC, 3, dtype=dtype, device=device)
        if shape.shape[-1] != self.num_shapes:
            raise ValueError(
                f"shape has {shape.shape[-1]} coefficients, model has {self.num_shapes}"
            )
        if pose.shape[-2:] != (NUM_KINEMATIC, 3):
            raise ValueError(f"pose must be (B, 16, 3), got {tuple(pose.shape)}")
        buffers = {
            k: getattr(self, k).to(dtype)
            for k in ("v_template", "shapedirs", "posedirs", "j_regressor", "weights")
        }

        v_shaped = buffers["v_template"] + torch.einsum("vcs,bs->bvc", buffers["shapedirs"], shape)
        joints = torch.einsum("jv,bvc->bjc", buffers["j_regressor"], v_shaped)
        rot = axis_angle_to_matrix(pose)  # (B, 16, 3, 3)
        v_posed = v_shaped
        if self.has_pose_correctives:
            eye = torch.eye(3, dtype=dtype, device=device)
            feat = (rot[:, 1:] - eye).reshape(b, -1)
            v_posed = v_shaped + (feat @ buffers["posedirs"].T).reshape(b, -1, 3)

        transforms = self._chain(rot, joints)  # (B, 16, 4, 4) world from rest-joint frame
        # Skinning matrices move rest points: G_k applied to (v - J_k).
        skin_t = transforms[..., :3, 3] - torch.einsum(
            "bkij,bkj->bki", transforms[..., :3, :3], joints
        )
        blend_r = torch.einsum("vk,bkij->bvij", buffers["weights"], transforms[..., :3, :3])
        blend_t = torch.einsum("vk,bki->bvi", buffers["weights"], skin_t)
        vertices = torch.einsum("bvij,bvj->bvi", blend_r, v_posed) + blend_t

        out_joints = torch.zeros(b, NUM_JOINTS, 3, dtype=dtype, device=device)
        out_joints = out_joints.index_copy(
            1, torch.tensor(KINEMATIC_TO_JOINT, device=device), transforms[..., :3, 3]
        )
        out_joints = out_joints.index_copy(
            1, torch.tensor(TIP_JOINTS, device=device), vertices[:, self.tip_vertex_ids]
        )
        if translation is not None:
            vertices = vertices + translation[:, None]
            out_joints = out_joints + translation[:, None]
        return HandOutput(vertices, out_joints)

    def _chain(self, rot: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
        """World transforms (B, 16, 4, 4) of each joint frame, composed root to leaves."""
        b = rot.shape[0]
        bottom = torch.zeros(b, 1, 4, dtype=rot.dtype, device=rot.device)
        bottom[..., 3] = 1
        world: list[torch.Tensor] = []
        for k, parent in enumerate(self.parents):
            offset = joints[:, k] if parent < 0 else joints[:, k] - joints[:, parent]
            local = torch.cat([torch.cat([rot[:, k], offset[..., None]], -1), bottom], -2)
            world.append(local if parent < 0 else world[parent] @ local)
        return torch.stack(world, 1)
