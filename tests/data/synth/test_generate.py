"""`handshape synth`: renders, labels and the sharded, resumable storage of the synthetic set.

The labels are checked against an independent reference: a small numpy z-buffer rasteriser
fed with the stored camera-frame vertices, the model's faces and the stored intrinsics.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from handshape.cli import main
from handshape.config import PACKAGE_CONFIGS
from handshape.data.synth import generate as gen
from handshape.data.synth.generate import DEPTH_UNIT, Plan, generate, joint_visibility
from handshape.data.synth.reader import SyntheticShards
from handshape.data.synth.scene import SynthConfig
from handshape.handmodel.model import HandModel
from handshape.render.synthetic import FOREARM, HAND, OBJECT

REPO = Path(__file__).resolve().parents[3]
CONFIG_PATH = PACKAGE_CONFIGS / "data" / "synthetic.yaml"
SIZE = 96
SHARD_SIZE = 4
NUM = 10  # three shards: 4 + 4 + 2
SEED = 0

EXPECTED = {  # key: (shape after the sample axis, dtype); N = model vertices, S = shapes
    "rgba": ((SIZE, SIZE, 4), np.uint8),
    "depth": ((SIZE, SIZE), np.uint16),
    "joints_2d": ((21, 2), np.float32),
    "joints_3d": ((21, 3), np.float32),
    "vertices": (("N", 3), np.float32),
    "K": ((3, 3), np.float32),
    "visibility": ((21,), np.bool_),
    "shape": (("S",), np.float32),
    "pose": ((16, 3), np.float32),
    "rotation": ((3, 3), np.float32),
    "translation": ((3,), np.float32),
    "roll": ((), np.float32),
    "distance": ((), np.float32),
    "skin_rgb": ((3,), np.float32),
    "roughness": ((), np.float32),
    "gesture": ((), np.int16),
    "variant": ((), np.int16),
    "viewpoint": ((), np.int16),
    "lighting": ((), np.int16),
    "skin_tone": ((), np.int16),
    "index": ((), np.int64),
    "ids": ((SIZE, SIZE), np.uint8),
    "view_mode": ((), np.int16),
    "forearm": ((6,), np.float32),
    "sleeve_rgb": ((3,), np.float32),
    "object_kind": ((), np.int16),
    "object_rgb": ((3,), np.float32),
    "object_roughness": ((), np.float32),
    "object_seed": ((), np.int64),
    "skin_seed": ((), np.int64),
    "shadow_softness": ((), np.float32),
}


# ----------------------------------------------------------------------------- helpers


def small_config(**changes: object) -> SynthConfig:
    base = SynthConfig.load(CONFIG_PATH)
    return dataclasses.replace(base, size=SIZE, shard_size=SHARD_SIZE, **changes)


def make_plan(out: Path, seed: int = SEED, num: int = NUM, split: str = "train") -> Plan:
    return Plan(out, split, num, seed, small_config())


def read_shard(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {key: z[key] for key in z.files}


def read_split(folder: Path) -> dict[str, np.ndarray]:
    """Every shard of a split folder, concatenated in shard order."""
    shards = [read_shard(p) for p in sorted(folder.glob("shard_*.npz"))]
    return {key: np.concatenate([s[key] for s in shards]) for key in shards[0]}


def folder_listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def reference_depth(
    vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, size: int
) -> np.ndarray:
    """Camera z of the nearest triangle through each pixel centre (u, v), 0 where none.

    vertices: (N, 3) in the OpenCV camera frame; K with pixel centres at integer coordinates.
    Each triangle is projected, the pixel centres inside its 2D bounding box are tested with
    barycentric coordinates (vectorised over all triangles, looping over box offsets), 1/z is
    interpolated perspective-correctly and the largest 1/z (the nearest surface) is kept.
    """
    v = np.asarray(vertices, np.float64)
    uvw = v @ np.asarray(K, np.float64).T
    uv = uvw[:, :2] / uvw[:, 2:]
    tri, inv_z = uv[faces], 1.0 / v[faces, 2]
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    lo = np.maximum(np.ceil(tri.min(axis=1)), 0).astype(int)
    hi = np.minimum(np.floor(tri.max(axis=1)), size - 1).astype(int)
    keep = np.all(hi >= lo, axis=1) & (np.abs(area) > 1e-12)
    a, b, c, area, lo, hi, inv_z = (x[keep] for x in (a, b, c, area, lo, hi, inv_z))
    if not keep.any():  # nothing of this mesh in the crop
        return np.zeros((size, size))

    def edge(p: np.ndarray, q: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (q[:, 0] - p[:, 0]) * (y - p[:, 1]) - (q[:, 1] - p[:, 1]) * (x - p[:, 0])

    nearest = np.zeros((size, size))  # largest 1/z seen so far
    span = (hi - lo).max(axis=0) + 1
    for dy in range(span[1]):
        for dx in range(span[0]):
            x, y = lo[:, 0] + dx, lo[:, 1] + dy
            l0, l1, l2 = edge(b, c, x, y) / area, edge(c, a, x, y) / area, edge(a, b, x, y) / area
            inside = (x <= hi[:, 0]) & (y <= hi[:, 1]) & (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
            w = l0 * inv_z[:, 0] + l1 * inv_z[:, 1] + l2 * inv_z[:, 2]
            np.maximum.at(nearest, (y[inside], x[inside]), w[inside])
    hit = nearest > 0
    return np.where(hit, 1.0 / np.where(hit, nearest, 1.0), 0.0)


def interior(mask: np.ndarray, depth: np.ndarray, jump: float = 0.01) -> np.ndarray:
    """`mask` without the pixels within 1 px of its border or of a depth step > `jump` m."""
    ring = np.ones((3, 3), bool)
    steps = np.zeros_like(mask)
    dy = np.abs(np.diff(depth, axis=0)) > jump
    dx = np.abs(np.diff(depth, axis=1)) > jump
    steps[1:] |= dy
    steps[:-1] |= dy
    steps[:, 1:] |= dx
    steps[:, :-1] |= dx
    return ndimage.binary_erosion(mask, ring) & ~ndimage.binary_dilation(steps, ring)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    """The reference set of this module: NUM training samples, seed 0, size 96."""
    plan = make_plan(tmp_path_factory.mktemp("synth") / "out")
    assert generate(plan, progress=False) == NUM
    return plan


@pytest.fixture(scope="module")
def data(plan: Plan) -> dict[str, np.ndarray]:
    return read_split(plan.folder)


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return HandModel.default().faces.numpy()


def reference_parts(
    maker: gen.SampleMaker, sample: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Reference depth (S, S) of every part of a sample (hand, forearm, object) and the id
    (S, S) of the nearest part at each pixel (0: none)."""
    parts = maker.parts(sample)
    depths = np.stack([reference_depth(p.vertices, p.faces, sample["K"], SIZE) for p in parts])
    far = np.where(depths > 0, depths, np.inf)
    nearest = np.argmin(far, axis=0)
    hit = np.isfinite(far.min(axis=0))
    labels = np.array([p.label for p in parts])
    ids = np.where(hit, labels[nearest], 0).astype(np.uint8)
    return np.where(hit, far.min(axis=0), 0.0), ids


@pytest.fixture(scope="module")
def reference_scenes(plan: Plan, data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(NUM, S, S) reference depth and ids of every sample of the reference set."""
    maker = gen.SampleMaker(plan.config)  # only its meshes: no GL context is made
    out = [
        reference_parts(maker, {key: values[i] for key, values in data.items()}) for i in range(NUM)
    ]
    return np.stack([d for d, _ in out]), np.stack([i for _, i in out])


@pytest.fixture(scope="module")
def references(reference_scenes: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(NUM, S, S) reference depth of everything rendered in each sample."""
    return reference_scenes[0]


# ----------------------------------------------------------------------------- layout


def test_split_folder_holds_the_manifest_and_complete_shards_only(plan: Plan) -> None:
    assert folder_listing(plan.folder) == [
        "manifest.json",
        "shard_00000.npz",
        "shard_00001.npz",
        "shard_00002.npz",
    ]
    manifest = json.loads((plan.folder / "manifest.json").read_text())
    assert manifest["split"] == "train"
    assert (manifest["num"], manifest["seed"], manifest["num_shards"]) == (NUM, SEED, 3)
    assert manifest["depth_unit_m"] == DEPTH_UNIT
    assert manifest["config"] == plan.config.to_dict()
    sizes = [len(read_shard(plan.shard_path(k))["index"]) for k in range(3)]
    assert sizes == [4, 4, 2]  # shard k holds [4k, 4k + 4), the last one the remainder


def test_shards_hold_the_documented_arrays(data: dict[str, np.ndarray]) -> None:
    model = HandModel.default()
    symbols = {"N": model.num_vertices, "S": model.num_shapes}
    assert set(data) == set(EXPECTED)
    for key, (shape, dtype) in EXPECTED.items():
        wanted = (NUM, *(symbols.get(s, s) for s in shape))
        assert data[key].shape == wanted, key
        assert data[key].dtype == dtype, key
    np.testing.assert_array_equal(data["index"], np.arange(NUM))


# ----------------------------------------------------------------------------- labels


def test_projecting_the_3d_joints_with_k_gives_the_2d_joints(data: dict[str, np.ndarray]) -> None:
    uvw = np.einsum("nij,nkj->nki", data["K"].astype(np.float64), data["joints_3d"])
    projected = uvw[..., :2] / uvw[..., 2:]
    assert np.abs(projected - data["joints_2d"]).max() < 0.5
    assert np.all(data["joints_3d"][..., 2] > 0)  # in front of the camera


def test_labels_are_the_hand_model_posed_by_the_stored_parameters(
    data: dict[str, np.ndarray],
) -> None:
    model = HandModel.default().double()
    with torch.no_grad():
        out = model(
            torch.from_numpy(data["shape"]).double(), torch.from_numpy(data["pose"]).double()
        )
    rotation = data["rotation"].astype(np.float64)
    translation = data["translation"].astype(np.float64)[:, None]
    vertices = np.einsum("nij,nvj->nvi", rotation, out.vertices.numpy()) + translation
    joints = np.einsum("nij,nvj->nvi", rotation, out.joints.numpy()) + translation
    assert np.abs(vertices - data["vertices"]).max() < 1e-4  # metres; float32 storage
    assert np.abs(joints - data["joints_3d"]).max() < 1e-4
    assert np.abs(rotation @ rotation.transpose(0, 2, 1) - np.eye(3)).max() < 1e-5
    assert np.abs(np.linalg.det(rotation) - 1.0).max() < 1e-5


def test_the_whole_hand_lies_in_the_crop_at_the_configured_scale(
    plan: Plan, data: dict[str, np.ndarray]
) -> None:
    uvw = np.einsum("nij,nvj->nvi", data["K"].astype(np.float64), data["vertices"])
    uv = uvw[..., :2] / uvw[..., 2:]
    assert uv.min() > -0.5 and uv.max() < SIZE - 0.5
    extent = (uv.max(axis=1) - uv.min(axis=1)).max(axis=1) / SIZE
    lo, hi = plan.config.fill
    assert np.all((extent > lo - 1e-3) & (extent < hi + 1e-3))
    centre = 0.5 * (uv.max(axis=1) + uv.min(axis=1))
    assert np.abs(centre - (SIZE - 1) / 2).max() <= plan.config.offset_jitter * SIZE + 1e-3


def test_depth_at_hand_pixels_is_the_depth_of_the_rendered_mesh(
    data: dict[str, np.ndarray], references: np.ndarray
) -> None:
    depth = data["depth"].astype(np.float64) * DEPTH_UNIT
    for i, (stored, ref) in enumerate(zip(depth, references, strict=True)):
        inner = interior((stored > 0) & (ref > 0), ref)
        assert inner.sum() > 200, i  # enough pixels to compare
        error = np.abs(stored - ref)[inner]
        assert np.median(error) < 2e-4, i
        assert np.percentile(error, 95) < 1e-3, i
        assert np.mean(error < 1e-3) >= 0.99, i


def test_alpha_covers_exactly_what_was_rendered(data: dict[str, np.ndarray]) -> None:
    alpha = data["rgba"][..., 3]
    mask = alpha > 0
    np.testing.assert_array_equal(mask, data["depth"] > 0)
    np.testing.assert_array_equal(mask, data["ids"] > 0)
    assert set(np.unique(alpha)) <= {0, 255}
    assert np.all(data["rgba"][..., :3][~mask] == 0)  # no colour off the rendered parts


@pytest.mark.parametrize("part", [HAND, FOREARM, OBJECT])
def test_id_map_is_exactly_each_rendered_part(
    data: dict[str, np.ndarray], reference_scenes: tuple[np.ndarray, np.ndarray], part: int
) -> None:
    ring = np.ones((3, 3), bool)
    seen = 0
    for i, (ids, ref_ids) in enumerate(zip(data["ids"], reference_scenes[1], strict=True)):
        m, ref = ids == part, ref_ids == part
        if ref.sum() < 30:  # a part hardly in view: nothing to compare but its border
            continue
        seen += 1
        assert (m & ref).sum() / (m | ref).sum() > 0.9, i
        # Disagreement is confined to a thin boundary: nothing 1 px inside either silhouette.
        assert not np.any(ndimage.binary_erosion(m, ring) & ~ref), i
        assert not np.any(ndimage.binary_erosion(ref, ring) & ~m), i
    assert seen >= (NUM // 2 if part != OBJECT else 1)  # the reference set shows every part


def test_hand_pixels_are_lit(data: dict[str, np.ndarray]) -> None:
    mask = data["rgba"][..., 3] > 0
    for i in range(NUM):
        colour = data["rgba"][i][..., :3][mask[i]].astype(float)
        assert colour.mean() > 20, i  # not black
        assert np.mean(colour.min(axis=1) == 255) < 0.5, i  # not blown out to white
        assert colour.mean(axis=1).std() > 3, i  # shaded, not flat


def test_visibility_agrees_with_the_reference_depth(
    plan: Plan, data: dict[str, np.ndarray], references: np.ndarray
) -> None:
    recomputed = np.stack(
        [
            joint_visibility(j.astype(float), uv.astype(float), ref, plan.config.visibility_margin)
            for j, uv, ref in zip(data["joints_3d"], data["joints_2d"], references, strict=True)
        ]
    )
    assert np.mean(recomputed == data["visibility"]) >= 0.99
    # A realistic set has both: most joints seen, some hidden behind the hand.
    assert 0.1 < data["visibility"].mean() < 0.95


def test_joint_visibility_on_a_hand_made_depth_map() -> None:
    size, margin = 20, 0.012
    depth = np.zeros((size, size))
    depth[:, :10] = 0.50  # a surface over the left half of the crop
    joints_2d = np.array(
        [
            [3.0, 5.0],  # behind the surface by 10 cm: occluded
            [4.0, 5.0],  # 5 mm behind the skin (inside a finger): visible
            [5.0, 5.0],  # just beyond the margin: occluded
            [15.0, 5.0],  # over the background: visible
            [-3.0, 5.0],  # left of the crop
            [5.0, 19.6],  # below the crop (rounds to row 20)
            [5.0, -0.4],  # rounds to row 0: in the crop, on the surface
        ]
    )
    z = np.array([0.60, 0.505, 0.50 + margin + 1e-3, 0.55, 0.40, 0.40, 0.50])
    joints = np.concatenate([joints_2d, z[:, None]], axis=1)  # only z matters
    visible = joint_visibility(joints, joints_2d, depth, margin)
    assert visible.dtype == np.bool_
    np.testing.assert_array_equal(visible, [False, True, False, True, False, False, True])


# ----------------------------------------------------------------------------- determinism


def test_the_same_seed_gives_identical_shards(
    plan: Plan, data: dict[str, np.ndarray], tmp_path: Path
) -> None:
    again = make_plan(tmp_path / "again")
    generate(again, progress=False)
    for k in range(plan.num_shards):
        first, second = read_shard(plan.shard_path(k)), read_shard(again.shard_path(k))
        assert set(first) == set(second)
        for key in first:
            assert np.array_equal(first[key], second[key]), (k, key)


def test_another_seed_gives_other_samples(data: dict[str, np.ndarray], tmp_path: Path) -> None:
    other = make_plan(tmp_path / "other", seed=SEED + 1)
    generate(other, progress=False)
    changed = read_split(other.folder)
    for key in ("rgba", "depth", "joints_3d", "vertices", "K", "shape", "pose"):
        for i in range(NUM):
            assert not np.array_equal(changed[key][i], data[key][i]), (key, i)


# ----------------------------------------------------------------------------- resuming


def test_a_killed_run_resumes_to_exactly_the_planned_samples(
    plan: Plan, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    resumed = make_plan(tmp_path / "resumed")
    real_write, calls = gen.write_shard, []

    def killed_on_second_shard(path: Path, samples: list[dict[str, np.ndarray]]) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C (or a scheduler's kill) in the middle of the run
        real_write(path, samples)

    with monkeypatch.context() as patch:
        patch.setattr(gen, "write_shard", killed_on_second_shard)
        with pytest.raises(KeyboardInterrupt):
            generate(resumed, workers=1, progress=False)
    assert folder_listing(resumed.folder) == ["manifest.json", "shard_00000.npz"]
    first_shard = resumed.shard_path(0)
    before = first_shard.stat().st_mtime_ns
    os.utime(first_shard, ns=(before - 10**9, before - 10**9))  # an mtime a rewrite would change
    before -= 10**9

    assert generate(resumed, workers=1, progress=False) == NUM - SHARD_SIZE
    assert folder_listing(resumed.folder) == folder_listing(plan.folder)
    assert first_shard.stat().st_mtime_ns == before  # the finished shard was not redone
    result = read_split(resumed.folder)
    np.testing.assert_array_equal(result["index"], np.arange(NUM))
    reference = read_split(plan.folder)
    for key in reference:
        assert np.array_equal(result[key], reference[key]), key
    assert generate(resumed, workers=1, progress=False) == 0  # nothing left to do
    with monkeypatch.context() as patch:  # ... and nothing started for it: no GL context
        patch.setattr(gen, "SampleMaker", None)
        assert generate(resumed, workers=1, progress=False) == 0


def test_an_interrupted_shard_write_leaves_no_partial_or_temporary_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    plan = make_plan(tmp_path / "out")
    real_write, calls = np.lib.format.write_array, []

    def dies_while_writing(fh: object, array: np.ndarray, **kwargs: object) -> None:
        calls.append(fh)
        if len(calls) == len(EXPECTED) + 4:  # a few arrays into the second shard
            raise KeyboardInterrupt
        real_write(fh, array, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(np.lib.format, "write_array", dies_while_writing)
        with pytest.raises(KeyboardInterrupt):
            generate(plan, progress=False)
    assert folder_listing(plan.folder) == ["manifest.json", "shard_00000.npz"]


def test_shard_parts_run_separately_make_the_same_set_as_one_run(
    plan: Plan, tmp_path: Path
) -> None:
    split = make_plan(tmp_path / "parts")
    assert generate(split, part=(0, 2), progress=False) == 4 + 2  # shards 0 and 2
    assert folder_listing(split.folder) == ["manifest.json", "shard_00000.npz", "shard_00002.npz"]
    assert generate(split, part=(1, 2), progress=False) == 4  # shard 1
    assert folder_listing(split.folder) == folder_listing(plan.folder)
    for k in range(plan.num_shards):
        first, second = read_shard(plan.shard_path(k)), read_shard(split.shard_path(k))
        for key in first:
            assert np.array_equal(first[key], second[key]), (k, key)


def test_parallel_workers_write_the_same_shards_as_one_process(plan: Plan, tmp_path: Path) -> None:
    parallel = make_plan(tmp_path / "parallel")
    assert generate(parallel, workers=2, progress=False) == NUM
    assert folder_listing(parallel.folder) == folder_listing(plan.folder)
    for k in range(plan.num_shards):
        first, second = read_shard(plan.shard_path(k)), read_shard(parallel.shard_path(k))
        for key in first:
            assert np.array_equal(first[key], second[key]), (k, key)


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "change",
    [
        {"seed": SEED + 7},
        {"num": NUM + 1},
        {"config": small_config(lighting_setups=31)},
        {"config": dataclasses.replace(small_config(), size=SIZE + 32)},
    ],
    ids=["seed", "num", "config", "size"],
)
def test_rerunning_into_a_folder_with_other_settings_is_refused(
    plan: Plan, change: dict[str, object]
) -> None:
    listing = folder_listing(plan.folder)
    manifest = (plan.folder / "manifest.json").read_text()
    with pytest.raises(ValueError, match=r"manifest\.json"):
        generate(dataclasses.replace(plan, **change), progress=False)
    assert folder_listing(plan.folder) == listing  # nothing written, nothing removed
    assert (plan.folder / "manifest.json").read_text() == manifest


@pytest.mark.parametrize(
    ("change", "part", "message"),
    [
        ({}, (2, 2), r"2/2"),
        ({}, (-1, 2), r"-1/2"),
        ({"num": 0}, (0, 1), r"--num"),
        ({"split": "test"}, (0, 1), r"split 'test'"),
    ],
)
def test_generate_rejects_bad_arguments(
    tmp_path: Path, change: dict[str, object], part: tuple[int, int], message: str
) -> None:
    plan = dataclasses.replace(make_plan(tmp_path / "out"), **change)
    with pytest.raises(ValueError, match=message):
        generate(plan, part=part, progress=False)


# ----------------------------------------------------------------------------- command line


def test_synth_help_answers() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "handshape.cli", "synth", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for option in ("--out", "--num", "--split", "--seed", "--size", "--workers", "--shard"):
        assert option in result.stdout


def test_synth_command_writes_a_readable_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "set"
    argv = ["synth", "--out", str(out), "--num", "4", "--size", "64"]
    assert main([*argv, "--config", str(CONFIG_PATH)]) == 0
    assert "wrote 4 samples" in capsys.readouterr().out
    shards = SyntheticShards(out / "train")
    assert len(shards) == 4
    assert shards.get(3)["rgba"].shape == (64, 64, 4)
    # The same command again finds everything done; with another seed it is refused.
    assert main([*argv, "--config", str(CONFIG_PATH)]) == 0
    assert "wrote 0 samples" in capsys.readouterr().out
    assert main([*argv, "--config", str(CONFIG_PATH), "--seed", "3"]) == 2
    assert "manifest.json" in capsys.readouterr().err


def test_synth_sheet_command_writes_a_png(
    plan: Plan, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = tmp_path / "sheet.png"
    argv = ["synth-sheet", "--data", str(plan.folder), "--out", str(sheet), "--num", "4"]
    assert main(argv) == 0
    assert str(sheet) in capsys.readouterr().out
    with Image.open(sheet) as image:
        assert image.format == "PNG"
        assert image.width >= 2 * SIZE and image.height >= SIZE


def test_synth_rejects_a_part_outside_its_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["synth", "--out", str(tmp_path / "x"), "--num", "4", "--shard", "2/2"])
    assert exit_info.value.code == 2
    assert "need 0 <= I < N, got 2/2" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- what is not labelled

LABELS = ("joints_2d", "joints_3d", "vertices", "K", "shape", "pose", "rotation", "translation")


def test_forearm_objects_and_skin_never_change_the_labels(data: dict[str, np.ndarray]) -> None:
    bare = small_config(
        forearm={**small_config().forearm, "enabled": False},
        objects={**small_config().objects, "enabled": False},
        skin={**small_config().skin, "enabled": False},
    )
    maker = gen.SampleMaker(bare)
    try:
        for i in (0, 3, 7):
            sample = maker.make(SEED, "train", i)
            for key in LABELS:
                np.testing.assert_array_equal(sample[key], data[key][i], err_msg=key)
            # Only the hand is drawn, and the labels' vertices are the hand model's alone.
            assert set(np.unique(sample["ids"])) <= {0, HAND}
            assert sample["vertices"].shape == (HandModel.default().num_vertices, 3)
    finally:
        maker.close()


def test_joints_behind_the_forearm_or_an_object_are_marked_hidden(
    plan: Plan, data: dict[str, np.ndarray]
) -> None:
    depth = data["depth"].astype(np.float64) * DEPTH_UNIT
    hidden_by_props = 0
    for i in range(NUM):
        px = np.round(data["joints_2d"][i]).astype(int)
        inside = np.all((px >= 0) & (px < SIZE), axis=1)
        for j in np.flatnonzero(inside):
            u, v = px[j]
            part, surface = data["ids"][i, v, u], depth[i, v, u]
            in_front = surface < data["joints_3d"][i, j, 2] - plan.config.visibility_margin
            if part in (FOREARM, OBJECT) and in_front:
                assert not data["visibility"][i, j], (i, j)
                hidden_by_props += 1
    assert hidden_by_props > 0  # the reference set does hide joints behind them


# ----------------------------------------------------------------------------- shadows


def rays_blocked(
    origins: np.ndarray, directions: np.ndarray, triangles: np.ndarray, t_min: float
) -> np.ndarray:
    """(R,) whether each ray origin + t direction, t > t_min, meets any of triangles (T, 3, 3)
    (Moller-Trumbore, vectorised over triangles; origins and directions (R, 3))."""
    a = triangles[:, 0]
    e1, e2 = triangles[:, 1] - a, triangles[:, 2] - a
    blocked = np.zeros(len(origins), bool)
    for k, (o, d) in enumerate(zip(origins, directions, strict=True)):
        p = np.cross(d, e2)
        det = np.einsum("ij,ij->i", e1, p)
        ok = np.abs(det) > 1e-12
        inv = 1.0 / np.where(ok, det, 1.0)
        s = o - a
        u = np.einsum("ij,ij->i", s, p) * inv
        q = np.cross(s, e1)
        v = (q @ d) * inv
        t = np.einsum("ij,ij->i", e2, q) * inv
        blocked[k] = np.any(ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > t_min))
    return blocked


def test_the_hand_shadows_itself_where_the_geometry_says_it_must(
    plan: Plan, data: dict[str, np.ndarray]
) -> None:
    """Lit by its key light alone, a hand pixel is dark with (hard) shadows on exactly when the
    ray from its surface point towards the light meets the scene's meshes (hand, forearm or
    object): the shadow is where the geometry puts it, and nowhere else."""
    maker = gen.SampleMaker(plan.config)
    agree_shadow = agree_lit = shadowed = lit = 0
    try:
        for i in range(NUM):
            sample = {key: values[i] for key, values in data.items()}
            key = maker.setups[int(sample["lighting"])].lights[0]
            parts = maker.parts(sample)
            grey = []
            for shadow in (None, 0.0):
                light = dataclasses.replace(key, shadow=shadow)
                rgba, depth, ids = maker.renderer.render_parts(
                    parts, sample["K"], [light], np.zeros(3)
                )
                grey.append(rgba[..., :3].astype(np.float64).mean(axis=-1))
            plain, hard = grey
            # Hand pixels the key light clearly lights, away from borders and depth steps.
            hand = interior(ids == HAND, depth) & (plain > 40)
            v, u = np.nonzero(hand)
            v, u = v[::2], u[::2]
            z = depth[v, u]
            K = sample["K"].astype(np.float64)
            points = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], 1)
            if key.kind == "directional":
                towards = np.broadcast_to(-np.asarray(key.direction) * [1, -1, -1], points.shape)
            else:
                towards = np.asarray(key.position) * [1, -1, -1] - points
            towards = towards / np.linalg.norm(towards, axis=1, keepdims=True)
            triangles = np.concatenate([p.vertices[p.faces] for p in parts])
            blocked = rays_blocked(points + 0.001 * towards, towards, triangles, 0.002)
            dark = hard[v, u] < 0.5 * plain[v, u]
            # Pixels next to a change of the ray test are the shadow's edge: left out.
            grid = np.full(depth.shape, -1)
            grid[v, u] = blocked
            edge = ndimage.maximum_filter(grid, 5) != ndimage.minimum_filter(
                np.where(grid < 0, 2, grid), 5
            )
            clear = ~edge[v, u]
            shadowed += np.sum(blocked & clear)
            lit += np.sum(~blocked & clear)
            agree_shadow += np.sum(blocked & clear & dark)
            agree_lit += np.sum(~blocked & clear & ~dark)
    finally:
        maker.close()
    assert shadowed > 30  # the reference set has hands shadowing themselves
    assert agree_shadow >= 0.9 * shadowed, (agree_shadow, shadowed)
    assert agree_lit >= 0.98 * lit, (agree_lit, lit)


def test_shadows_change_shading_only_and_switch_off_per_setting(
    plan: Plan, data: dict[str, np.ndarray]
) -> None:
    no_shadows = small_config(shadows={**small_config().shadows, "enabled": False})
    maker = gen.SampleMaker(no_shadows)
    darker = 0
    try:
        for i in (0, 1, 2, 3):
            sample = maker.make(SEED, "train", i)
            assert sample["shadow_softness"] == -1
            for key in (*LABELS, "ids", "depth", "visibility"):
                np.testing.assert_array_equal(sample[key], data[key][i], err_msg=key)
            with_shadows = data["rgba"][i, ..., :3].astype(int)
            without = sample["rgba"][..., :3].astype(int)
            assert np.all(with_shadows <= without + 2)  # a shadow only ever takes light away
            darker += np.sum(with_shadows.sum(-1) < without.sum(-1) - 30)
    finally:
        maker.close()
    assert darker > 0
