"""Specification of handshape's own hand template (assets/handmodel.npz, template_surface.py,
template_builder.py).

Coordinates: metres, right hand, rest pose flat with the palm facing -z, fingers along +y, thumb
towards -x, wrist joint at the origin. Joints in project order (handshape.joints).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from handshape.geometry.mesh_checks import check_closed_surface, euler_characteristic
from handshape.handmodel import template_builder, template_surface
from handshape.handmodel.data import HandModelData
from handshape.handmodel.model import HandModel
from handshape.joints import (
    FINGERS,
    KINEMATIC_TO_JOINT,
    NUM_KINEMATIC,
    TIP_JOINTS,
)

KINEMATIC = list(KINEMATIC_TO_JOINT)
NON_TIP_JOINTS = KINEMATIC  # every joint that is not a fingertip is a kinematic joint
WRIST, INDEX_MCP, MIDDLE_TIP, LITTLE_MCP = 0, 5, 12, 17


def kinematic_of(finger: int, segment: int) -> int:
    """Kinematic index of a finger's joint (segment 0: CMC/MCP, 1: MCP/PIP, 2: IP/DIP)."""
    return 1 + 3 * finger + segment


def base_joint(finger: int) -> int:
    """Index (into the 21 joints) of a finger's first joint: thumb CMC or finger MCP."""
    return 1 + 4 * finger


@pytest.fixture(scope="module")
def model() -> HandModel:
    return HandModel.default().to(torch.float64)


@pytest.fixture(scope="module")
def data(model: HandModel) -> HandModelData:
    return model.data


@pytest.fixture(scope="module")
def rest_joints(model: HandModel) -> np.ndarray:
    return model.rest_joints


@pytest.fixture(scope="module")
def design() -> dict:
    return yaml.safe_load(template_builder.DESIGN_PATH.read_text())


def winding_numbers(points: np.ndarray, v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Generalized winding number of each point (P, 3) w.r.t. the mesh: sum of the signed solid
    angles of its triangles (Van Oosterom-Strackee) over 4 pi. 1 inside, 0 outside."""
    a = v[f[:, 0]][None] - points[:, None]  # (P, F, 3)
    b = v[f[:, 1]][None] - points[:, None]
    c = v[f[:, 2]][None] - points[:, None]
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
    det = np.einsum("pfi,pfi->pf", a, np.cross(b, c))
    dot = lambda x, y: np.einsum("pfi,pfi->pf", x, y)  # noqa: E731
    denom = la * lb * lc + dot(a, b) * lc + dot(b, c) * la + dot(c, a) * lb
    return (2.0 * np.arctan2(det, denom)).sum(axis=1) / (4.0 * np.pi)


# --- surface -----------------------------------------------------------------------------------


def test_template_is_a_valid_closed_surface(data: HandModelData) -> None:
    """Closed, oriented, manifold, non-degenerate, non-self-intersecting, positive volume."""
    assert check_closed_surface(data.v_template, data.faces) == []


def test_template_is_a_sphere_with_about_a_thousand_vertices(data: HandModelData) -> None:
    assert euler_characteristic(data.num_vertices, data.faces) == 2
    assert 900 <= data.num_vertices <= 1300
    # Every vertex belongs to the surface.
    assert np.array_equal(np.unique(data.faces), np.arange(data.num_vertices))


def test_rest_pose_follows_the_coordinate_convention(rest_joints: np.ndarray) -> None:
    """Wrist at the origin, fingers along +y, thumb towards -x, little finger towards +x."""
    assert np.allclose(rest_joints[WRIST], 0.0, atol=1e-9)
    tips = rest_joints[list(TIP_JOINTS)]
    assert np.all(tips[:, 1] > 0.09)
    assert tips[0, 0] < -0.05  # thumb tip
    assert rest_joints[17, 0] > rest_joints[13, 0] > rest_joints[9, 0] > rest_joints[5, 0]


# --- proportions -------------------------------------------------------------------------------


def test_hand_length_is_adult(rest_joints: np.ndarray) -> None:
    """Wrist joint to middle fingertip joint: 0.17..0.20 m."""
    length = np.linalg.norm(rest_joints[MIDDLE_TIP] - rest_joints[WRIST])
    assert 0.17 <= length <= 0.20, length


def plane_section_x(v: np.ndarray, edges: np.ndarray, y: float) -> np.ndarray:
    """x of the points where the mesh edges (E, 2) cross the plane at height y."""
    a, b = v[edges[:, 0]], v[edges[:, 1]]
    crossing = (a[:, 1] - y) * (b[:, 1] - y) < 0
    a, b = a[crossing], b[crossing]
    t = (y - a[:, 1]) / (b[:, 1] - a[:, 1])
    return a[:, 0] + t * (b[:, 0] - a[:, 0])


def test_palm_width_at_the_metacarpal_heads_is_adult(
    data: HandModelData, rest_joints: np.ndarray
) -> None:
    """Hand breadth, as anthropometry measures it across the metacarpal heads: the widest x-extent
    of the skin's exact cross-sections by planes y = const, every millimetre from the little
    finger's MCP height to the index MCP's, leaving out the thumb (edges with an end whose
    skinning weight is mostly on the thumb's joints), which reaches those heights at rest:
    0.075..0.095 m."""
    v, f, w = data.v_template, data.faces, data.weights
    edges = np.unique(
        np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), 1), axis=0
    )
    thumb = w[:, 1:4].sum(axis=1) >= 0.5
    edges = edges[~thumb[edges].any(axis=1)]
    heights = np.arange(rest_joints[LITTLE_MCP, 1], rest_joints[INDEX_MCP, 1] + 1e-9, 0.001)
    assert len(heights) >= 5
    widths = [np.ptp(plane_section_x(v, edges, y)) for y in heights]
    assert 0.075 <= max(widths) <= 0.095, widths


# --- joints and the surface --------------------------------------------------------------------


def test_fingertip_joints_are_template_vertices(
    model: HandModel, data: HandModelData, rest_joints: np.ndarray
) -> None:
    tips = list(TIP_JOINTS)
    assert np.array_equal(rest_joints[tips], data.v_template[data.tip_vertex_ids])
    out = model(shape=torch.zeros(1, model.num_shapes, dtype=torch.float64))
    assert torch.equal(out.joints[0, tips], out.vertices[0, model.tip_vertex_ids])
    assert len(set(data.tip_vertex_ids.tolist())) == 5


@pytest.mark.parametrize("finger", range(5), ids=FINGERS)
def test_fingertip_is_the_most_distal_vertex_of_its_finger(
    data: HandModelData, rest_joints: np.ndarray, finger: int
) -> None:
    """Among the vertices that mostly follow the finger's last joint, none lies more than 3 mm
    farther from the finger's first joint (CMC/MCP) than the fingertip vertex."""
    v, w = data.v_template, data.weights
    last = kinematic_of(finger, 2)
    distal = w.argmax(axis=1) == last
    assert distal.sum() >= 5
    base = rest_joints[base_joint(finger)]
    farthest = np.linalg.norm(v[distal] - base, axis=1).max()
    tip = np.linalg.norm(v[data.tip_vertex_ids[finger]] - base)
    assert tip >= farthest - 0.003, (tip, farthest)
    assert w[data.tip_vertex_ids[finger]].argmax() == last


def test_every_kinematic_joint_is_inside_the_mesh(
    data: HandModelData, rest_joints: np.ndarray
) -> None:
    v, f = data.v_template, data.faces
    inside = winding_numbers(rest_joints[NON_TIP_JOINTS], v, f)
    outside = {j: round(float(x), 3) for j, x in zip(NON_TIP_JOINTS, inside, strict=True)}
    assert np.allclose(inside, 1.0, atol=1e-3), outside
    far = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]])
    assert np.allclose(winding_numbers(far, v, f), 0.0, atol=1e-3)


# --- skinning weights --------------------------------------------------------------------------


def test_skinning_weights_are_a_sparse_partition_of_unity(data: HandModelData) -> None:
    w = data.weights
    assert w.shape == (data.num_vertices, NUM_KINEMATIC)
    assert np.all(w >= 0.0)
    assert np.allclose(w.sum(axis=1), 1.0, atol=1e-6)
    assert np.count_nonzero(w, axis=1).max() <= 4


def test_every_kinematic_joint_drives_some_vertex(data: HandModelData) -> None:
    """Each joint has positive weight somewhere and is the strongest influence on some vertex."""
    w = data.weights
    assert np.all(w.max(axis=0) > 0.0)
    dominant = np.bincount(w.argmax(axis=1), minlength=NUM_KINEMATIC)
    assert np.all(dominant > 0), dominant


def test_distal_finger_joints_do_not_move_the_palm(data: HandModelData) -> None:
    """Vertices of the proximal palm and wrist (y < 0.03 m) carry no weight of any finger's PIP
    or DIP, nor of the thumb's IP."""
    v, w = data.v_template, data.weights
    distal = [kinematic_of(f, s) for f in range(1, 5) for s in (1, 2)] + [kinematic_of(0, 2)]
    palm = v[:, 1] < 0.03
    assert palm.sum() > 100
    assert np.all(w[np.ix_(palm, distal)] == 0.0)


@pytest.mark.parametrize("finger", range(5), ids=FINGERS)
def test_last_joint_weight_stays_on_its_finger(
    data: HandModelData, rest_joints: np.ndarray, finger: int
) -> None:
    """No vertex more than 4 cm from a finger's last joint (IP/DIP) is moved by it."""
    v, w = data.v_template, data.weights
    last = kinematic_of(finger, 2)
    far = np.linalg.norm(v - rest_joints[KINEMATIC[last]], axis=1) > 0.04
    assert np.all(w[far, last] == 0.0)


# --- shape space -------------------------------------------------------------------------------


def test_shape_space_has_named_coefficients(data: HandModelData, design: dict) -> None:
    assert data.num_shapes >= 10
    assert len(data.shape_names) == data.num_shapes
    assert len(set(data.shape_names)) == data.num_shapes
    assert list(data.shape_names) == [s["name"] for s in design["shapes"]]


@pytest.fixture(scope="module")
def designed_offsets(
    data: HandModelData, design: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The builder's skeleton (21, 3), and per unit shape coefficient the designed vertex
    offsets (N, 3, S) and kinematic joint offsets (16, 3, S) from `deform_rest`."""
    skel = template_surface.build_skeleton(design)
    steps = {s["name"]: s["step"] for s in design["shapes"]}
    v = data.v_template
    dv, dj = [], []
    for name in data.shape_names:
        v_new, j_new = template_builder.deform_rest(v, data.weights, skel, {name: steps[name]})
        dv.append(v_new - v)
        dj.append(j_new[KINEMATIC] - skel.joints[KINEMATIC])
    return skel.joints, np.stack(dv, axis=2), np.stack(dj, axis=2)


def test_regressor_gives_the_designed_skeleton(
    data: HandModelData, designed_offsets: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    skeleton, _, _ = designed_offsets
    joints = data.j_regressor @ data.v_template
    assert np.abs(joints - skeleton[KINEMATIC]).max() < 1e-4


def test_blend_shapes_are_the_designed_deformations(
    data: HandModelData, designed_offsets: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    _, dv, _ = designed_offsets
    assert np.abs(data.shapedirs - dv).max() < 1e-6
    # Each coefficient really changes the hand.
    assert np.all(np.abs(data.shapedirs).max(axis=(0, 1)) > 1e-4)


def test_regressor_follows_each_unit_shape_coefficient(
    data: HandModelData, designed_offsets: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    """J_regressor @ (v_template + one blend shape) == deform_rest's joints, within 0.1 mm."""
    skeleton, _, dj = designed_offsets
    for s, name in enumerate(data.shape_names):
        joints = data.j_regressor @ (data.v_template + data.shapedirs[:, :, s])
        error = np.abs(joints - (skeleton[KINEMATIC] + dj[:, :, s])).max()
        assert error < 1e-4, (name, error)


def test_model_joints_follow_random_shapes(
    model: HandModel, designed_offsets: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    """For random shapes the rest joints are the designed ones, combined linearly."""
    skeleton, _, dj = designed_offsets
    beta = torch.randn(8, model.num_shapes, generator=torch.Generator().manual_seed(0))
    joints = model(shape=beta.double()).joints[:, KINEMATIC].numpy()
    expected = skeleton[KINEMATIC][None] + np.einsum("jcs,bs->bjc", dj, beta.double().numpy())
    assert np.abs(joints - expected).max() < 1e-4


def test_size_coefficient_scales_hand_length_by_its_step(model: HandModel, design: dict) -> None:
    step = {s["name"]: s["step"] for s in design["shapes"]}["size"]
    beta = torch.zeros(1, model.num_shapes, dtype=torch.float64)
    beta[0, list(model.data.shape_names).index("size")] = 1.0
    length = lambda j: torch.linalg.norm(j[0, MIDDLE_TIP] - j[0, WRIST]).item()  # noqa: E731
    ratio = length(model(shape=beta).joints) / length(model(shape=0 * beta).joints)
    assert ratio == pytest.approx(1.0 + step, abs=2e-3)
    assert step == pytest.approx(0.06)


# --- reproducibility ---------------------------------------------------------------------------


@pytest.mark.slow
def test_fresh_build_equals_the_committed_asset(data: HandModelData) -> None:
    fresh = template_builder.build_model()
    assert np.array_equal(fresh.faces, data.faces)
    assert np.array_equal(fresh.tip_vertex_ids, data.tip_vertex_ids)
    assert fresh.shape_names == data.shape_names
    for name in ("v_template", "weights", "shapedirs", "j_regressor", "hands_mean"):
        assert np.allclose(getattr(fresh, name), getattr(data, name), rtol=0, atol=1e-6), name
