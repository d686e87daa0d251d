"""Stacked hourglass network (Newell et al., ECCV 2016) as used by Ge et al. (CVPR 2019).

The image (B, 3, S, S) is reduced by a stem to (B, C, S/4, S/4); ``num_stacks`` hourglass modules
then each predict 21 heat-maps (B, J, S/4, S/4) with intermediate supervision, and the last stack's
feature map (B, C, S/4, S/4) is handed, together with its heat-maps, to the residual encoder.

Layer choices follow the original: pre-activation bottleneck residual blocks (BN-ReLU-conv,
widths C/2, C/2, C), max-pool downsampling, nearest-neighbour upsampling plus a skip branch, and
after every stack a 1x1 heat-map head whose features and predictions are mapped back by 1x1 convs
and added to the stack input ("re-injection").
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

NormFactory = Callable[[int], nn.Module]


class Residual(nn.Module):
    """Pre-activation bottleneck residual block (Newell et al.'s "residual module").

    BN-ReLU-conv1x1(out/2) -> BN-ReLU-conv3x3(out/2) -> BN-ReLU-conv1x1(out), plus the input (passed
    through a 1x1 conv when the channel count changes). Spatial size is preserved.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def __init__(
        self, in_channels: int, out_channels: int, norm: NormFactory = nn.BatchNorm2d
    ) -> None:
        super().__init__()
        mid = max(out_channels // 2, 1)
        # Convs that feed a normalisation layer need no bias (BN's shift replaces it); the last conv
        # feeds the sum, which keeps its bias like the original.
        # The first ReLU is not in place: with a parameter-free ``norm`` (e.g. nn.Identity) it would
        # overwrite the block input, which the skip branch still needs.
        self.body = nn.Sequential(
            norm(in_channels),
            nn.ReLU(),
            nn.Conv2d(in_channels, mid, 1, bias=False),
            norm(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1, bias=False),
            norm(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 1),
        )
        # The identity is only possible when widths match; otherwise project with a 1x1 conv.
        self.skip: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.skip = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W)."""
        return self.skip(x) + self.body(x)


def _residual_stack(channels: int, num_blocks: int, norm: NormFactory) -> nn.Sequential:
    """``num_blocks`` width-preserving residual blocks: (B, C, H, W) -> (B, C, H, W)."""
    return nn.Sequential(*(Residual(channels, channels, norm) for _ in range(num_blocks)))


class Hourglass(nn.Module):
    """One recursive hourglass module of ``depth`` downsampling levels.

    At each level: an upper (skip) branch of residual blocks at the current resolution, and a lower
    branch that max-pools by 2, applies residual blocks, recurses (or, at the bottom, applies more
    residual blocks), applies residual blocks again and upsamples back (nearest) to be added to the
    skip branch.

    Shapes: (B, C, H, W) -> (B, C, H, W); H and W should be divisible by 2**depth (otherwise the
    upsampled branch is resized to the skip branch, which still works but is not the original).
    """

    def __init__(
        self,
        channels: int,
        depth: int = 4,
        blocks_per_level: int = 1,
        norm: NormFactory = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.up = _residual_stack(channels, blocks_per_level, norm)
        self.down = _residual_stack(channels, blocks_per_level, norm)
        self.inner: nn.Module = (
            Hourglass(channels, depth - 1, blocks_per_level, norm)
            if depth > 1
            else _residual_stack(channels, blocks_per_level, norm)
        )
        self.after = _residual_stack(channels, blocks_per_level, norm)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        skip = self.up(x)
        low = self.after(self.inner(self.down(F.max_pool2d(x, 2))))
        # Upsample to the skip's exact size rather than by a fixed factor, so odd sizes don't crash.
        return skip + F.interpolate(low, size=skip.shape[-2:], mode="nearest")


class StackedHourglass(nn.Module):
    """Stacked hourglass network with intermediate supervision.

    Args:
        num_stacks: number of hourglass modules (the paper uses 2).
        channels: feature width C inside the hourglasses (256 in the original).
        num_joints: number of heat-maps J per stack (21 hand joints).
        depth: downsampling levels per hourglass (4: S/4 -> S/64 at the bottom).
        blocks_per_level: residual blocks at each position of the hourglass (Newell's nModules).
        norm: normalisation layer factory, called with the channel count (BatchNorm2d default).

    Forward: image (B, 3, S, S) -> (heat-maps per stack: list of ``num_stacks`` tensors
    (B, J, S/4, S/4), final feature map (B, C, S/4, S/4)).
    """

    def __init__(
        self,
        num_stacks: int = 2,
        channels: int = 256,
        num_joints: int = 21,
        depth: int = 4,
        blocks_per_level: int = 1,
        norm: NormFactory = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if num_stacks < 1:
            raise ValueError(f"num_stacks must be >= 1, got {num_stacks}")
        if channels < 4 or channels % 4:
            raise ValueError(f"channels must be a positive multiple of 4, got {channels}")
        self.num_stacks = num_stacks
        self.channels = channels
        self.num_joints = num_joints

        # Stem to S/4. The original widths are 64 -> 128 -> 128 -> 256 for C = 256; they are scaled
        # with C so the cheap CPU presets get a proportionally cheap stem.
        quarter, half = channels // 4, channels // 2
        self.stem = nn.Sequential(
            nn.Conv2d(3, quarter, 7, stride=2, padding=3, bias=False),  # S/2
            norm(quarter),
            nn.ReLU(inplace=True),
            Residual(quarter, half, norm),
            nn.MaxPool2d(2),  # S/4
            Residual(half, half, norm),
            Residual(half, channels, norm),
        )

        self.hourglasses = nn.ModuleList(
            Hourglass(channels, depth, blocks_per_level, norm) for _ in range(num_stacks)
        )
        # Post-hourglass processing: residual blocks then a 1x1 conv-BN-ReLU ("lin" in the
        # original) produce the features the heat-map head reads from.
        self.post = nn.ModuleList(
            nn.Sequential(
                _residual_stack(channels, blocks_per_level, norm),
                nn.Conv2d(channels, channels, 1, bias=False),
                norm(channels),
                nn.ReLU(inplace=True),
            )
            for _ in range(num_stacks)
        )
        # Heat-maps are a linear read-out (no activation): they are regressed against Gaussians.
        self.heads = nn.ModuleList(nn.Conv2d(channels, num_joints, 1) for _ in range(num_stacks))
        # Re-injection for all but the last stack: both the features and the predictions are mapped
        # back to C channels and added to the stack input, so the next stack refines them.
        self.feature_back = nn.ModuleList(
            nn.Conv2d(channels, channels, 1) for _ in range(num_stacks - 1)
        )
        self.heatmap_back = nn.ModuleList(
            nn.Conv2d(num_joints, channels, 1) for _ in range(num_stacks - 1)
        )

    def forward(self, image: Tensor) -> tuple[list[Tensor], Tensor]:
        """Image (B, 3, S, S) -> ([(B, J, S/4, S/4)] * num_stacks, (B, C, S/4, S/4))."""
        x = self.stem(image)
        heatmaps: list[Tensor] = []
        features = x
        for i in range(self.num_stacks):
            features = self.post[i](self.hourglasses[i](x))
            heat = self.heads[i](features)
            heatmaps.append(heat)
            if i < self.num_stacks - 1:
                x = x + self.feature_back[i](features) + self.heatmap_back[i](heat)
        return heatmaps, features
