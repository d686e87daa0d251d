"""The arrays that define a parametric hand model, in handshape's conventions.

One container serves handshape's own open hand and an official MANO file read from disk: both are
"template + shape blend shapes + pose correctives + joint regressor + linear blend skinning".
Kinematic joints are in handshape's order (see `handshape.joints`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from handshape.joints import KINEMATIC_PARENTS, NUM_KINEMATIC


@dataclass(frozen=True)
class HandModelData:
    """A parametric hand model as plain numpy arrays (metres, right hand).

    Attributes:
        v_template: (N, 3) rest-pose vertices of the mean shape.
        faces: (F, 3) int triangle indices, counter-clockwise seen from outside.
        shapedirs: (N, 3, S) vertex offset per unit of each shape coefficient.
        posedirs: (N, 3, 9 * 15) pose-corrective offsets driven by (R_j - I) of joints 1..15
            (zeros for handshape's own model).
        j_regressor: (16, N) kinematic joints = j_regressor @ vertices.
        weights: (N, 16) skinning weights, rows sum to 1.
        tip_vertex_ids: (5,) the vertex that is each fingertip joint (thumb..little).
        parents: (16,) kinematic parent of each joint, -1 for the root.
        shape_names: a name per shape coefficient.
        hands_components: (45, 45) PCA basis of finger poses (rows are components).
        hands_mean: (45,) mean finger pose (axis-angle, joints 1..15).
    """

    v_template: np.ndarray
    faces: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    j_regressor: np.ndarray
    weights: np.ndarray
    tip_vertex_ids: np.ndarray
    parents: np.ndarray = field(default_factory=lambda: np.array(KINEMATIC_PARENTS))
    shape_names: tuple[str, ...] = ()
    hands_components: np.ndarray = field(default_factory=lambda: np.eye(45))
    hands_mean: np.ndarray = field(default_factory=lambda: np.zeros(45))

    def __post_init__(self) -> None:
        n = self.v_template.shape[0]
        checks = {
            "v_template": (self.v_template.shape, (n, 3)),
            "shapedirs": (self.shapedirs.shape[:2], (n, 3)),
            "posedirs": (self.posedirs.shape, (n, 3, 9 * (NUM_KINEMATIC - 1))),
            "j_regressor": (self.j_regressor.shape, (NUM_KINEMATIC, n)),
            "weights": (self.weights.shape, (n, NUM_KINEMATIC)),
            "tip_vertex_ids": (self.tip_vertex_ids.shape, (5,)),
            "parents": (self.parents.shape, (NUM_KINEMATIC,)),
        }
        for name, (got, want) in checks.items():
            if tuple(got) != want:
                raise ValueError(f"hand model array {name} has shape {tuple(got)}, expected {want}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"hand model faces have shape {self.faces.shape}, expected (F, 3)")
        if self.shape_names and len(self.shape_names) != self.shapedirs.shape[2]:
            raise ValueError("shape_names must name every shape coefficient")

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_shapes(self) -> int:
        return int(self.shapedirs.shape[2])

    def faces_hash(self) -> str:
        """A short digest of the topology, the key for per-mesh caches."""
        return hashlib.sha1(np.ascontiguousarray(self.faces, dtype=np.int64).tobytes()).hexdigest()[
            :16
        ]
