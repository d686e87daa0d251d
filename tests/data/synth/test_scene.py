"""Scene sampling: the configuration's variety, determinism, the val/train hold-out, geometry."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from handshape.config import PACKAGE_CONFIGS
from handshape.data.synth.props import wrist_bend
from handshape.data.synth.scene import (
    SPLITS,
    VIEW_MODES,
    Scene,
    SceneSampler,
    SynthConfig,
    fibonacci_directions,
)
from handshape.geometry.rotations import axis_angle_to_matrix
from handshape.handmodel.model import HandModel
from handshape.handmodel.poses import GestureLibrary

REPO = Path(__file__).resolve().parents[3]
CONFIG_PATH = PACKAGE_CONFIGS / "data" / "synthetic.yaml"
PER_SPLIT = 200


@pytest.fixture(scope="module")
def config() -> SynthConfig:
    return SynthConfig.load(CONFIG_PATH)


@pytest.fixture(scope="module")
def sampler(config: SynthConfig, single_thread: None) -> SceneSampler:
    return SceneSampler(config, HandModel.default())


@pytest.fixture(scope="module")
def scenes(sampler: SceneSampler) -> dict[str, list[Scene]]:
    return {split: [sampler.sample(0, split, i) for i in range(PER_SPLIT)] for split in SPLITS}


def distinct(scenes: list[Scene], field: str) -> int:
    return len({getattr(s, field) for s in scenes})


# ----------------------------------------------------------------------------- the config


def test_config_describes_a_large_varied_set(config: SynthConfig) -> None:
    assert config.viewpoints >= 1000
    assert config.lighting_setups >= 30
    assert len(config.skin_tones) >= 5
    assert len(GestureLibrary.load().names) * config.variants_per_gesture >= 500
    assert all(len(t) == 3 and all(0 <= c <= 1 for c in t) for t in config.skin_tones)
    assert 0 < config.distance[0] < config.distance[1]
    assert 0 < config.fill[0] < config.fill[1] < 1


def test_config_round_trips_and_rejects_unknown_or_missing_keys(config: SynthConfig) -> None:
    values = config.to_dict()
    assert SynthConfig.from_dict(values) == config
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        SynthConfig.from_dict({**values, "colour": 1}, "mine.yaml")
    values.pop("roll")
    with pytest.raises(ValueError, match=r"mine\.yaml.*missing \['roll'\]"):
        SynthConfig.from_dict(values, "mine.yaml")


def test_a_bad_camera_transform_is_refused_before_anything_renders(config: SynthConfig) -> None:
    values = config.to_dict()
    camera = {"enabled": True, "transforms": [{"name": "GaussianBlurr", "p": 1.0}]}
    with pytest.raises(ValueError, match=r"mine\.yaml: camera: .*'GaussianBlurr'"):
        SynthConfig.from_dict({**values, "camera": camera}, "mine.yaml")


def test_an_unreadable_config_names_its_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("size: [1, 2\n")
    with pytest.raises(ValueError, match=r"bad\.yaml"):
        SynthConfig.load(bad)
    with pytest.raises(ValueError, match=r"absent\.yaml"):
        SynthConfig.load(tmp_path / "absent.yaml")


def test_fibonacci_directions_are_unit_and_spread_over_the_sphere() -> None:
    d = fibonacci_directions(1200)
    assert d.shape == (1200, 3)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-12)
    assert np.abs(d.mean(axis=0)).max() < 0.01  # no preferred side
    closest = np.sort(d @ d.T, axis=1)[:, -2]  # cosine to the nearest other direction
    assert closest.max() < np.cos(np.deg2rad(2.0))  # no two (nearly) coincide


# ----------------------------------------------------------------------------- determinism


def test_a_scene_is_a_pure_function_of_seed_split_and_index(
    sampler: SceneSampler, config: SynthConfig, scenes: dict[str, list[Scene]]
) -> None:
    fresh = SceneSampler(config, HandModel.default())
    for split in SPLITS:
        for index in (0, 17, 199):
            a, b = scenes[split][index], fresh.sample(0, split, index)
            for field in dataclasses.fields(Scene):
                va, vb = getattr(a, field.name), getattr(b, field.name)
                assert np.array_equal(va, vb), (split, index, field.name)


def test_seed_split_and_index_each_change_the_scene(
    sampler: SceneSampler, scenes: dict[str, list[Scene]]
) -> None:
    base = scenes["train"][5]
    for other in (sampler.sample(1, "train", 5), scenes["train"][6], scenes["val"][5]):
        assert not np.allclose(other.shape, base.shape)
        assert not np.allclose(other.K, base.K)
        assert not np.allclose(other.vertices, base.vertices)


def test_an_unknown_split_is_refused(sampler: SceneSampler) -> None:
    with pytest.raises(ValueError, match=r"unknown split 'test'"):
        sampler.sample(0, "test", 0)


# ----------------------------------------------------------------------------- hold-out


def test_validation_uses_only_held_out_viewpoints_and_variants(
    config: SynthConfig, scenes: dict[str, list[Scene]]
) -> None:
    every = config.validation["viewpoint_every"]
    first_held = config.variants_per_gesture - config.validation["last_variants"]
    for scene in scenes["val"]:
        assert scene.viewpoint % every == 0
        assert scene.variant >= first_held
    for scene in scenes["train"]:
        assert scene.viewpoint % every != 0
        assert scene.variant < first_held
    # Validation still covers many of its viewpoints and every held-out variant.
    assert distinct(scenes["val"], "viewpoint") >= 80
    assert distinct(scenes["val"], "variant") == config.validation["last_variants"]


def test_held_out_classifies_viewpoints_and_variants(
    sampler: SceneSampler, config: SynthConfig
) -> None:
    views = [v for v in range(config.viewpoints) if sampler.held_out(viewpoint=v)]
    variants = [v for v in range(config.variants_per_gesture) if sampler.held_out(variant=v)]
    assert len(views) == -(-config.viewpoints // config.validation["viewpoint_every"])
    last = config.validation["last_variants"]
    assert variants == list(range(config.variants_per_gesture - last, config.variants_per_gesture))


# ----------------------------------------------------------------------------- variety


def test_sampled_scenes_use_many_gestures_viewpoints_lightings_and_tones(
    config: SynthConfig, scenes: dict[str, list[Scene]]
) -> None:
    train = scenes["train"]
    gestures = len(GestureLibrary.load().names)
    assert distinct(train, "gesture") >= gestures - 3
    assert distinct(train, "viewpoint") >= 150
    assert distinct(train, "lighting") >= config.lighting_setups - 4
    assert distinct(train, "skin_tone") == len(config.skin_tones)
    assert len({(s.gesture, s.variant) for s in train}) >= 150
    assert min(s.lighting for s in train) >= 0
    assert max(s.lighting for s in train) < config.lighting_setups


def test_continuous_parameters_cover_their_ranges(
    config: SynthConfig, scenes: dict[str, list[Scene]]
) -> None:
    train = scenes["train"]
    roll = np.rad2deg([s.roll for s in train])
    assert roll.min() < -config.roll + 30 and roll.max() > config.roll - 30
    distance = np.array([s.distance for s in train])
    lo, hi = config.distance
    assert np.all((distance >= lo) & (distance <= hi))
    assert distance.min() < lo + 0.1 * (hi - lo) and distance.max() > hi - 0.1 * (hi - lo)
    shapes = np.stack([s.shape for s in train])
    assert np.abs(shapes.mean()) < 0.15 * config.shape_std
    assert 0.8 < shapes.std() / config.shape_std < 1.2
    skins = np.array([s.skin_rgb for s in train])
    assert np.all((skins >= 0) & (skins <= 1))
    for tone in range(len(config.skin_tones)):  # each tone varies around its base colour
        near = skins[[s.skin_tone == tone for s in train]]
        assert len({tuple(c) for c in near}) == len(near)
        np.testing.assert_allclose(near.mean(axis=0), config.skin_tones[tone], rtol=0.1)


# ----------------------------------------------------------------------------- geometry


def test_scene_geometry_is_the_posed_model_seen_by_the_camera(
    sampler: SceneSampler, config: SynthConfig, scenes: dict[str, list[Scene]]
) -> None:
    model = HandModel.default().double()
    directions = fibonacci_directions(config.viewpoints)
    for scene in scenes["train"][:20] + scenes["val"][:20]:
        r, t = scene.rotation, scene.translation
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)
        # The camera looks back at the hand along its viewpoint's direction.
        np.testing.assert_allclose(r[2], -directions[scene.viewpoint], atol=1e-12)
        with torch.no_grad():
            out = model(torch.from_numpy(scene.shape)[None], torch.from_numpy(scene.pose)[None])
        np.testing.assert_allclose(scene.vertices, out.vertices[0].numpy() @ r.T + t, atol=1e-12)
        np.testing.assert_allclose(scene.joints, out.joints[0].numpy() @ r.T + t, atol=1e-12)
        # The hand's bounding-box centre sits on the optical axis at the sampled distance.
        centre = 0.5 * (scene.vertices.min(axis=0) + scene.vertices.max(axis=0))
        centre_model = 0.5 * (out.vertices[0].numpy().min(0) + out.vertices[0].numpy().max(0))
        np.testing.assert_allclose(r @ centre_model + t, [0, 0, scene.distance], atol=1e-12)
        assert scene.vertices[:, 2].min() > 0.1  # well in front of the camera
        assert np.abs(centre[:2]).max() < 0.2  # roughly in front of the lens


def test_intrinsics_frame_the_hand_in_the_crop(
    config: SynthConfig, scenes: dict[str, list[Scene]]
) -> None:
    size = config.size
    fills = []
    for scene in scenes["train"] + scenes["val"]:
        K = scene.K
        assert K[0, 0] == K[1, 1] and K[0, 1] == 0 and np.array_equal(K[2], [0, 0, 1])
        uvw = scene.vertices @ K.T
        uv = uvw[:, :2] / uvw[:, 2:]
        assert uv.min() > -0.5 and uv.max() < size - 0.5
        fills.append((uv.max(axis=0) - uv.min(axis=0)).max() / size)
        centre = 0.5 * (uv.max(axis=0) + uv.min(axis=0))
        assert np.abs(centre - (size - 1) / 2).max() <= config.offset_jitter * size + 1e-9
    fills_arr = np.array(fills)
    assert np.all((fills_arr >= config.fill[0] - 1e-9) & (fills_arr <= config.fill[1] + 1e-9))
    assert fills_arr.max() - fills_arr.min() > 0.5 * (config.fill[1] - config.fill[0])


def test_pose_stays_close_to_its_gesture_variant(
    sampler: SceneSampler, scenes: dict[str, list[Scene]]
) -> None:
    # Two samples of the same (gesture, variant) differ by the small per-sample perturbation
    # only; different gestures differ by much more.
    train = scenes["train"]
    by_variant: dict[tuple[int, int], list[np.ndarray]] = {}
    for s in train:
        by_variant.setdefault((s.gesture, s.variant), []).append(s.pose)
    pairs = [poses[:2] for poses in by_variant.values() if len(poses) >= 2]
    assert pairs, "expected repeated (gesture, variant) pairs among 200 scenes"
    same = np.mean([np.abs(a - b).mean() for a, b in pairs])
    other = np.mean([np.abs(a.pose - b.pose).mean() for a, b in itertools.pairwise(train)])
    assert same < 0.5 * other


# ------------------------------------------------------------------------ a narrower world


def test_view_cone_keeps_viewpoints_near_its_axis(config: SynthConfig) -> None:
    narrow = SceneSampler(
        dataclasses.replace(
            config, view_cone=60.0, roll=45.0, view_prior={"egocentric": 0, "third_person": 0}
        ),
        HandModel.default(),
    )
    axis = np.asarray(config.view_axis, dtype=float)
    axis /= np.linalg.norm(axis)
    for split in SPLITS:
        views = [narrow.sample(0, split, i).viewpoint for i in range(40)]
        angles = np.degrees(np.arccos(narrow.directions[views] @ axis))
        assert angles.max() <= 60.0 + 1e-6
        assert len(set(views)) > 10
        rolls = [abs(np.degrees(narrow.sample(0, split, i).roll)) for i in range(40)]
        assert max(rolls) <= 45.0


def test_overrides_apply_on_top_of_the_file_and_are_checked() -> None:
    narrow = SynthConfig.load(CONFIG_PATH, {"view_cone": 30.0})
    assert narrow.view_cone == 30.0
    assert dataclasses.replace(narrow, view_cone=180.0) == SynthConfig.load(CONFIG_PATH)
    with pytest.raises(ValueError, match=r"synthetic.yaml.*unknown settings \['view_cones'\]"):
        SynthConfig.load(CONFIG_PATH, {"view_cones": 30.0})
    with pytest.raises(ValueError, match=r"view_cone must lie in \(0, 180\]"):
        SynthConfig.load(CONFIG_PATH, {"view_cone": 0.0})


def test_a_cone_without_validation_viewpoints_is_refused(config: SynthConfig) -> None:
    tiny = SceneSampler(dataclasses.replace(config, view_cone=0.5), HandModel.default())
    with pytest.raises(ValueError, match=r"no .* viewpoint lies within view_cone"):
        tiny.sample(0, "val", 0)


# ----------------------------------------------------------------------------- view prior


def _forearm_in_camera(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """The forearm's direction (from the wrist) and the back of the hand, camera frame."""
    root = axis_angle_to_matrix(torch.as_tensor(scene.pose[0], dtype=torch.float64)).numpy()
    bend = wrist_bend(float(scene.forearm[3]), float(scene.forearm[4]))
    along = scene.rotation @ root @ bend @ np.array([0.0, -1.0, 0.0])
    back = scene.rotation @ root @ bend @ np.array([0.0, 0.0, 1.0])
    return along, back


def test_the_view_prior_mixes_egocentric_third_person_and_any_views(
    config: SynthConfig, sampler: SceneSampler
) -> None:
    scenes = [sampler.sample(0, "train", i) for i in range(120)]
    modes = np.array([s.view_mode for s in scenes])
    share = [np.mean(modes == m) for m in range(len(VIEW_MODES))]
    prior = config.view_prior
    expected = [1 - prior["egocentric"] - prior["third_person"], *prior.values()]
    np.testing.assert_allclose(share, expected, atol=0.12)
    for scene in scenes:
        along, back = _forearm_in_camera(scene)
        image_angle = np.degrees(np.arctan2(abs(along[0]), along[1]))  # 0: straight down
        if VIEW_MODES[scene.view_mode] == "egocentric":
            # The forearm comes from the bottom of the picture, the back of the hand is seen.
            assert image_angle <= 25.0 + 12.0, scene.index  # roll jitter + viewpoint spacing
            assert back[2] < 0, scene.index  # the back faces the camera (camera looks along +z)
            assert along[2] < 0, scene.index  # and the forearm comes towards it
        elif VIEW_MODES[scene.view_mode] == "third_person":
            assert image_angle <= 60.0 + 12.0, scene.index


def test_the_view_prior_keeps_the_validation_viewpoints_held_out(sampler: SceneSampler) -> None:
    for split in SPLITS:
        for i in range(40):
            scene = sampler.sample(0, split, i)
            assert sampler.held_out(viewpoint=scene.viewpoint) == (split == "val")


def test_without_a_view_prior_every_view_is_any_view(config: SynthConfig) -> None:
    flat = dataclasses.replace(config, view_prior={"egocentric": 0.0, "third_person": 0.0})
    sampler = SceneSampler(flat, HandModel.default())
    assert {sampler.sample(0, "train", i).view_mode for i in range(30)} == {0}


# ----------------------------------------------------------------------------- shadows


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"soft": 1.5}, r"shadows\.soft must be a probability"),
        ({"soft": "often"}, r"shadows\.soft must be a probability"),
        ({"softness": [0.01, 0.002]}, r"shadows\.softness must be \[min, max\]"),
        ({"softness": [0.0, 0.01]}, r"shadows\.softness must be \[min, max\]"),
        ({"softness": 0.004}, r"shadows\.softness must be \[min, max\]"),
        ({"map_size": 32}, r"shadows\.map_size must be an integer"),
        ({"map_size": 512.5}, r"shadows\.map_size must be an integer"),
        ({"enabled": "yes"}, r"shadows\.enabled must be true or false"),
    ],
)
def test_bad_shadow_settings_are_refused_by_name(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=r"synthetic\.yaml: " + message):
        SynthConfig.load(CONFIG_PATH, {"shadows": change})


def test_shadow_settings_must_be_complete_and_known(config: SynthConfig) -> None:
    values = config.to_dict()
    incomplete = {**values, "shadows": {k: v for k, v in config.shadows.items() if k != "soft"}}
    with pytest.raises(ValueError, match=r"mine\.yaml: shadows needs exactly the settings"):
        SynthConfig.from_dict(incomplete, "mine.yaml")
    with pytest.raises(ValueError, match=r"unknown settings \['shadows\.colour'\]"):
        SynthConfig.load(CONFIG_PATH, {"shadows": {"colour": 1}})


def test_shadows_are_on_by_default_mostly_soft_and_drawn_per_sample(
    config: SynthConfig, scenes: dict[str, list[Scene]]
) -> None:
    assert config.shadows["enabled"]
    softness = np.array([s.shadow_softness for s in scenes["train"]])
    lo, hi = config.shadows["softness"]
    assert np.all((softness == 0) | ((softness >= lo) & (softness <= hi)))
    # About `soft` of the samples are soft (200 draws: 4 standard deviations either way).
    soft = np.mean(softness > 0)
    spread = 4 * np.sqrt(config.shadows["soft"] * (1 - config.shadows["soft"]) / len(softness))
    assert abs(soft - config.shadows["soft"]) < spread
    assert len(set(softness[softness > 0])) > 50  # a continuum of penumbra sizes


def test_switching_shadows_off_changes_nothing_else_in_the_scene(
    config: SynthConfig, scenes: dict[str, list[Scene]]
) -> None:
    off = SceneSampler(
        dataclasses.replace(config, shadows={**config.shadows, "enabled": False}),
        HandModel.default(),
    )
    for index in (0, 3, 11):
        a, b = scenes["train"][index], off.sample(0, "train", index)
        assert b.shadow_softness == -1.0
        for field in dataclasses.fields(Scene):
            if field.name != "shadow_softness":
                assert np.array_equal(getattr(a, field.name), getattr(b, field.name)), field.name
