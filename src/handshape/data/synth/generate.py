"""Generating the synthetic data set: scenes -> renders and labels -> shards on disk.

Layout: OUT/<split>/manifest.json and OUT/<split>/shard_NNNNN.npz, shard k holding samples
[k * shard_size, (k + 1) * shard_size). A shard appears on disk only complete (written under a
temporary name, then renamed), so a killed run resumes by redoing the missing shards, and
`--shard I/N` gives process I of N the shards k with k % N == I (a SLURM array, several machines
on a shared disk, ...). The manifest records everything a sample depends on; a second run with
other settings into the same folder is refused.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from handshape.data.synth.lighting import lighting_setups
from handshape.data.synth.props import (
    ForearmParams,
    axis_angle_matrix,
    forearm_meshes,
    object_mesh,
    wrist_section,
)
from handshape.data.synth.scene import OBJECT_KINDS, SPLITS, SceneSampler, SynthConfig
from handshape.data.synth.skin import noise_field, skin_albedo, skin_maps
from handshape.handmodel.model import HandModel
from handshape.render.offscreen import srgb_to_linear
from handshape.render.synthetic import (
    FOREARM,
    HAND,
    OBJECT,
    Part,
    SyntheticRenderer,
    vertex_normals,
)
from handshape.safeio.atomic import atomic_write

logger = logging.getLogger(__name__)
GENERATOR_VERSION = 3  # 2: forearm, skin, objects, view prior, id map; 3: shadows
DEPTH_UNIT = 1e-4  # metres per step of the stored uint16 depth (0.1 mm; up to 6.5 m)


class SampleMaker:
    """Turns (seed, split, index) into a labelled render. One per process (holds a GL context)."""

    def __init__(self, config: SynthConfig, model: HandModel | None = None) -> None:
        self.config = config
        self.model = (model or HandModel.default()).double()
        self.sampler = SceneSampler(config, self.model)
        self.setups = lighting_setups(config.lighting_setups)
        self.renderer = SyntheticRenderer(config.size, config.shadows["map_size"])
        self.faces = self.model.faces.numpy()
        rest = self.model.v_template.numpy()
        self.skin = skin_maps(rest, vertex_normals(rest, self.faces), self.model.rest_joints)
        self.wrist_section = wrist_section(rest)

    def make(self, seed: int, split: str, index: int) -> dict[str, np.ndarray]:
        scene = self.sampler.sample(seed, split, index)
        joints = scene.joints
        uvw = joints @ scene.K.T
        joints_2d = uvw[:, :2] / uvw[:, 2:]
        sample = {
            "joints_2d": joints_2d.astype(np.float32),
            "joints_3d": joints.astype(np.float32),
            "vertices": scene.vertices.astype(np.float32),
            "K": scene.K.astype(np.float32),
            "shape": scene.shape.astype(np.float32),
            "pose": scene.pose.astype(np.float32),
            "rotation": scene.rotation.astype(np.float32),
            "translation": scene.translation.astype(np.float32),
            "roll": np.float32(scene.roll),
            "distance": np.float32(scene.distance),
            "skin_rgb": np.asarray(scene.skin_rgb, dtype=np.float32),
            "roughness": np.float32(scene.roughness),
            "gesture": np.int16(scene.gesture),
            "variant": np.int16(scene.variant),
            "viewpoint": np.int16(scene.viewpoint),
            "lighting": np.int16(scene.lighting),
            "skin_tone": np.int16(scene.skin_tone),
            "index": np.int64(index),
            "view_mode": np.int16(scene.view_mode),
            "forearm": scene.forearm.astype(np.float32),
            "sleeve_rgb": scene.sleeve_rgb.astype(np.float32),
            "object_kind": np.int16(scene.object_kind),
            "object_rgb": scene.object_rgb.astype(np.float32),
            "object_roughness": np.float32(scene.object_roughness),
            "object_seed": np.int64(scene.object_seed),
            "skin_seed": np.int64(scene.skin_seed),
            "shadow_softness": np.float32(scene.shadow_softness),
        }
        rgba, depth, ids = self.render_sample(sample)
        # The rendered depth holds the forearm and objects too: joints behind them are hidden.
        visibility = joint_visibility(joints, joints_2d, depth, self.config.visibility_margin)
        return {
            "rgba": rgba,
            "depth": np.round(depth / DEPTH_UNIT).astype(np.uint16),
            "ids": ids,
            "visibility": visibility,
            **sample,
        }

    def parts(self, sample: Mapping[str, np.ndarray]) -> list[Part]:
        """The meshes of a sample (camera frame) from its stored parameters."""
        cfg = self.config
        vertices = np.asarray(sample["vertices"], np.float64)
        joints = np.asarray(sample["joints_3d"], np.float64)
        base = srgb_to_linear([float(c) for c in sample["skin_rgb"]])
        skin_rng = np.random.default_rng(int(sample["skin_seed"]))
        albedo = skin_albedo(self.skin, base, skin_rng, cfg.skin)
        roughness = float(sample["roughness"])
        parts = [Part(vertices, self.faces, albedo, roughness, HAND)]
        if cfg.forearm["enabled"]:
            params = ForearmParams(*(float(p) for p in sample["forearm"]))
            pose_root = axis_angle_matrix(np.asarray(sample["pose"][0], np.float64))
            root = np.asarray(sample["rotation"], np.float64) @ pose_root
            arm, sleeve = forearm_meshes(params, vertices, self.wrist_section, root, joints[0])
            # The forearm's own blotches: the same kind of field, over its own surface.
            amplitude = cfg.skin["noise"] if cfg.skin["enabled"] else 0.0
            tone = base * (1 + amplitude * noise_field(arm.vertices, skin_rng))[:, None]
            parts.append(Part(arm.vertices, arm.faces, np.clip(tone, 0, 1), roughness, FOREARM))
            if sleeve is not None:
                cloth = srgb_to_linear([float(c) for c in sample["sleeve_rgb"]])
                parts.append(Part(sleeve.vertices, sleeve.faces, np.asarray(cloth), 0.95, FOREARM))
        kind = int(sample["object_kind"])
        if kind >= 0:
            rng = np.random.default_rng(int(sample["object_seed"]))
            held = object_mesh(OBJECT_KINDS[kind], joints, rng)
            colour = np.asarray(srgb_to_linear([float(c) for c in sample["object_rgb"]]))
            roughness = float(sample["object_roughness"])
            parts.append(Part(held.vertices, held.faces, colour, roughness, OBJECT))
        return parts

    def render_sample(
        self, sample: Mapping[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render from stored parameters -> (rgba, depth in metres, ids); see `make`."""
        setup = self.setups[int(sample["lighting"])]
        lights = list(setup.lights)
        # The key light (each set-up's first) casts the shadows; samples stored before shadows
        # existed have no softness and are drawn without.
        softness = float(sample.get("shadow_softness", -1.0))
        if softness >= 0 and lights:
            lights[0] = replace(lights[0], shadow=softness)
        return self.renderer.render_parts(
            self.parts(sample),
            np.asarray(sample["K"], np.float64),
            lights,
            np.asarray(setup.ambient),
        )

    def rerender(self, sample: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Render a stored sample again from its labels alone: (rgba, depth in metres)."""
        rgba, depth, _ = self.render_sample(sample)
        return rgba, depth

    def close(self) -> None:
        self.renderer.close()


def joint_visibility(
    joints: np.ndarray, joints_2d: np.ndarray, depth: np.ndarray, margin: float
) -> np.ndarray:
    """(21,) bool: in the crop and not hidden behind another part of the hand.

    A joint inside a finger is always a few mm behind the skin over it, so it counts as visible
    while the surface at its pixel is at most `margin` metres in front of it.
    """
    size = depth.shape[0]
    px = np.round(joints_2d).astype(int)
    inside = np.all((px >= 0) & (px < size), axis=1)
    surface = np.zeros(len(joints))
    surface[inside] = depth[px[inside, 1], px[inside, 0]]
    unoccluded = (surface == 0) | (surface >= joints[:, 2] - margin)
    return inside & unoccluded


@dataclass(frozen=True)
class Plan:
    out: Path
    split: str
    num: int
    seed: int
    config: SynthConfig

    @property
    def folder(self) -> Path:
        return self.out / self.split

    @property
    def num_shards(self) -> int:
        return -(-self.num // self.config.shard_size)

    def shard_path(self, k: int) -> Path:
        return self.folder / f"shard_{k:05d}.npz"

    def shard_indices(self, k: int) -> range:
        size = self.config.shard_size
        return range(k * size, min((k + 1) * size, self.num))

    def manifest(self, model: HandModel) -> dict[str, Any]:
        return {
            "generator": "handshape synth",
            "version": GENERATOR_VERSION,
            "split": self.split,
            "num": self.num,
            "seed": self.seed,
            "num_shards": self.num_shards,
            "depth_unit_m": DEPTH_UNIT,
            "model": {"vertices": model.num_vertices, "faces_hash": model.data.faces_hash()},
            "config": self.config.to_dict(),
        }


def _write_atomic(path: Path, write: Any) -> None:
    # The host in the suffix tells whose leftovers a stale temporary file is (shared disks).
    atomic_write(path, write, suffix=f".tmp-{socket.gethostname()}")


def write_shard(path: Path, samples: list[dict[str, np.ndarray]]) -> None:
    arrays = {key: np.stack([s[key] for s in samples]) for key in samples[0]}

    def write(tmp: str) -> None:
        # An .npz written by hand at deflate level 1: several times faster than
        # np.savez_compressed's default level and barely larger (renders are mostly empty).
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for key, value in arrays.items():
                with archive.open(f"{key}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, value, allow_pickle=False)

    _write_atomic(path, write)


def prepare(plan: Plan, model: HandModel) -> None:
    """Create the folder and manifest, or check that an existing one has the same settings."""
    plan.folder.mkdir(parents=True, exist_ok=True)
    manifest_path = plan.folder / "manifest.json"
    wanted = plan.manifest(model)
    if manifest_path.exists():
        try:
            found = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{manifest_path}: unreadable manifest ({err})") from err
        differ = sorted(k for k in wanted if found.get(k) != wanted[k])
        if differ:
            raise ValueError(
                f"{manifest_path}: this folder holds a data set made with other settings "
                f"(different: {', '.join(differ)}); use another output folder or the same settings"
            )
        return
    _write_atomic(manifest_path, lambda tmp: Path(tmp).write_text(json.dumps(wanted, indent=1)))


def pending_shards(plan: Plan, part: tuple[int, int] = (0, 1)) -> list[int]:
    """Shards of this part (k % N == I) not yet on disk."""
    i, n = part
    return [k for k in range(plan.num_shards) if k % n == i and not plan.shard_path(k).exists()]


# Worker state: one SampleMaker per process, created on first use (it owns a GL context).
_MAKER: SampleMaker | None = None
_MAKER_CONFIG: SynthConfig | None = None


def _shard_job(args: tuple[Plan, int]) -> int:
    global _MAKER, _MAKER_CONFIG
    plan, k = args
    if _MAKER is None or plan.config != _MAKER_CONFIG:
        torch.set_num_threads(1)
        _MAKER, _MAKER_CONFIG = SampleMaker(plan.config), plan.config
    samples = [_MAKER.make(plan.seed, plan.split, i) for i in plan.shard_indices(k)]
    write_shard(plan.shard_path(k), samples)
    return len(samples)


def _init_worker() -> None:
    # One rasteriser thread per process: the processes already fill the cores.
    os.environ["LP_NUM_THREADS"] = "1"


def generate(
    plan: Plan, workers: int = 1, part: tuple[int, int] = (0, 1), progress: bool = True
) -> int:
    """Render every missing shard of this part; returns the number of samples written."""
    if plan.split not in SPLITS:
        raise ValueError(f"unknown split '{plan.split}' (expected one of {SPLITS})")
    if plan.num <= 0:
        raise ValueError(f"--num must be positive, got {plan.num}")
    i, n = part
    if not 0 <= i < n:
        raise ValueError(f"--shard {i}/{n}: need 0 <= I < N")
    model = HandModel.default()
    prepare(plan, model)
    todo = pending_shards(plan, part)
    if not todo:
        return 0
    for k in todo:
        # Leftovers of a run killed too hard to clean up after itself (SIGKILL).
        for stale in plan.folder.glob(f".{plan.shard_path(k).name}.*.tmp-*"):
            stale.unlink(missing_ok=True)
    total = sum(len(plan.shard_indices(k)) for k in todo)
    logger.info("generating %d %s samples in %s", total, plan.split, plan.folder)
    bar = tqdm(
        total=total,
        unit="img",
        desc=f"synth {plan.split}",
        disable=not progress,
        dynamic_ncols=True,
    )
    written = 0
    if workers <= 1:
        maker = SampleMaker(plan.config, model)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small per-sample tensors: threads cost more than they give
        try:
            for k in todo:
                samples = []
                for index in plan.shard_indices(k):
                    samples.append(maker.make(plan.seed, plan.split, index))
                    bar.update(1)
                write_shard(plan.shard_path(k), samples)
                written += len(samples)
        finally:
            torch.set_num_threads(threads)
            maker.close()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers, initializer=_init_worker) as pool:
            for count in pool.imap_unordered(_shard_job, [(plan, k) for k in todo]):
                bar.update(count)
                written += count
    bar.close()
    return written
