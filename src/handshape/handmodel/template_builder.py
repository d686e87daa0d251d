"""Builds handshape's open hand model from assets/design.yaml, deterministically.

The surface is the zero level set of a signed distance function, meshed and relaxed
(`template_surface`). Skinning weights blend along each finger across its joints; shape blend
shapes come from rescaling bones (length, thickness) and the palm; the joint regressor is solved
so that it reproduces the skeleton for every shape.

Run `handshape handmodel build` (or `python -m handshape.handmodel.template_builder`) to
regenerate assets/handmodel.npz; a test checks the committed file against a fresh build.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from handshape.handmodel.data import HandModelData
from handshape.handmodel.template_surface import (
    HandSDF,
    Skeleton,
    build_mesh,
    build_skeleton,
    unit,
    vertex_neighbours,
)
from handshape.joints import (
    FINGERS,
    KINEMATIC_TO_JOINT,
    NUM_KINEMATIC,
    TIP_JOINTS,
)
from handshape.safeio.atomic import atomic_write

ASSETS = Path(__file__).parent / "assets"
DESIGN_PATH = ASSETS / "design.yaml"
MODEL_PATH = ASSETS / "handmodel.npz"


# ----------------------------------------------------------------------------------------------
# Skinning.


def _chain_weights(v: np.ndarray, joints: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Partition of unity along one chain parent -> j1 -> j2 -> j3 -> tip.

    v: (P, 3); joints: (4, 3) the three chain joints then the tip; widths: (3,) half-width of the
    blend across each joint. Returns (P, 4): weight of the parent bone, then of each chain joint.
    """
    entered = np.ones((len(v), 4))
    for k in range(3):
        axis = unit(joints[k + 1] - joints[k])
        s = (v - joints[k]) @ axis / widths[k]
        t = np.clip(0.5 + 0.5 * s, 0.0, 1.0)
        entered[:, k + 1] = t * t * (3 - 2 * t)  # smoothstep across the joint
    # Once a vertex is past joint k it is past every earlier joint too.
    entered = np.minimum.accumulate(entered, axis=1)
    out = entered.copy()
    out[:, :3] -= entered[:, 1:]
    return out


def skinning_weights(
    v: np.ndarray, f: np.ndarray, sdf: HandSDF, max_influences: int = 4
) -> np.ndarray:
    """(N, 3) vertices -> (N, 16) weights, at most `max_influences` non-zero, rows summing to 1.

    Along each finger, weights blend across each joint over a band proportional to the finger's
    radius there (`skinning.blend_widths`). Across fingers, a vertex shares its weights among the
    fingers it is nearly as close to; that sharing is wide at the finger bases (so the web between
    two fingers stretches over many edges instead of tearing when one finger flexes) and vanishes
    towards the tips (so each fingertip moves rigidly with its last bone).
    """
    spec = sdf.design["skinning"]
    s = sdf.skeleton
    parts = sdf.parts(v)
    bone_dist = parts[:, 2:].reshape(len(v), 5, 3).min(axis=2)  # (N, 5) distance to each finger
    on_body = np.minimum(parts[:, 0], parts[:, 1]) < bone_dist.min(axis=1)
    on_palm = on_body & (parts[:, 1] > parts[:, 0])  # body, nearer the palm than the thenar
    chains = np.zeros((len(v), 5, 4))  # per finger: wrist, then its three joints
    for fi in range(5):
        base = 1 + 4 * fi
        chain = np.concatenate([s.joints[base : base + 3], s.axis_ends[fi][None]], axis=0)
        key = "thumb_blend_widths" if fi == 0 else "blend_widths"
        chains[:, fi] = _chain_weights(v, chain, s.radii[base : base + 3] * np.array(spec[key]))
    # The thenar follows the thumb metacarpal; the palm beside it only half.
    chains[on_palm, 0, 1:] *= 0.5
    chains[on_palm, 0, 0] = 1.0 - chains[on_palm, 0, 1:].sum(axis=1)

    nearest = bone_dist.argmin(axis=1)
    baseness = chains[np.arange(len(v)), nearest, :2].sum(axis=1)  # 1 at the base, 0 past PIP
    softness = spec["tip_softness"] + (spec["web_softness"] - spec["tip_softness"]) * baseness
    share = np.exp(-(bone_dist - bone_dist.min(axis=1, keepdims=True)) / softness[:, None])
    share[share < 1e-3] = 0.0
    share /= share.sum(axis=1, keepdims=True)
    w = np.zeros((len(v), NUM_KINEMATIC))
    w[:, 0] = (share * chains[:, :, 0]).sum(axis=1)
    w[:, 1:] = (share[:, :, None] * chains[:, :, 1:]).reshape(len(v), 15)
    # A little diffusion over the palm hides the seams between finger zones there. Finger
    # vertices keep their chain weights, so a fingertip moves rigidly with its last bone.
    adj = vertex_neighbours(f, len(v))
    inv_deg = 1.0 / np.asarray(adj.sum(axis=1)).ravel()
    for _ in range(3):
        smoothed = 0.5 * w + 0.5 * (adj @ w) * inv_deg[:, None]
        w[on_body] = smoothed[on_body]
    keep = np.argsort(-w, axis=1, kind="stable")[:, :max_influences]
    out = np.zeros_like(w)
    np.put_along_axis(out, keep, np.take_along_axis(w, keep, axis=1), axis=1)
    out[out < 1e-4] = 0.0
    return out / out.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# Shape space.


def _bone_frames(skel: Skeleton) -> list[np.ndarray]:
    """Orthonormal frame (3, 3) per kinematic joint, first column along its bone."""
    frames = [np.eye(3)]
    for k in range(1, NUM_KINEMATIC):
        j = KINEMATIC_TO_JOINT[k]
        f = (k - 1) // 3
        end = skel.joints[j + 1] if (k - 1) % 3 < 2 else skel.axis_ends[f]
        a = unit(end - skel.joints[j])
        helper = np.array([0.0, 0.0, 1.0]) if abs(a[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        b = unit(np.cross(a, helper))
        frames.append(np.stack([a, b, np.cross(a, b)], axis=1))
    return frames


def deform_rest(
    v: np.ndarray, weights: np.ndarray, skel: Skeleton, factors: dict[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Rest-pose vertices and joints after rescaling bones.

    factors: relative changes by shape name (0.05 = 5 % longer); missing names mean 0.
    Each bone carries its vertices with an affine map (scale along and across the bone, then move
    with the bone's new origin); skinning weights blend the maps, so the surface stays smooth.
    Returns vertices (N, 3) and joints (21, 3).
    """
    g = 1.0 + factors.get("size", 0.0)
    palm_scale = np.diag(
        [
            1.0 + factors.get("palm_width", 0.0),
            1.0 + factors.get("palm_length", 0.0),
            1.0 + factors.get("palm_thickness", 0.0),
        ]
    )
    frames = _bone_frames(skel)
    new_joints = np.zeros_like(skel.joints)
    maps: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [(np.zeros(3), np.zeros(3), palm_scale)]
    for fi, name in enumerate(FINGERS):
        along = 1.0 + factors.get(f"{name}_length", 0.0)
        across = 1.0 + factors.get(f"{name}_thickness", 0.0)
        base = 1 + 4 * fi
        new_joints[base] = palm_scale @ skel.joints[base]
        for k in range(1, 4):
            new_joints[base + k] = new_joints[base + k - 1] + along * (
                skel.joints[base + k] - skel.joints[base + k - 1]
            )
        for k in range(3):
            r = frames[1 + 3 * fi + k]
            linear = r @ np.diag([along, across, across]) @ r.T
            maps.append((skel.joints[base + k], new_joints[base + k], linear))
    out = np.zeros_like(v)
    for b, (origin, new_origin, linear) in enumerate(maps):
        out += weights[:, b : b + 1] * (new_origin + (v - origin) @ linear.T)
    # Tips are surface vertices and move with the mesh; joints are re-derived by the caller.
    return g * out, g * new_joints


def shape_space(
    v: np.ndarray, weights: np.ndarray, skel: Skeleton, shapes: list[dict]
) -> tuple[np.ndarray, np.ndarray]:
    """Blend shapes (N, 3, S) and the matching joint offsets (21, 3, S) of unit coefficients."""
    vdirs, jdirs = [], []
    for spec in shapes:
        dv, dj = deform_rest(v, weights, skel, {spec["name"]: spec["step"]})
        vdirs.append(dv - v)
        jdirs.append(dj - skel.joints)
    return np.stack(vdirs, axis=2), np.stack(jdirs, axis=2)


def solve_joint_regressor(
    v: np.ndarray,
    shapedirs: np.ndarray,
    joints16: np.ndarray,
    joint_dirs16: np.ndarray,
    neighbours: int = 96,
) -> np.ndarray:
    """A sparse (16, N) regressor with J = R @ vertices for the template and every blend shape.

    Each joint is an affine combination of its nearest vertices, the one closest to uniform
    weights that meets the equality constraints exactly (minimum-norm solution).
    """
    n = len(v)
    reg = np.zeros((NUM_KINEMATIC, n))
    for j in range(NUM_KINEMATIC):
        idx = np.argsort(np.linalg.norm(v - joints16[j], axis=1), kind="stable")[:neighbours]
        # Constraints: sum w = 1; sum w v = J; sum w dv_s = dJ_s for each shape s.
        a = np.concatenate(
            [
                np.ones((1, len(idx))),
                v[idx].T,
                shapedirs[idx].transpose(1, 2, 0).reshape(-1, len(idx)),
            ],
            axis=0,
        )
        b = np.concatenate([[1.0], joints16[j], joint_dirs16[j].reshape(-1)])
        u = np.full(len(idx), 1.0 / len(idx))
        correction, *_ = np.linalg.lstsq(a, b - a @ u, rcond=None)
        reg[j, idx] = u + correction
    return reg


# ----------------------------------------------------------------------------------------------


def _pose_pca(frames_joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pose PCA (hands_components, hands_mean) from the gesture library with perturbations."""
    # Imported here: gestures and limits read the model that this module builds.
    import torch

    from handshape.handmodel.poses import GestureLibrary, JointLimits

    limits = JointLimits.load(frames_joints)
    library = GestureLibrary.load()
    gen = torch.Generator().manual_seed(0)
    base = library.pose_tensor(limits).double()  # (G, 16, 3)
    samples = [base]
    for _ in range(40):
        noise = limits.sample(len(base), generator=gen, spread=0.15, around=base)
        samples.append(noise)
    poses = torch.cat(samples)[:, 1:].reshape(-1, 45).numpy()
    mean = poses.mean(axis=0)
    _, _, vt = np.linalg.svd(poses - mean, full_matrices=False)
    return vt, mean


def build_model(design: dict | None = None) -> HandModelData:
    design = design or yaml.safe_load(DESIGN_PATH.read_text())
    skel = build_skeleton(design)
    sdf = HandSDF(design, skel)
    v, f = build_mesh(design, sdf)
    # Fingertip joints are surface vertices: the one nearest the skin at the end of each axis.
    tip_ids = np.array(
        [int(np.argmin(np.linalg.norm(v - skel.joints[TIP_JOINTS[fi]], axis=1))) for fi in range(5)]
    )
    joints = skel.joints.copy()
    joints[list(TIP_JOINTS)] = v[tip_ids]
    skel = Skeleton(joints, skel.radii, skel.axis_ends)
    weights = skinning_weights(v, f, sdf)
    shapedirs, joint_dirs = shape_space(v, weights, skel, design["shapes"])
    kin = list(KINEMATIC_TO_JOINT)
    regressor = solve_joint_regressor(v, shapedirs, joints[kin], joint_dirs[kin])
    components, mean = _pose_pca(joints)
    return HandModelData(
        v_template=v,
        faces=f,
        shapedirs=shapedirs,
        posedirs=np.zeros((len(v), 3, 9 * (NUM_KINEMATIC - 1))),
        j_regressor=regressor,
        weights=weights,
        tip_vertex_ids=tip_ids,
        shape_names=tuple(s["name"] for s in design["shapes"]),
        hands_components=components,
        hands_mean=mean,
    )


def save_npz(model: HandModelData, path: Path) -> None:
    """Write the model as a plain .npz (no pickles), atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                v_template=model.v_template.astype(np.float64),
                faces=model.faces.astype(np.int32),
                shapedirs=model.shapedirs,
                j_regressor=model.j_regressor,
                weights=model.weights,
                tip_vertex_ids=model.tip_vertex_ids.astype(np.int64),
                shape_names=np.array(model.shape_names),
                hands_components=model.hands_components,
                hands_mean=model.hands_mean,
            )

    atomic_write(path, write)


def load_npz(path: Path = MODEL_PATH) -> HandModelData:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable handshape model file ({err})") from err
    n = arrays["v_template"].shape[0]
    return HandModelData(
        v_template=arrays["v_template"],
        faces=arrays["faces"].astype(np.int64),
        shapedirs=arrays["shapedirs"],
        posedirs=np.zeros((n, 3, 9 * (NUM_KINEMATIC - 1))),
        j_regressor=arrays["j_regressor"],
        weights=arrays["weights"],
        tip_vertex_ids=arrays["tip_vertex_ids"],
        shape_names=tuple(str(s) for s in arrays["shape_names"]),
        hands_components=arrays["hands_components"],
        hands_mean=arrays["hands_mean"],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    args = parser.parse_args(argv)
    model = build_model()
    save_npz(model, args.out)
    print(
        f"wrote {args.out}: {model.num_vertices} vertices, {len(model.faces)} faces, "
        f"{model.num_shapes} shape coefficients"
    )


if __name__ == "__main__":
    main()
