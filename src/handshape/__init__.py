"""handshape: 3D hand shape and pose from a single RGB image."""

from handshape import _moved

__version__ = "0.1.0"

_moved.install()  # modules that moved keep their old import paths, with a warning
