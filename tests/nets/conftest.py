"""Fixtures of the network tests: the hand model and its mesh hierarchy."""

from __future__ import annotations

import pytest

from handshape.geometry.hierarchy import MeshHierarchy
from handshape.geometry.mesh_graph import mesh_hierarchy
from handshape.handmodel.model import HandModel


@pytest.fixture(scope="session")
def hand() -> HandModel:
    return HandModel.default()


@pytest.fixture(scope="session")
def hierarchy(hand: HandModel) -> MeshHierarchy:
    """The default (paper) hierarchy of the hand mesh: 4 levels, 1280 -> 80 slots."""
    return mesh_hierarchy(hand.data.faces, hand.num_vertices)
