"""The whole network of Fig. 3: stacked hourglass -> residual encoder -> mesh head -> joints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import nn

from handshape.geometry.graclus import MeshHierarchy
from handshape.handmodel.model import HandModel
from handshape.nets.encoder import ResidualEncoder
from handshape.nets.heads import build_head
from handshape.nets.hourglass import StackedHourglass
from handshape.nets.pose_regressor import PoseRegressor


def _plain(section: Any) -> dict[str, Any]:
    """A config section as keyword arguments (lists, e.g. graph stages, become tuples)."""

    def convert(value: Any) -> Any:
        if isinstance(value, list | tuple) or type(value).__name__ == "ListConfig":
            return tuple(convert(v) for v in value)
        return value

    return {k: convert(v) for k, v in dict(section or {}).items()}


class NetOutput(NamedTuple):
    heatmaps: list[torch.Tensor]  # per stack (B, 21, S/4, S/4)
    latent: torch.Tensor  # (B, L)
    vertices: torch.Tensor  # (B, N, 3) uvd
    joints: torch.Tensor  # (B, 21, 3) uvd, regressed from the vertices


class HandNet(nn.Module):
    """Image (B, 3, S, S) -> heat-maps, latent, mesh and joints; sizes from the model config.

    hierarchy: the coarsening tree of the output mesh (the Graph CNN head and the pose
    regressor); hand: the parametric hand model, needed by the mano and lbs heads.
    """

    def __init__(
        self,
        cfg: Any,
        hierarchy: MeshHierarchy,
        hand: HandModel | None = None,
        num_joints: int = 21,
    ) -> None:
        super().__init__()
        hg = cfg.hourglass
        self.input_size = int(cfg.input_size)
        self.hourglass = StackedHourglass(
            num_stacks=hg.num_stacks, channels=hg.channels, num_joints=num_joints, depth=hg.depth
        )
        self.encoder = ResidualEncoder(
            in_channels=num_joints + hg.channels,
            channels=cfg.encoder.channels,
            latent_dim=cfg.encoder.latent_dim,
            input_resolution=self.input_size // 4,
        )
        # model.head.name picks the head; model.head.<name> holds that head's settings, so
        # every head's settings can sit in one config and a swap is `model.head.name=mano`.
        name = str(cfg.head.name)
        context: dict[str, Any] = {"hierarchy": hierarchy}
        if hand is not None:
            context["hand"] = hand  # the parametric heads (mano, lbs) pose this model
        settings = cfg.head.get(name)
        flat = {k: v for k, v in cfg.head.items() if k != "name"}
        if settings is None and not any(isinstance(v, Mapping) for v in flat.values()):
            settings = flat  # bundles written before heads had their own sections
        self.head = build_head(name, context, latent_dim=cfg.encoder.latent_dim, **_plain(settings))
        self.pose_regressor = PoseRegressor(
            hierarchy, num_joints=num_joints, **_plain(cfg.pose_regressor)
        )

    def forward(self, image: torch.Tensor) -> NetOutput:
        heatmaps, features = self.hourglass(image)
        latent = self.encoder(torch.cat([heatmaps[-1], features], dim=1))
        vertices = self.head(latent)
        return NetOutput(heatmaps, latent, vertices, self.pose_regressor(vertices))
