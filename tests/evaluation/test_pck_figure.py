"""The Fig. 9-style comparison plot: written atomically, for RHD and STB, refusing the rest."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from handshape.evaluation.pck_figure import _spread, plot_pck_vs_published


def test_writes_a_png_for_each_benchmark_and_leaves_no_temporary(tmp_path) -> None:
    errors = np.abs(np.random.default_rng(0).normal(scale=20.0, size=(50, 21)))
    errors[0, 3] = np.nan  # a joint not evaluated in one sample
    for dataset in ("rhd", "stb"):
        out = plot_pck_vs_published(
            {"ours": errors, "ours x2": 2 * errors}, dataset, tmp_path / f"{dataset}.png"
        )
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rhd.png", "stb.png"]


def test_refuses_unknown_benchmarks_and_empty_input(tmp_path) -> None:
    with pytest.raises(ValueError, match="freihand"):
        plot_pck_vs_published({"ours": np.zeros((2, 21))}, "freihand", tmp_path / "f.png")
    with pytest.raises(ValueError, match="at least one"):
        plot_pck_vs_published({}, "rhd", tmp_path / "f.png")
    assert list(tmp_path.iterdir()) == []


def test_ladder_labels_keep_their_distance_and_stay_below_the_top() -> None:
    heights = _spread([0.9, 0.994, 0.994, 0.998], gap=0.01, top=1.0)
    assert all(b - a >= 0.01 - 1e-12 for a, b in pairwise(heights))
    assert heights[-1] <= 1.0 + 1e-12
    assert _spread([0.5, 0.7], gap=0.01, top=1.0) == [0.5, 0.7]  # far apart: unchanged
