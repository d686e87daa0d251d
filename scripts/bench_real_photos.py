"""Hands in real photographs, side by side, and how fast handshape finds and meshes them.

    .venv/bin/python scripts/bench_real_photos.py --out docs/benchmarks.md   (make bench)

Reads the annotated photographs of shared/real_samples as published by their sources (mmpose's
COCO-style conversions: RHD/test_rhd.json with 21 x [u, v, vis] in RHD's order, each finger tip
to base, `hand_type`, and `joint_cam` in millimetres with the camera's focal length and
principal point; FreiHAND/test_freihand.json with 21 x (u, v, 1) in the project order, right
hands) and scores, for every annotated hand:

- found: some hand whose landmark box overlaps the box of the annotated joints by IoU >= 0.3;
- handedness: the found hand's left or right against the annotation;
- 2D error: the mean pixel distance of the 21 joints over the longer side of the annotated
  joints' box (on the hands found);
- RHD 3D (the 3 RHD photographs): MPJPE after moving the root onto the true root and matching
  the true hand scale (Zimmermann and Brox, the paper's protocol), and PA-MPJPE (similarity
  Procrustes).

Rows: MediaPipe's pipeline as it ships (its landmarks; in 3D its world landmarks), handshape's
hand finder (tiles, refinement, mirrored reading, close-ups; its landmarks and world
landmarks), the keypoint network on those landmarks with and without refinement onto them,
the image network in the found hand's crop (from `--image-bundle`, when there is one), and a
constant hand (the mean posed hand of the keypoint network's training distribution, placed in
each found hand's upright keypoint square). Then the speed on this machine: a photograph to
meshes (detection, landmarks, mesh), more hands in one picture, and video tracking.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from handshape.data.keypoint_inputs import keypoint_square  # noqa: E402
from handshape.evaluation.metrics import align_root_scale, procrustes_align  # noqa: E402
from handshape.inference.camera import Camera  # noqa: E402
from handshape.inference.hands import Hand, HandFinder, HandTracker, box_iou  # noqa: E402
from handshape.inference.media import read_image  # noqa: E402
from handshape.inference.meshes import ImageMesher, KeypointMesher  # noqa: E402
from handshape.inference.predict import default_bundle  # noqa: E402

START, END = "<!-- bench:real start -->", "<!-- bench:real end -->"
FOUND_IOU = 0.3
# RHD lists each finger tip first; the project order goes base to tip.
RHD_TO_PROJECT = np.array([0, *(1 + 4 * f + (3 - s) for f in range(5) for s in range(4))])


@dataclass(frozen=True)
class Photo:
    """One annotated hand: its file, joints (21, 2) px in the project order, left or not, and
    for RHD the camera-frame joints (21, 3) metres and the camera."""

    dataset: str
    path: Path
    joints: np.ndarray
    left: bool
    joints_3d: np.ndarray | None = None
    camera: Camera | None = None

    @property
    def box(self) -> np.ndarray:
        return np.concatenate([self.joints.min(0), self.joints.max(0)])


def _annotations(path: Path) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    try:
        data = json.loads(path.read_text())
        return data, {int(im["id"]): im for im in data["images"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a COCO-style annotation file ({err})") from err


def read_rhd(folder: Path) -> list[Photo]:
    data, images = _annotations(folder / "test_rhd.json")
    photos = []
    for ann in data["annotations"]:
        image = images[int(ann["image_id"])]
        points = np.asarray(ann["keypoints"], dtype=np.float64).reshape(21, -1)[:, :2]
        hand = ann.get("hand_type", "right")
        if hand not in ("left", "right"):
            raise ValueError(f"{folder / 'test_rhd.json'}: hand_type {hand!r} is not left/right")
        xyz = np.asarray(ann["joint_cam"], dtype=np.float64).reshape(21, 3)[RHD_TO_PROJECT] / 1000
        cam = image["cam_param"]
        camera = Camera(float(cam["focal"][0]), *map(float, cam["princpt"]), "given")
        photos.append(
            Photo(
                "RHD",
                folder / image["file_name"],
                points[RHD_TO_PROJECT],
                hand == "left",
                xyz,
                camera,
            )
        )
    return photos


def read_freihand(folder: Path) -> list[Photo]:
    data, images = _annotations(folder / "test_freihand.json")
    return [
        Photo(
            "FreiHAND",
            folder / images[int(ann["image_id"])]["file_name"],
            np.asarray(ann["keypoints"], dtype=np.float64).reshape(21, -1)[:, :2],
            False,
        )
        for ann in data["annotations"]
    ]


def read_photos(root: Path) -> list[Photo]:
    """Every annotated hand under root (RHD/ and FreiHAND/ folders, whichever exist)."""
    photos: list[Photo] = []
    if (root / "RHD" / "test_rhd.json").exists():
        photos += read_rhd(root / "RHD")
    if (root / "FreiHAND" / "test_freihand.json").exists():
        photos += read_freihand(root / "FreiHAND")
    if not photos:
        raise FileNotFoundError(f"{root}: no RHD/test_rhd.json or FreiHAND/test_freihand.json")
    return photos


def match(hands: list[Hand], photo: Photo) -> Hand | None:
    """The found hand that is the annotated one, or None."""
    best = max(hands, key=lambda h: box_iou(h.box, photo.box), default=None)
    return best if best is not None and box_iou(best.box, photo.box) >= FOUND_IOU else None


def constant_layout(samples: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """The mean posed hand of the keypoint network's training distribution: (21, 2) in its
    upright keypoint square (units of the square's side, centred) and (21, 3) root-relative
    joints over the hand scale, in that square's axes."""
    from omegaconf import OmegaConf

    from handshape.config import load_experiment
    from handshape.data.keypoint_data import posed_hands
    from handshape.geometry.camera import hand_scale

    cfg = OmegaConf.to_container(load_experiment("lift"), resolve=True)
    drawn = posed_hands(cfg).draw(0, "train", 0, samples)
    A, side = keypoint_square(drawn["joints_2d"], 1)
    inside = drawn["joints_2d"] @ A[:, :2, :2].transpose(1, 2) + A[:, None, :2, 2]
    turn = A[:, :2, :2] / (1 / side)[:, None, None]  # R^T
    rel = drawn["joints_3d"] - drawn["joints_3d"][:, :1]
    rel = torch.cat([rel[..., :2] @ turn.transpose(1, 2), rel[..., 2:]], -1)
    rel = rel / hand_scale(drawn["joints_3d"])[:, None, None]
    return (inside - 0.5).mean(0).numpy(), rel.mean(0).numpy()


def constant_hand(hand: Hand, layout: tuple[np.ndarray, np.ndarray], scale: float) -> tuple:
    """(joints_2d (21, 2) px, joints_3d (21, 3) metres, up to a translation) of the constant
    hand in a found hand's upright square."""
    flat, rel = layout
    points = torch.from_numpy(hand.landmarks[None, :, :2]).float()
    A, side = keypoint_square(points, 1)
    inv = torch.linalg.inv(A[0]).numpy()
    uv = (flat + 0.5) @ inv[:2, :2].T + inv[:2, 2]
    R = (A[0, :2, :2] * side[0]).numpy().T  # back to the image's axes
    xyz = rel.copy()
    xyz[:, :2] = rel[:, :2] @ R.T
    if hand.handedness == "left":
        xyz[:, 0] *= -1
    return uv, xyz * scale


def errors_2d(points: np.ndarray, photo: Photo) -> float:
    side = float((photo.box[2:] - photo.box[:2]).max())
    return float(np.linalg.norm(points - photo.joints, axis=1).mean() / side)


def errors_3d(points: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(MPJPE after root and scale alignment, PA-MPJPE), millimetres."""
    p, g = points[None], truth[None]
    root_scale = np.linalg.norm(align_root_scale(p, g) - g, axis=-1).mean() * 1000
    pa = np.linalg.norm(procrustes_align(p, g) - g, axis=-1).mean() * 1000
    return float(root_scale), float(pa)


def score(
    real: Path, keypoint_bundle: Path, image_bundle: Path | None
) -> tuple[dict[str, dict[str, Any]], list[Photo]]:
    photos = read_photos(real)
    mediapipe = HandFinder.load(tiles=0, refine=False, flip=False, closeup=False)
    finder = HandFinder(mediapipe.detector, mediapipe.landmarker)
    keypoints = KeypointMesher.load(keypoint_bundle)
    raw = KeypointMesher(keypoints.net, keypoints.cfg, refine=0.0)
    image_net = ImageMesher.load(image_bundle, refine=0.0) if image_bundle is not None else None
    layout = constant_layout()
    rows: dict[str, dict[str, Any]] = {}

    def add(row: str, photo: Photo, hand: Hand | None, points_2d=None, points_3d=None) -> None:
        r = rows.setdefault(
            row, {"hands": 0, "found": 0, "handed": 0, "e2d": [], "rs": [], "pa": []}
        )
        r["hands"] += 1
        if hand is None:
            return
        r["found"] += 1
        r["handed"] += hand.handedness == ("left" if photo.left else "right")
        r["e2d"].append(errors_2d(points_2d, photo))
        if photo.joints_3d is not None and points_3d is not None:
            rs, pa = errors_3d(points_3d, photo.joints_3d)
            r["rs"].append(rs)
            r["pa"].append(pa)

    for photo in photos:
        image, exif = read_image(photo.path)
        camera = photo.camera or Camera.of_image(image.shape[1], image.shape[0], None, exif)
        hand = match(mediapipe.find(image), photo)
        add(
            "MediaPipe (its pipeline, landmarks; 3D: world landmarks)",
            photo,
            hand,
            None if hand is None else hand.landmarks[:, :2],
            None if hand is None else hand.world,
        )
        hand = match(finder.find(image), photo)
        add(
            "handshape's finder (landmarks; 3D: world landmarks)",
            photo,
            hand,
            None if hand is None else hand.landmarks[:, :2],
            None if hand is None else hand.world,
        )
        for row, mesher in (
            ("keypoint network, refined onto the landmarks (default)", keypoints),
            ("keypoint network, not refined", raw),
            ("image network in the found hand's crop (its own joints)", image_net),
        ):
            if mesher is None:
                continue
            mesh = mesher(image, [hand], camera)[0] if hand is not None else None
            add(
                row,
                photo,
                hand,
                None if mesh is None else mesh.joints_2d,
                None if mesh is None else mesh.joints_3d,
            )
        const = constant_hand(hand, layout, keypoints.scale) if hand is not None else (None, None)
        add("constant hand in the found hand's square", photo, hand, *const)
    small = small_hands(photos, {"mediapipe": mediapipe, "handshape": finder})
    table = {
        row: {
            "found": f"{r['found']}/{r['hands']}",
            "handedness_right": f"{r['handed']}/{r['found']}",
            "error_2d": float(np.mean(r["e2d"])) if r["e2d"] else None,
            "rhd_mpjpe_root_scale_mm": float(np.mean(r["rs"])) if r["rs"] else None,
            "rhd_pa_mpjpe_mm": float(np.mean(r["pa"])) if r["pa"] else None,
        }
        for row, r in rows.items()
    }
    table["_small_hands"] = small
    return table, photos


def small_hands(photos: list[Photo], finders: dict[str, HandFinder]) -> dict[str, str]:
    """Hands small in a large picture: each photograph pasted at 1:1 into a 1920 x 1080 scene
    (grey noise), off centre; how many annotated hands each finder finds there."""
    rng = np.random.default_rng(0)
    found = dict.fromkeys(finders, 0)
    for photo in photos:
        image, _ = read_image(photo.path)
        scene = rng.integers(90, 150, (1080, 1920, 3)).astype(np.uint8)
        h, w = image.shape[:2]
        x0, y0 = int(rng.integers(0, 1920 - w)), int(rng.integers(0, 1080 - h))
        scene[y0 : y0 + h, x0 : x0 + w] = image
        moved = Photo(photo.dataset, photo.path, photo.joints + np.array([x0, y0]), photo.left)
        for name, finder in finders.items():
            found[name] += match(finder.find(scene), moved) is not None
    return {name: f"{n}/{len(photos)}" for name, n in found.items()}


def _ms(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def speed(real: Path, keypoint_bundle: Path, repeat: int) -> dict[str, float]:
    """Median milliseconds on this machine (`torch.get_num_threads()` threads)."""
    finder = HandFinder.load()
    mesher = KeypointMesher.load(keypoint_bundle)
    one, _ = read_image(real / "STB" / "stb_SK_color_0.png")
    frei = [read_image(real / "FreiHAND" / f"{n:08d}.jpg")[0] for n in (355, 17620, 32915, 98035)]
    several = np.concatenate(  # four FreiHAND hands in a 2 x 2 grid
        [np.concatenate(frei[:2], axis=1), np.concatenate(frei[2:], axis=1)], axis=0
    )
    camera = Camera.of_image(one.shape[1], one.shape[0])
    out: dict[str, float] = {}
    hands = finder.find(one)
    out["hands_in_one"] = len(hands)
    out["detect_ms"] = _ms(lambda: finder.detect(one), repeat)
    from handshape.inference import hand_landmarks, palm_detection

    rois = [palm_detection.detection_roi(d) for d in finder.detect(one)]
    found = finder.read(one, rois)
    again = [hand_landmarks.landmarks_roi(f.points) for f in found if f.presence >= 0.5]
    out["landmarks_ms"] = _ms(
        lambda: (finder.read(one, rois), finder.read(one, again, flip=True)), repeat
    )
    out["mesh_ms"] = _ms(lambda: mesher(one, hands, camera), repeat)
    out["photo_ms"] = _ms(lambda: mesher(one, finder.find(one), camera), repeat)
    wide = Camera.of_image(several.shape[1], several.shape[0])
    out["hands_in_several"] = len(finder.find(several))
    out["several_ms"] = _ms(lambda: mesher(several, finder.find(several), wide), repeat)
    single = Camera.of_image(frei[0].shape[1], frei[0].shape[0])
    out["single_ms"] = _ms(lambda: mesher(frei[0], finder.find(frei[0]), single), repeat)
    out["per_further_hand_ms"] = (out["several_ms"] - out["single_ms"]) / max(
        out["hands_in_several"] - 1, 1
    )
    # Video: the STB frame panned a pixel per frame, tracked.
    frames = [np.roll(one, k, axis=1) for k in range(60)]
    tracker = HandTracker(finder)

    def track() -> None:
        tracker.reset()
        for frame in frames:
            mesher(frame, tracker.step(frame), camera)

    out["video_fps"] = 60 / (_ms(track, max(1, repeat // 10)) / 1000)
    return out


def report(table: dict[str, dict[str, Any]], fast: dict[str, float], command: str) -> str:
    def f(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    lines = [
        START,
        "## Hands in real photographs (shared/real_samples)",
        "",
        f"`{command}` ({time.strftime('%Y-%m-%d')}, {torch.get_num_threads()} CPU threads). "
        "11 annotated hands: 3 RHD photographs (2 left hands, 1 right), 8 FreiHAND images (2 "
        "hands, 4 versions each). 2D error: mean joint distance over the longer side of the "
        "annotated joints' box; RHD 3D on the 3 RHD hands.",
        "",
        "| row | found | handedness right | 2D error | RHD MPJPE, root + scale aligned (mm) "
        "| RHD PA-MPJPE (mm) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row, r in table.items():
        if row.startswith("_"):
            continue
        lines.append(
            f"| {row} | {r['found']} | {r['handedness_right']} | {f(r['error_2d'], '.3f')} | "
            f"{f(r['rhd_mpjpe_root_scale_mm'], '.1f')} | {f(r['rhd_pa_mpjpe_mm'], '.1f')} |"
        )
    small = table["_small_hands"]
    lines += [
        "",
        "Hands small in a large picture (each photograph pasted 1:1 into a 1920 x 1080 scene of "
        f"grey noise): MediaPipe's pipeline finds {small['mediapipe']}, handshape's finder (3 x 3 "
        f"tiles beside the whole picture) {small['handshape']}.",
        "",
        f"Speed (median, this machine): the STB photograph (640 x 480, {fast['hands_in_one']:.0f} "
        f"hand) to meshes {fast['photo_ms']:.1f} ms: detection {fast['detect_ms']:.1f} ms (the "
        f"whole image; tiles start at {HandFinder.tile_from} px), landmarks "
        f"{fast['landmarks_ms']:.1f} ms (a read and a "
        f"mirrored re-read), mesh {fast['mesh_ms']:.1f} ms (keypoint network, root depth, "
        f"refinement). Four FreiHAND images in a 2 x 2 grid ({fast['hands_in_several']:.0f} hands "
        f"found): {fast['several_ms']:.1f} ms, against {fast['single_ms']:.1f} ms for one of "
        f"them alone: {fast['per_further_hand_ms']:.1f} ms per further hand. Video tracking "
        "(one hand, the STB frame panned): "
        f"{fast['video_fps']:.0f} frames/s, meshes included, decoding and drawing not.",
        END,
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, default=REPO.parent / "shared" / "real_samples")
    parser.add_argument(
        "--image-bundle",
        type=Path,
        default=REPO / "outputs" / "pretrain" / "bundle",
        help="the image network's bundle (its row is left out when missing)",
    )
    parser.add_argument("--keypoint-bundle", type=Path, help="default: the shipped network")
    parser.add_argument("--out", default="docs/benchmarks.md", help="file to update; - prints only")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    bundle = args.image_bundle if (args.image_bundle / "model.safetensors").is_file() else None
    keypoints = args.keypoint_bundle or default_bundle("keypoints")
    table, _ = score(args.real, keypoints, bundle)
    fast = speed(args.real, keypoints, args.repeat)
    section = report(table, fast, "python scripts/bench_real_photos.py")
    print(section)
    if args.json is not None:
        args.json.write_text(json.dumps({"scores": table, "speed": fast}, indent=1))
    if args.out != "-":
        from bench_synth import update_section

        update_section(Path(args.out), section, START, END)


if __name__ == "__main__":
    main()
