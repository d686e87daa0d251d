"""Builders of tiny real data sets in exactly their published on-disk formats.

RHD: the annotation pickle as Python 2's cPickle writes it with protocol 2 (numpy arrays whose
data are Python 2 `str`, i.e. BINSTRING opcodes), colour/mask/depth PNGs. STB: MATLAB v5 label
files (scipy.io.savemat), SK colour and depth PNGs. FreiHAND: JSON lists and JPEGs.
Also `rebuild_rhd_from_json`: the real RHD photographs in shared/real_samples turned back into
the RHD layout from mmpose's COCO-style conversion (millimetres there, metres in the pickle).
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image, ImageDraw
from scipy.spatial.transform import Rotation

# --- a Python 2 cPickle, protocol 2 ------------------------------------------------------------


def _py2_str(data: bytes) -> bytes:
    """A Python 2 `str` (bytes): SHORT_BINSTRING below 256 bytes, else BINSTRING."""
    if len(data) < 256:
        return b"U" + bytes([len(data)]) + data
    return b"T" + struct.pack("<i", len(data)) + data


def _py2_int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    return b"J" + struct.pack("<i", value)


def _py2_tuple(items: list[bytes]) -> bytes:
    """Protocol 2's TUPLE1/2/3 for short tuples, MARK ... TUPLE otherwise."""
    if 1 <= len(items) <= 3:
        return b"".join(items) + b"\x85\x86\x87"[len(items) - 1 : len(items)]
    return b"(" + b"".join(items) + b"t"


def _py2_ndarray(array: np.ndarray) -> bytes:
    """numpy's Python 2 reduction: _reconstruct(ndarray, (0,), 'b') then BUILD with the state
    (1, shape, dtype, fortran, data-as-str), the dtype itself dtype('f4', 0, 1) + its state."""
    array = np.ascontiguousarray(array)
    code = array.dtype.str[1:]  # e.g. 'f4'
    dtype = (
        b"cnumpy\ndtype\n" + _py2_str(code.encode()) + b"K\x00K\x01\x87R"
        + b"(K\x03" + _py2_str(b"<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )  # fmt: skip
    shape = _py2_tuple([_py2_int(n) for n in array.shape])
    data = array.astype(array.dtype.newbyteorder("<")).tobytes()
    return (
        b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n"
        + b"K\x00\x85" + _py2_str(b"b") + b"\x87R"
        + b"(K\x01" + shape + dtype + b"\x89" + _py2_str(data) + b"tb"
    )  # fmt: skip


def _py2_value(value: object) -> bytes:
    if isinstance(value, np.ndarray):
        return _py2_ndarray(value)
    if isinstance(value, bool):
        return b"\x88" if value else b"\x89"
    if isinstance(value, int):
        return _py2_int(value)
    if isinstance(value, float):
        return b"G" + struct.pack(">d", value)
    if isinstance(value, str):
        return _py2_str(value.encode("ascii"))
    if isinstance(value, dict):
        items = b"".join(_py2_value(k) + _py2_value(v) for k, v in value.items())
        return b"}" + (b"(" + items + b"u" if value else b"")
    raise TypeError(f"no Python 2 pickling for {type(value).__name__}")


def python2_pickle(obj: object) -> bytes:
    """The bytes Python 2's cPickle.dump(obj, f, 2) writes for dicts, ints, floats, str and
    numpy arrays (without memo PUTs, which change nothing a reader sees)."""
    return b"\x80\x02" + _py2_value(obj) + b"."


# --- hands -------------------------------------------------------------------------------------


def random_hand(rng: np.random.Generator, centre: tuple[float, float, float]) -> np.ndarray:
    """(21, 3) plausible-sized joints (metres, project order) around `centre` in a camera frame:
    a wrist and five fingers fanning out about 9 cm, with a random rotation."""
    joints = np.zeros((21, 3))
    for f in range(5):
        angle = np.deg2rad(-50 + 25 * f)
        direction = np.array([np.sin(angle), -np.cos(angle), 0.0])
        for s in range(4):
            joints[1 + 4 * f + s] = direction * (0.03 + 0.022 * s) + rng.normal(0, 0.003, 3)
    rot = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
    return joints @ rot.T + np.asarray(centre)


def project(K: np.ndarray, points: np.ndarray) -> np.ndarray:
    uvw = points @ K.T
    return uvw[:, :2] / uvw[:, 2:3]


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def hand_polygon_mask(shape: tuple[int, int], uv: np.ndarray, value: int) -> np.ndarray:
    """(H, W) uint8 with `value` on thick lines along the skeleton of 2D joints (21, 2)."""
    canvas = Image.new("L", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(canvas)
    for f in range(5):
        chain = [tuple(uv[0])] + [tuple(uv[1 + 4 * f + s]) for s in range(4)]
        draw.line(chain, fill=value, width=7)
    return np.asarray(canvas)


# --- RHD ---------------------------------------------------------------------------------------

RHD_SIZE = 320
RHD_FROM_PROJECT = (0, *(4 * f + 4 - s for f in range(5) for s in range(4)))


def to_rhd_order(joints: np.ndarray) -> np.ndarray:
    """(21, k) project order -> RHD's per-hand order (each finger tip first)."""
    out = np.zeros_like(joints)
    out[list(RHD_FROM_PROJECT)] = joints
    return out


def encode_rhd_depth(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) uint8 RHD depth PNG pixels (R high byte, G low byte)."""
    value = np.clip(np.rint(depth_m / 5.0 * 65535.0), 0, 65535).astype(np.uint16)
    out = np.zeros((*depth_m.shape, 3), np.uint8)
    out[..., 0] = value >> 8
    out[..., 1] = value & 255
    return out


def make_rhd(root: Path, split: str, num: int, seed: int = 0) -> dict[int, dict]:
    """A tiny RHD split: returns {id: {'xyz', 'uv_vis', 'K', 'left' (bool), 'project_xyz'}}.

    Even ids hold a dominant left hand, odd ids a right one; the other hand is small in the
    mask. The colour image is dark with the hand's skeleton drawn bright; depth is the hand's
    depth on its mask pixels and 0 elsewhere."""
    rng = np.random.default_rng(seed)
    folder = root / split
    annotations, truth = {}, {}
    for key in range(num):
        sample_id = key * 7 + 3
        K = np.array([[280.0 + 10 * key, 0, 160.0], [0, 280.0 + 10 * key, 155.0], [0, 0, 1]])
        left = key % 2 == 0
        hands = [random_hand(rng, (0.03 * (h * 2 - 1), 0.0, 0.6)) for h in range(2)]
        xyz = np.concatenate([to_rhd_order(h) for h in hands])
        uv = project(K, xyz)
        vis = (rng.random(42) > 0.2).astype(np.float64)
        annotations[sample_id] = {
            "xyz": xyz.astype(np.float32),
            "uv_vis": np.concatenate([uv, vis[:, None]], axis=1).astype(np.float32),
            "K": K.astype(np.float32),
        }
        dominant = 0 if left else 1
        ids = np.zeros((RHD_SIZE, RHD_SIZE), np.uint8)
        ids[:, :] = 0
        other_uv = project(K, hands[1 - dominant])
        small = hand_polygon_mask(ids.shape, other_uv, 1) > 0
        big = hand_polygon_mask(ids.shape, project(K, hands[dominant]), 1) > 0
        # The other hand shows only a few pixels: its wrist area.
        other_id, own_id = (20, 5) if left else (5, 20)
        ids[small & (np.arange(RHD_SIZE)[None, :] % 9 == 0)] = other_id
        ids[big] = own_id
        color = np.full((RHD_SIZE, RHD_SIZE, 3), 30, np.uint8)
        color[big] = (220, 180, 150)
        depth = np.where(big, 0.6, 0.0)
        name = f"{sample_id:05d}.png"
        write_png(folder / "color" / name, color)
        write_png(folder / "mask" / name, ids)
        write_png(folder / "depth" / name, encode_rhd_depth(depth))
        truth[sample_id] = {"left": left, "project_xyz": hands[dominant], "K": K}
    (folder / f"anno_{split}.pickle").write_bytes(python2_pickle(annotations))
    return truth


def rebuild_rhd_from_json(samples: Path, root: Path, split: str = "training") -> dict[int, str]:
    """shared/real_samples/RHD -> an RHD layout under `root`; returns {id: hand_type}.

    The colour PNGs are copied unchanged. From test_rhd.json: K from focal/princpt, the dominant
    hand's joints (mm -> m) and uv/visibility in its half of the 42; the other hand is
    absent (zeros, invisible). The mask marks the dominant hand along its skeleton (the real
    masks are not public) and depth is 0.5 m there, so the protocol's hand choice picks it.
    """
    coco = json.loads((samples / "test_rhd.json").read_text())
    images = {im["id"]: im for im in coco["images"]}
    annotations, kinds = {}, {}
    folder = root / split
    for ann in coco["annotations"]:
        im = images[ann["image_id"]]
        (fx, fy), (cx, cy) = im["cam_param"]["focal"], im["cam_param"]["princpt"]
        K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
        xyz = np.zeros((42, 3))
        uv_vis = np.zeros((42, 3))
        offset = 0 if ann["hand_type"] == "left" else 21
        xyz[offset : offset + 21] = np.asarray(ann["joint_cam"]) / 1000.0
        uv_vis[offset : offset + 21] = np.asarray(ann["keypoints"]).reshape(21, 3)
        annotations[im["id"]] = {
            "xyz": xyz.astype(np.float32),
            "uv_vis": uv_vis.astype(np.float32),
            "K": K.astype(np.float32),
        }
        size = (im["height"], im["width"])
        rhd_uv = uv_vis[offset : offset + 21, :2]
        project_uv = rhd_uv[list(RHD_FROM_PROJECT)]
        mask = hand_polygon_mask(size, project_uv, 17 if offset == 0 else 33)
        name = im["file_name"]
        (folder / "color").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(samples / name, folder / "color" / name)
        write_png(folder / "mask" / name, mask)
        write_png(folder / "depth" / name, encode_rhd_depth(np.where(mask > 0, 0.5, 0.0)))
        kinds[im["id"]] = ann["hand_type"]
    (folder / f"anno_{split}.pickle").write_bytes(python2_pickle(annotations))
    return kinds


# --- STB ---------------------------------------------------------------------------------------

STB_SIZE = (480, 640)
SK_COLOR_K = np.array([[607.92271, 0.0, 314.78337], [0.0, 607.88192, 236.42484], [0, 0, 1.0]])
SK_DEPTH_K = np.array([[475.62768, 0.0, 336.41179], [0.0, 474.77709, 238.77962], [0, 0, 1.0]])
SK_R = Rotation.from_rotvec([0.00531, -0.01196, 0.00301]).as_matrix()
SK_T_MM = np.array([-24.0381, -0.4563, -1.2326])
# STB label order (palm, little, ring, middle, index, thumb) from the project order.
STB_FROM_PROJECT = (0, *(1 + 4 * f + s for f in (4, 3, 2, 1, 0) for s in range(4)))


def splat(K: np.ndarray, points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(N, 3) points -> (H, W) nearest depth (0 where none), each point to its nearest pixel."""
    uv = np.rint(project(K, points)).astype(int)
    ok = (uv[:, 0] >= 0) & (uv[:, 0] < shape[1]) & (uv[:, 1] >= 0) & (uv[:, 1] < shape[0])
    uv, z = uv[ok], points[ok, 2]
    order = np.argsort(-z)
    out = np.zeros(shape)
    out[uv[order, 1], uv[order, 0]] = z[order]
    return out


def make_stb(
    root: Path, sequences: Mapping[str, int], seed: int = 0, wall: bool = False
) -> dict[str, np.ndarray]:
    """Tiny STB sequences ({name: frames}); returns {seq: (frames, 21, 3) mm colour-frame joints
    in the STB label order, palm centre first}.

    Labels go into labels/<seq>_SK.mat in the DEPTH camera's frame, as STB stores them. Every
    frame shows one square patch (6 cm, 0.45-0.6 m away, in the colour frame): bright in the
    colour image, and as depth in SK_depth (R + 256 G mm) seen from the depth camera. With
    `wall`, every other depth pixel sees a wall 0.9 m away (as real frames have depth nearly
    everywhere)."""
    rng = np.random.default_rng(seed)
    out = {}
    for seq, frames in sequences.items():
        colour_mm = np.stack(
            [
                random_hand(rng, (0.0, 0.0, 0.5))[list(STB_FROM_PROJECT)] * 1000
                for _ in range(frames)
            ]
        )
        depth_frame_mm = colour_mm @ SK_R.T + SK_T_MM  # X = R Xc + T
        (root / "labels").mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(
            root / "labels" / f"{seq}_SK.mat", {"handPara": depth_frame_mm.transpose(2, 1, 0)}
        )
        scipy.io.savemat(
            root / "labels" / f"{seq}_BB.mat", {"handPara": colour_mm.transpose(2, 1, 0)}
        )
        for n in range(frames):
            centre = np.array([rng.uniform(-0.08, 0.08), rng.uniform(-0.05, 0.05), 0.5])
            centre[2] = rng.uniform(0.45, 0.6)
            g = np.linspace(-0.03, 0.03, 250)
            grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
            pts = np.concatenate([grid, np.zeros((len(grid), 1))], 1) + centre
            colour_depth = splat(SK_COLOR_K, pts, STB_SIZE)
            color = np.full((*STB_SIZE, 3), 20, np.uint8)
            color[colour_depth > 0] = (200, 160, 140)
            depth_mm = splat(SK_DEPTH_K, (pts * 1000) @ SK_R.T + SK_T_MM, STB_SIZE)
            if wall:
                depth_mm[depth_mm == 0] = 900.0
            depth_mm = np.rint(depth_mm).astype(np.uint16)
            depth_png = np.zeros((*STB_SIZE, 3), np.uint8)
            depth_png[..., 0] = depth_mm & 255
            depth_png[..., 1] = depth_mm >> 8
            write_png(root / seq / f"SK_color_{n}.png", color)
            write_png(root / seq / f"SK_depth_{n}.png", depth_png)
            write_png(root / seq / f"BB_left_{n}.png", color)
            write_png(root / seq / f"BB_right_{n}.png", color)
        out[seq] = colour_mm
    return out


# --- FreiHAND ----------------------------------------------------------------------------------

FREIHAND_SIZE = 224


def make_freihand(root: Path, num: int, num_eval: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """A tiny FreiHAND root: `num` training ids x 4 versions, `num_eval` evaluation ids; returns
    the arrays written (K, xyz, verts)."""
    rng = np.random.default_rng(seed)
    K = np.stack(
        [np.array([[f, 0, 112.0], [0, f, 112.0], [0, 0, 1]]) for f in rng.uniform(400, 700, num)]
    )
    xyz = np.stack([random_hand(rng, (0.0, 0.0, 0.7)) for _ in range(num)])
    verts = rng.normal(0, 0.03, (num, 778, 3)) + xyz[:, :1]
    mano = rng.normal(0, 0.1, (num, 1, 61))
    scale = np.linalg.norm(xyz[:, 9] - xyz[:, 10], axis=1)
    for name, arr in (("K", K), ("xyz", xyz), ("verts", verts), ("mano", mano), ("scale", scale)):
        (root / f"training_{name}.json").parent.mkdir(parents=True, exist_ok=True)
        (root / f"training_{name}.json").write_text(json.dumps(arr.tolist()))
    (root / "training" / "rgb").mkdir(parents=True, exist_ok=True)
    (root / "training" / "mask").mkdir(parents=True, exist_ok=True)
    for i in range(num):
        uv = project(K[i], xyz[i])
        mask = hand_polygon_mask((FREIHAND_SIZE, FREIHAND_SIZE), uv, 255)
        Image.fromarray(mask).save(root / "training" / "mask" / f"{i:08d}.jpg", quality=90)
        for v in range(4):
            image = np.full((FREIHAND_SIZE, FREIHAND_SIZE, 3), 40 * v, np.uint8)
            image[mask > 0] = (230, 190, 160)
            Image.fromarray(image).save(root / "training" / "rgb" / f"{i + num * v:08d}.jpg")
    eval_K = K[:num_eval]
    (root / "evaluation" / "rgb").mkdir(parents=True, exist_ok=True)
    (root / "evaluation_K.json").write_text(json.dumps(eval_K.tolist()))
    (root / "evaluation_scale.json").write_text(json.dumps(scale[:num_eval].tolist()))
    for i in range(num_eval):
        image = rng.integers(0, 255, (FREIHAND_SIZE, FREIHAND_SIZE, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "evaluation" / "rgb" / f"{i:08d}.jpg")
    return {"K": K, "xyz": xyz, "verts": verts}
