"""Back-face culling by default: only where it is exact (a closed, consistently wound mesh
clear of the near plane), with each mesh's outside found from its enclosed volume, so that a
mirrored (inside-out wound) hand is drawn right too; non-finite vertices do not spoil the
other meshes of a batch."""

from __future__ import annotations

import pytest
import torch

from handshape.handmodel.model import HandModel
from handshape.render.depth_raster import DepthRender, DepthRenderer, mesh_topology, render_depth

pytestmark = pytest.mark.usefixtures("single_thread")

SIZE = 32


@pytest.fixture(scope="module")
def hand() -> HandModel:
    return HandModel.default().double()


def hands(hand: HandModel, gestures: list[str]) -> torch.Tensor:
    """(B, N, 3) float64 hands about 0.45 m in front of the camera."""
    gen = torch.Generator().manual_seed(0)
    shape = torch.randn(len(gestures), hand.num_shapes, generator=gen, dtype=torch.float64)
    pose = torch.stack([hand.gesture(g) for g in gestures]).double()
    v = hand(shape=shape, pose=pose).vertices.detach()
    return v - v.mean(1, keepdim=True) + torch.tensor([0.004, -0.002, 0.45], dtype=torch.float64)


K = torch.tensor(
    [
        [SIZE / 0.22 * 0.45, 0.0, SIZE / 2 - 0.3],
        [0.0, SIZE / 0.22 * 0.46, SIZE / 2 + 0.2],
        [0, 0, 1],
    ],
    dtype=torch.float64,
)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a, b)


def assert_same_render(mine: DepthRender, theirs: DepthRender) -> None:
    assert same(mine.covered, theirs.covered) and mine.covered.any()
    assert same(mine.depth, theirs.depth) and same(mine.coverage, theirs.coverage)


def test_default_culls_the_closed_hand_without_changing_a_pixel(hand: HandModel) -> None:
    v = hands(hand, ["fist", "open_palm", "ok", "victory"])
    assert_same_render(
        render_depth(v, hand.faces, K, SIZE, SIZE),
        render_depth(v, hand.faces, K, SIZE, SIZE, cull_back_faces=False),
    )


def test_a_mirrored_hand_is_culled_by_its_own_outside(hand: HandModel) -> None:
    # Mirroring x turns the winding inside out: forced culling (counter-clockwise outside)
    # then drops the faces that should be seen; the default finds the outside per mesh.
    v = hands(hand, ["point", "pinch"])
    mirrored = v * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    batch = torch.cat([v[:1], mirrored[1:]])
    full = render_depth(batch, hand.faces, K, SIZE, SIZE, cull_back_faces=False)
    assert_same_render(render_depth(batch, hand.faces, K, SIZE, SIZE), full)
    forced = render_depth(batch, hand.faces, K, SIZE, SIZE, cull_back_faces=True)
    assert same(forced.depth[0], full.depth[0])
    assert not same(forced.depth[1], full.depth[1])


def test_meshes_that_are_not_safe_to_cull_are_drawn_whole(hand: HandModel) -> None:
    v = hands(hand, ["fist"])
    # The camera looks at the inside of a hand cut open (one face wound the other way makes
    # the mesh inconsistently wound: not culled), and of a hand reaching the near plane.
    flipped = hand.faces.clone()
    flipped[0] = flipped[0].flip(0)
    assert_same_render(
        render_depth(v, flipped, K, SIZE, SIZE),
        render_depth(v, flipped, K, SIZE, SIZE, cull_back_faces=False),
    )
    near = v.clone()
    near[0, 0, 2] = 0.0005  # one vertex before the near plane (1 mm)
    assert_same_render(
        render_depth(near, hand.faces, K, SIZE, SIZE),
        render_depth(near, hand.faces, K, SIZE, SIZE, cull_back_faces=False),
    )


def test_an_open_mesh_is_not_culled_by_default() -> None:
    # Seen from the camera these corners run clockwise: back faces if it were closed.
    v = torch.tensor(
        [[[-0.01, -0.01, 0.5], [0.01, -0.01, 0.5], [0.01, 0.01, 0.5], [-0.01, 0.01, 0.5]]],
        dtype=torch.float64,
    )
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    Ks = torch.tensor([[100.0, 0.0, 4.0], [0.0, 100.0, 4.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    assert render_depth(v, faces, Ks, 9, 9).covered.sum() == 25
    assert DepthRenderer(faces, 9, 9)(v, Ks).covered.sum() == 25


def test_a_non_finite_vertex_spoils_only_its_own_faces(hand: HandModel) -> None:
    v = hands(hand, ["fist", "ok"])
    renderer = DepthRenderer(hand.faces, SIZE, SIZE)
    broken = v.clone()
    broken[0, 100] = float("nan")
    out = renderer(broken, K)
    assert_same_render(DepthRender(*(t[1:] for t in out)), renderer(v[1:], K))
    whole = renderer(v[:1], K).covered.sum()
    assert torch.isfinite(out.depth[0]).all() and 0.9 * whole < out.covered[0].sum() <= whole


def test_topology_of_the_hand_is_closed_and_consistently_wound(hand: HandModel) -> None:
    topology = mesh_topology(hand.faces)
    assert (topology.edge_faces[:, 1] >= 0).all()
    assert (topology.edge_turn[:, 0] == -topology.edge_turn[:, 1]).all()
