"""Headless mesh rendering and figure helpers.

``backend`` picks a headless OpenGL platform (EGL or OSMesa) and patches numpy 2
incompatibilities before pyrender is imported; ``offscreen`` renders a triangle mesh
to RGB + metric depth with a hand-friendly material and light rig; ``contact_sheet``
lays labelled renders out in a grid PNG for visual inspection.

Import :mod:`handshape.render.backend` (or call :func:`backend.import_pyrender`)
before anything else imports ``OpenGL`` or ``pyrender``: PyOpenGL fixes its platform
on first import.
"""
