"""A batched differentiable depth rasteriser in pure torch (the renderer of the depth loss L_D).

Meshes (B, N, 3) in the OpenCV camera frame (x right, y down, z forward, z > 0 in front) are
drawn with the intrinsics K of a crop (pixel centres at integer coordinates, as
`handshape.geometry.camera`) into a (B, H, W) depth map and a (B, H, W) coverage map.

How it draws (vectorised over the batch; no per-mesh or per-pixel Python loop):
1. Project the vertices. Every face enumerates the pixel centres inside its screen bounding box
   (at the paper's 32 x 32 a hand's faces are about a pixel wide, so a face has 0-2 candidates).
2. Screen-space barycentrics l_i decide which centres a face covers (edges inclusive, so a
   centre on a shared edge is claimed by both faces and the z-buffer picks one; either
   winding); the depth there is perspective-correct, z = 1 / sum_i(l_i / z_i).
3. A z-buffer keeps the nearest face per pixel: one `scatter_reduce(amin)` over int64 keys
   (the float32 bit pattern of the depth, which orders like the depth for positive numbers,
   shifted up, with the face index in the low bits), so the winner's identity comes for free.
4. The whole of it is one autograd node with a hand-written backward pass (`_Rasterise`): the
   forward pass keeps what the winners' derivatives need, so the backward pass costs a few
   vector operations per covered pixel and band pixel, not per candidate, and no autograd
   graph of small ops is built.
Back faces are culled by default where that cannot change the image: a closed, consistently
wound mesh wholly beyond the near plane (a hand); each mesh's outside is found from the sign
of the volume it encloses, so a mirrored copy is handled too.

Gradients at silhouettes: an anti-aliased edge, as DEODR (de La Gorce et al., TPAMI 2011) does.
A hard z-buffer has no gradient with respect to where an edge lies: a pixel is covered or not.
A depth loss built on it could only move covered surface along z and could never pull a finger
onto the hand pixels it misses. Here every contour edge of the projected mesh (an edge whose
two faces fold onto the same side of it, or a boundary edge) draws a band one pixel wide on its
outer side, in which the edge's share of the pixel falls linearly from 1 at the edge to 0 a pixel
away: alpha = 1 - distance (pixels). alpha depends on the edge's end points, so moving an edge
by a fraction of a pixel changes the image smoothly. The band is depth-tested against the
z-buffer: where it lies over background the pixel gets coverage alpha and the edge's depth;
where it lies over a farther part of the hand (a finger in front of the palm) coverage stays 1
and the depth blends, alpha * z_edge + (1 - alpha) * z_behind; under a nearer surface it is
hidden. Why this and not a soft rasteriser (SoftRas-style blur of every face): the band leaves
every covered pixel's depth exact (what the checks against pyrender and DEODR test), costs one
extra pass over the few hundred contour edges instead of a blurred pass over all faces, and
the hard mask `covered` comes out exact, with no threshold to pick. Its reach is one pixel: an
edge more than a pixel away from a missed hand pixel gets no pull from it (at 32 x 32 a pixel
spans several millimetres of a hand filling the crop). `handshape.lit.losses.rendered_depth_loss`
is the L_D that uses both outputs.

Outputs (`DepthRender`):
- depth (B, H, W): the camera z (unit of the vertices) of the surface at each pixel centre;
  in an outer band pixel the depth of its contour edge there; 0 where coverage is 0 (nothing
  within a pixel of the centre). Use `depth * covered` for a plain depth map.
- coverage (B, H, W) in [0, 1]: 1 on covered pixels, alpha in an outer band, 0 elsewhere.
- covered (B, H, W) bool: the hard mask, a face contains the pixel centre (no gradient).

Faces with a vertex at z <= `near` are not drawn (no clipping): meshes must lie in front of
the camera. Works on CPU and CUDA, float32 and float64 (the dtype of the vertices). First
derivatives only: the hand-written backward pass is not itself differentiable.

The package: `renderer` holds what other modules import (`render_depth`, `DepthRenderer`:
input checks around the one autograd node `_Rasterise`, forward and hand-written backward
pass); `topology` the edge structure (`MeshTopology`, `mesh_topology`); `raster` the forward
pass (projection, z-buffer, the winners' depth, contour bands); `culling` which faces enter the
z-buffer; `backward` the derivatives the autograd node returns.
"""

from handshape.render.depth_raster.renderer import DepthRender, DepthRenderer, render_depth
from handshape.render.depth_raster.topology import MeshTopology, mesh_topology

__all__ = ["DepthRender", "DepthRenderer", "MeshTopology", "mesh_topology", "render_depth"]
