"""handshape: 3D hand shape and pose from a single RGB image."""

__version__ = "0.1.0"
