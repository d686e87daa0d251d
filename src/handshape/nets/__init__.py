"""Networks: the image encoder (stacked hourglass + residual encoder) and interchangeable heads.

Conventions shared by every module here:
- images (B, 3, S, S) float in [0, 1], S = 256 for the paper (config-driven);
- heat-maps (B, 21, S/4, S/4);
- the latent vector (B, L) from the residual encoder;
- vertices and joints in "uvd": u, v the pixel position in the input crop normalised to [-1, 1]
  (u = 2 * (px + 0.5) / S - 1, pixel centres at integer px), d the depth relative to the root
  joint (the wrist, joint 0) divided by the hand scale |J9 - J10| (dimensionless). See
  handshape.geometry.camera for the conversions and the lift to camera space.
"""
