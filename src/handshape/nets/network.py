"""The whole network of Fig. 3: stacked hourglass -> residual encoder -> mesh head -> joints.

What the network reads is a setting, ``model.input``: ``image`` (the paper's: a crop through
the stacked hourglass and residual encoder) or ``keypoints`` (21 keypoints with confidences and
relative depths through `KeypointEncoder`, features from `handshape.data.keypoint_inputs`); the
latent vector, the heads, the pose regressor and the uvd output are the same for both.

Where the joints come from is a setting, ``model.pose_from``: ``mesh`` (the paper's method: the
linear graph regressor on the head's vertices) or ``latent`` (`LatentPoseRegressor` on the latent
vector: with ``model.head.name: none`` the pose-only "Baseline 1" of Fig. 8, with a mesh head the
"task transfer" network, whose mesh joints still train the end-to-end stage).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from omegaconf import OmegaConf
from torch import nn

from handshape.data.keypoint_inputs import num_features as keypoint_features
from handshape.geometry.camera import from_uvd
from handshape.geometry.hierarchy import MeshHierarchy
from handshape.geometry.mesh_graph import mesh_hierarchy
from handshape.handmodel.model import HandModel
from handshape.nets.encoder import ResidualEncoder
from handshape.nets.heads import build_head
from handshape.nets.hourglass import StackedHourglass
from handshape.nets.keypoint_encoder import KeypointEncoder
from handshape.nets.latent_pose import LatentPoseRegressor
from handshape.nets.pose_regressor import PoseRegressor

POSE_SOURCES = ("mesh", "latent")
INPUTS = ("image", "keypoints")
NO_HEAD = "none"  # model.head.name of a pose-only network


def _plain(section: Any) -> dict[str, Any]:
    """A config section as keyword arguments (lists, e.g. graph stages, become tuples)."""

    def convert(value: Any) -> Any:
        if isinstance(value, list | tuple) or type(value).__name__ == "ListConfig":
            return tuple(convert(v) for v in value)
        return value

    return {k: convert(v) for k, v in dict(section or {}).items()}


class NetOutput(NamedTuple):
    heatmaps: list[torch.Tensor]  # per stack (B, 21, S/4, S/4); none for a keypoint network
    latent: torch.Tensor  # (B, L)
    vertices: torch.Tensor | None  # (B, N, 3) uvd; None for a pose-only network
    joints: torch.Tensor  # (B, 21, 3) uvd: the network's answer (from model.pose_from)
    mesh_joints: torch.Tensor | None  # (B, 21, 3) uvd regressed from the vertices; None if no mesh


class CameraHand(NamedTuple):
    """A network's answer in the camera frame (metres)."""

    vertices: torch.Tensor | None  # (B, N, 3); None for a pose-only network
    joints: torch.Tensor  # (B, 21, 3)


class HandNet(nn.Module):
    """Image (B, 3, S, S) or keypoint features (B, 21 * 4 + 3) -> heat-maps, latent, mesh and
    joints; sizes from the model config.

    hierarchy: the coarsening tree of the output mesh (the Graph CNN head and the pose
    regressor); hand: the parametric hand model, needed by the mano and lbs heads.

    Attributes: ``head`` and ``pose_regressor`` (None for a pose-only network), ``latent_pose``
    (None unless ``model.pose_from: latent``).
    """

    def __init__(
        self,
        cfg: Any,
        hierarchy: MeshHierarchy,
        hand: HandModel | None = None,
        num_joints: int = 21,
    ) -> None:
        super().__init__()
        self.input_size = int(cfg.input_size)
        self.input = str(cfg.get("input", "image"))  # bundles from before the setting: image
        if self.input not in INPUTS:
            raise ValueError(f"model.input must be one of {INPUTS}, got '{self.input}'")
        self.hourglass: StackedHourglass | None = None
        self.encoder: ResidualEncoder | None = None
        self.keypoint_encoder: KeypointEncoder | None = None
        if self.input == "image":
            hg = cfg.hourglass
            self.hourglass = StackedHourglass(
                num_stacks=hg.num_stacks,
                channels=hg.channels,
                num_joints=num_joints,
                depth=hg.depth,
            )
            self.encoder = ResidualEncoder(
                in_channels=num_joints + hg.channels,
                channels=cfg.encoder.channels,
                latent_dim=cfg.encoder.latent_dim,
                input_resolution=self.input_size // 4,
            )
        else:
            self.keypoint_encoder = KeypointEncoder(
                keypoint_features(num_joints),
                cfg.encoder.latent_dim,
                **_plain(cfg.get("keypoint_encoder")),
            )
        # model.head.name picks the head; model.head.<name> holds that head's settings, so
        # every head's settings can sit in one config and a swap is `model.head.name=mano`.
        name = str(cfg.head.name)
        pose_from = str(cfg.get("pose_from", "mesh"))  # bundles from before the setting: mesh
        if pose_from not in POSE_SOURCES:
            raise ValueError(f"model.pose_from must be one of {POSE_SOURCES}, got '{pose_from}'")
        if name == NO_HEAD and pose_from != "latent":
            raise ValueError(
                "model.head.name=none (no mesh) needs model.pose_from=latent: the joints of a "
                "pose-only network come from the latent vector"
            )
        self.head: nn.Module | None = None
        self.pose_regressor: PoseRegressor | None = None
        if name != NO_HEAD:
            context: dict[str, Any] = {"hierarchy": hierarchy}
            if hand is not None:
                context["hand"] = hand  # the parametric heads (mano, lbs) pose this model
            settings = cfg.head.get(name)
            flat = {k: v for k, v in cfg.head.items() if k != "name"}
            if settings is None and not any(isinstance(v, Mapping) for v in flat.values()):
                settings = flat  # bundles written before heads had their own sections
            self.head = build_head(
                name, context, latent_dim=cfg.encoder.latent_dim, **_plain(settings)
            )
            self.pose_regressor = PoseRegressor(
                hierarchy, num_joints=num_joints, **_plain(cfg.pose_regressor)
            )
        # Built last, so that the modules before it start from the same random weights whether
        # or not it exists (a task-transfer network trains the same end-to-end stage).
        self.latent_pose: LatentPoseRegressor | None = None
        if pose_from == "latent":
            self.latent_pose = LatentPoseRegressor(
                cfg.encoder.latent_dim, num_joints, **_plain(cfg.get("latent_pose"))
            )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> HandNet:
        """The network of a resolved experiment config (its `model` and `handmodel` sections):
        the one way every command builds a network."""
        hand = HandModel.load(cfg["handmodel"]["mano"])
        model = cfg["model"]
        hierarchy = mesh_hierarchy(hand.data.faces, hand.num_vertices, levels=model["graph_levels"])
        return cls(OmegaConf.create(model), hierarchy, hand)

    def lift(
        self,
        out: NetOutput,
        K: torch.Tensor,
        root_depth: torch.Tensor,
        scale: torch.Tensor,
    ) -> CameraHand:
        """The output's mesh and joints in the camera frame, given what the paper assumes known
        at test time: K (B, 3, 3) of the network's input crop, the root's depth (B,) and the hand
        scale (B,), in metres."""

        def lifted(uvd: torch.Tensor) -> torch.Tensor:
            return from_uvd(uvd, K, root_depth, scale, self.input_size)

        vertices = None if out.vertices is None else lifted(out.vertices)
        return CameraHand(vertices, lifted(out.joints))

    @property
    def has_mesh(self) -> bool:
        return self.head is not None

    def forward(self, x: torch.Tensor) -> NetOutput:
        """x: images (B, 3, S, S) in [0, 1], or keypoint features for ``model.input:
        keypoints``."""
        if self.keypoint_encoder is not None:
            heatmaps: list[torch.Tensor] = []
            latent = self.keypoint_encoder(x)
        else:
            assert self.hourglass is not None and self.encoder is not None
            heatmaps, features = self.hourglass(x)
            latent = self.encoder(torch.cat([heatmaps[-1], features], dim=1))
        vertices = mesh_joints = None
        if self.head is not None and self.pose_regressor is not None:
            vertices = self.head(latent)
            mesh_joints = self.pose_regressor(vertices)
        joints = self.latent_pose(latent) if self.latent_pose is not None else mesh_joints
        assert joints is not None  # __init__ refuses a network without a joint source
        return NetOutput(heatmaps, latent, vertices, joints, mesh_joints)
