"""The notebooks run top to bottom on a tiny checkpoint (as a user would run them)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
import yaml
from nbclient import NotebookClient
from PIL import Image

from handshape.config import PACKAGE_CONFIGS
from handshape.studies.run import run_study
from handshape.studies.spec import load_study

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_qualitative_notebook_draws_every_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_heads: dict[str, Any]
) -> None:
    figure = tmp_path / "figure.png"
    spec = ";".join(f"{name}={tiny_heads['out'] / name / 'bundle'}" for name in ("A", "B"))
    monkeypatch.setenv("HANDSHAPE_CHECKPOINTS", spec)
    monkeypatch.setenv("HANDSHAPE_DATA", str(tiny_heads["data"] / "val"))
    monkeypatch.setenv("HANDSHAPE_FIGURE", str(figure))
    monkeypatch.setenv("HANDSHAPE_COUNT", "2")
    notebook = nbformat.read(REPO / "notebooks" / "qualitative.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute(env=dict(os.environ))
    image = np.asarray(Image.open(figure))
    assert image.ndim == 3 and image.std() > 0
    # two checkpoints + ground truth, two images each: six tiles of three images
    assert image.shape[1] > 2 * 3 * 160


@pytest.fixture(scope="module")
def tiny_heads(
    tmp_path_factory: pytest.TempPathFactory, tiny_data_overrides: Callable[[Path], list[str]]
) -> dict[str, Any]:
    """Two tiny checkpoints (Graph CNN and MANO heads) trained by a study."""
    base = tmp_path_factory.mktemp("nb")
    study_file = base / "nb.yaml"
    variants = {"A": [], "B": ["model.head.name=mano"]}
    study_file.write_text(
        yaml.safe_dump({"title": "nb", "experiment": "tiny", "variants": variants})
    )
    run_study(
        load_study(study_file),
        base / "out",
        tiny_data_overrides(base),
        PACKAGE_CONFIGS,
        progress=False,
    )
    return {"out": base / "out", "data": base / "data"}
