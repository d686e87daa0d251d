"""Back-face culling: which faces of each mesh enter the z-buffer (all, or the front faces of a
mesh seen from outside, that mesh's outside found from the sign of the volume it encloses)."""

from __future__ import annotations

import torch

from handshape.render.depth_raster.raster import FaceFrame


def drawn_faces(
    frame: FaceFrame, z: torch.Tensor, near: float, batch: int, cull: bool | None
) -> torch.Tensor:
    """(B*F,) the faces that enter the z-buffer: float 0 / 1, or bool where the frame has an
    `ok` mask. cull: False none culled, True those wound clockwise seen from outside, None per
    mesh by its enclosed volume (a closed, consistently wound mesh; see `render_depth`)."""
    # Counter-clockwise seen from outside is clockwise on the image (y points down): a
    # negative signed area. outside: per mesh, the sign of the area of a face seen from
    # outside (its back), 0 to cull none.
    if cull is None:
        # (x, y, z) -> (pixel x, pixel y, z) keeps orientations (its Jacobian determinant is
        # fx fy / z^2 > 0), so by the divergence theorem the volume a closed mesh encloses
        # there, sum_f (area_f / 2) (mean corner z), is positive when its faces are wound
        # counter-clockwise seen from outside and negative when clockwise. Meshes reaching the
        # near plane, or whose sum is not finite, are not culled.
        volume = frame.area * (frame.z[0] + frame.z[1] + frame.z[2])
        volume = volume.view(batch, -1).sum(1)
        outside = volume.sign()
        if frame.ok is not None:
            whole = volume.isfinite() & (z > near).all(1)
            outside = torch.where(whole, outside, 0)
        outside = outside.unsqueeze(1)
    else:
        outside = frame.area.new_full((1, 1), 1.0 if cull else 0.0)
    area = frame.area.view(batch, -1)
    if frame.ok is not None:
        culled = (area * outside > 0) & (outside != 0)
        return frame.ok & ~culled.view(-1)
    # Float arithmetic on sign(area) (0 for a degenerate face): front faces -> 1, back faces
    # -> 0 where culled, 1 where not.
    side = area.sign()
    drawn = (side * outside).neg_().clamp_min_(0)  # front faces of culled meshes
    if bool((outside == 0).any()):
        drawn = drawn + side.abs() * (1 - outside.abs())  # every face of the others
    return drawn.view(-1)
