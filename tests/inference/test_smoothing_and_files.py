"""One Euro smoothing, and the mesh files predict writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from handshape.inference.mesh_files import write_mesh
from handshape.inference.smoothing import OneEuro


def test_a_still_noisy_signal_is_smoothed_and_a_moving_one_followed() -> None:
    rng = np.random.default_rng(0)
    still = OneEuro(min_cutoff=1.0, beta=0.0)
    noisy = 10 + rng.normal(0, 1, 300)
    out = np.array([still(np.array([x]), 1 / 30)[0] for x in noisy])
    assert out[50:].std() < 0.5 * noisy[50:].std()
    fast = OneEuro(min_cutoff=1.0, beta=1.0)
    ramp = np.arange(100) * 5.0
    followed = np.array([fast(np.array([x]), 1 / 30)[0] for x in ramp])
    slow = OneEuro(min_cutoff=1.0, beta=0.0)
    lagged = np.array([slow(np.array([x]), 1 / 30)[0] for x in ramp])
    assert abs(followed[-1] - ramp[-1]) < 0.5 * abs(lagged[-1] - ramp[-1])


def test_the_first_sample_passes_unchanged_and_bad_settings_are_refused() -> None:
    assert np.array_equal(OneEuro()(np.array([1.0, 2.0]), 0.1), [1.0, 2.0])
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuro(min_cutoff=0.0)


def test_meshes_are_written_as_binary_ply_and_text_obj(tmp_path: Path) -> None:
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    faces = np.array([[0, 1, 2]])
    ply = write_mesh(tmp_path / "t.ply", vertices, faces).read_bytes()
    assert b"element vertex 3" in ply and b"element face 1" in ply
    body = ply.split(b"end_header\n", 1)[1]
    assert np.allclose(np.frombuffer(body[:36], "<f4").reshape(3, 3), vertices)
    obj = write_mesh(tmp_path / "t.obj", vertices, faces).read_text().splitlines()
    assert obj[-1] == "f 1 2 3" and len(obj) == 4
    with pytest.raises(ValueError, match="unsupported mesh format"):
        write_mesh(tmp_path / "t.stl", vertices, faces)
