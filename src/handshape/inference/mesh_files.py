"""Writing a triangle mesh as PLY (binary, little-endian) or OBJ (text), atomically.

Hand-written rather than through trimesh: importing trimesh costs about 0.4 s, a sixth of what
one photograph may take as a whole `handshape predict` command, for a few lines of output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from handshape.safeio.atomic import atomic_write

FORMATS = ("ply", "obj")


def write_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """(N, 3) vertices and (F, 3) vertex indices to `path` (.ply or .obj), whole or not at all."""
    kind = Path(path).suffix.lower().lstrip(".")
    if kind not in FORMATS:
        raise ValueError(f"{path}: unsupported mesh format '.{kind}' (use .ply or .obj)")
    vertices = np.ascontiguousarray(vertices, dtype="<f4")
    faces = np.ascontiguousarray(faces, dtype="<i4")
    if kind == "ply":
        header = (
            "ply\nformat binary_little_endian 1.0\ncomment handshape\n"
            f"element vertex {len(vertices)}\nproperty float x\nproperty float y\n"
            f"property float z\nelement face {len(faces)}\n"
            "property list uchar int vertex_indices\nend_header\n"
        ).encode("ascii")
        rows = np.empty(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
        rows["n"], rows["v"] = 3, faces
        payload = header + vertices.tobytes() + rows.tobytes()
    else:
        lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices.tolist()]
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces.tolist()]
        payload = ("\n".join(lines) + "\n").encode("ascii")
    return atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(payload))
