"""Anatomical joint frames: the axes in which flexion, abduction and twist are measured.

Every kinematic joint gets a rest-pose frame with columns (flex, abd, twist):
- twist: along the bone the joint moves (joint -> next joint or fingertip);
- flex: the axis about which a positive rotation curls the bone towards the palm (for the thumb:
  towards the palm and across it, towards the little finger);
- abd: completes the right-handed frame; for the fingers a positive rotation swings the bone
  towards the thumb side.
The frames come from the rest joints alone, so handshape's own model and an official MANO model
get them the same way. The root (wrist) frame is the identity: the global rotation is unlimited.
"""

from __future__ import annotations

import numpy as np

from handshape.joints import KINEMATIC_TO_JOINT, NUM_KINEMATIC


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def palm_axes(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Palmar normal and ulnar direction (towards the little finger) of a right hand.

    joints: (21, 3) rest joints in project order. Returns two unit vectors (3,).
    """
    wrist, index_mcp, little_mcp = joints[0], joints[5], joints[17]
    palmar = _unit(np.cross(index_mcp - wrist, little_mcp - wrist))
    ulnar = _unit(little_mcp - index_mcp)
    return palmar, ulnar


def anatomical_frames(joints: np.ndarray) -> np.ndarray:
    """Rest frames of the 16 kinematic joints: (21, 3) -> (16, 3, 3), columns flex/abd/twist."""
    joints = np.asarray(joints, dtype=np.float64)
    palmar, ulnar = palm_axes(joints)
    thumb_towards = _unit(palmar + ulnar)
    frames = np.zeros((NUM_KINEMATIC, 3, 3))
    frames[0] = np.eye(3)
    for k in range(1, NUM_KINEMATIC):
        j = KINEMATIC_TO_JOINT[k]
        twist = _unit(joints[j + 1] - joints[j])
        towards = thumb_towards if k <= 3 else palmar
        flex = _unit(np.cross(twist, towards))
        abd = np.cross(twist, flex)
        frames[k] = np.stack([flex, abd, twist], axis=1)
    return frames
