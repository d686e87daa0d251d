"""Joint conventions shared by every part of handshape.

The project order of the 21 joints (shared/DATASETS.md): 0 wrist, then thumb, index, middle, ring,
little, each from base to tip (thumb: CMC, MCP, IP, tip; fingers: MCP, PIP, DIP, tip).

The kinematic tree has 16 joints (the wrist plus three per finger); fingertips are mesh vertices,
as in MANO. Inside handshape the 16 kinematic joints are ordered like the 21 joints without the
tips: wrist, thumb1-3, index1-3, middle1-3, ring1-3, little1-3. Files in MANO's own order are
permuted at the border (see `handshape.handmodel.mano_io`).
"""

from __future__ import annotations

import numpy as np

FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "little")

JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "little_mcp", "little_pip", "little_dip", "little_tip",
)  # fmt: skip
NUM_JOINTS = 21
NUM_KINEMATIC = 16

# Index into the 21 joints of each kinematic joint, and of each fingertip.
KINEMATIC_TO_JOINT: tuple[int, ...] = (0, *(1 + 4 * f + s for f in range(5) for s in range(3)))
TIP_JOINTS: tuple[int, ...] = tuple(4 + 4 * f for f in range(5))

# Parent of each kinematic joint (-1 for the root): each finger's first joint hangs off the wrist.
KINEMATIC_PARENTS: tuple[int, ...] = (
    -1,
    *(0 if s == 0 else 1 + 3 * f + s - 1 for f in range(5) for s in range(3)),
)

# Parent of each of the 21 joints in the skeleton drawn for figures and bone-length losses.
JOINT_PARENTS: tuple[int, ...] = (
    -1,
    *(0 if s == 0 else 1 + 4 * f + s - 1 for f in range(5) for s in range(4)),
)

# Hand scale (shared/DATASETS.md): the middle finger's MCP-PIP bone.
SCALE_BONE: tuple[int, int] = (9, 10)

# MANO's kinematic order is wrist, index, middle, little, ring, thumb (three joints each).
_MANO_FINGER_ORDER = ("index", "middle", "little", "ring", "thumb")
MANO_TO_KINEMATIC: tuple[int, ...] = (
    0,
    *(1 + 3 * FINGERS.index(name) + s for name in _MANO_FINGER_ORDER for s in range(3)),
)
"""MANO kinematic joint i is handshape kinematic joint MANO_TO_KINEMATIC[i]."""

# MANO's fingertip vertex ids (FreiHAND convention), in handshape's finger order.
MANO_TIP_VERTEX_IDS: tuple[int, ...] = (744, 320, 443, 555, 672)


def assemble_joints(kinematic: np.ndarray, tips: np.ndarray) -> np.ndarray:
    """Interleave kinematic joints (..., 16, 3) and fingertips (..., 5, 3) into (..., 21, 3)."""
    out = np.zeros((*kinematic.shape[:-2], NUM_JOINTS, kinematic.shape[-1]), kinematic.dtype)
    out[..., list(KINEMATIC_TO_JOINT), :] = kinematic
    out[..., list(TIP_JOINTS), :] = tips
    return out
