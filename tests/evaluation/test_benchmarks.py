"""Specification of the benchmarks' evaluation (`handshape eval` on rhd, stb, freihand): the
ground truth in each set's own frame, numbers against hand-computed values for predictions with
known errors, the official prediction files and their round trip, and clear errors. Tiny
fixtures in the published formats, a tiny untrained network: the protocol, not accuracy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from handshape.cli import main
from handshape.config import PACKAGE_CONFIGS, load_experiment
from handshape.data.freihand import FreiHANDDataset
from handshape.data.registry import eval_dataset
from handshape.data.rhd import RHDDataset
from handshape.data.stb import STBDataset
from handshape.evaluation import benchmarks
from handshape.evaluation.metrics import THRESHOLDS_20_50, THRESHOLDS_20_50_ZB, auc
from handshape.evaluation.predictions import write_freihand_predictions, write_joint_predictions
from handshape.nets.network import HandNet
from real_formats import make_freihand, make_rhd, make_stb, project

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
SIZE = 64  # crop side: small and fast; the network resizes to its input anyway
STB_TEST = {"B1Counting": 2, "B1Random": 2}


def tiny(*overrides: str) -> tuple[HandNet, dict[str, Any]]:
    cfg = OmegaConf.to_container(
        load_experiment("tiny", list(overrides), PACKAGE_CONFIGS), resolve=True
    )
    assert isinstance(cfg, dict)
    torch.manual_seed(0)
    return HandNet.from_config(cfg).eval(), cfg


def write_bundle(folder: Path, *overrides: str) -> Path:
    net, cfg = tiny(*overrides)
    folder.mkdir(parents=True)
    save_file(net.state_dict(), str(folder / "model.safetensors"))
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    return folder


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("bench")
    rhd = make_rhd(base / "RHD", "evaluation", num=4)
    stb = make_stb(base / "STB", STB_TEST)
    frei = make_freihand(base / "FreiHAND", num=4, num_eval=2)
    # The later release's evaluation labels, so that FreiHAND can be scored here.
    (base / "FreiHAND" / "evaluation_xyz.json").write_text(json.dumps(frei["xyz"][:2].tolist()))
    (base / "FreiHAND" / "evaluation_verts.json").write_text(json.dumps(frei["verts"][:2].tolist()))
    return {
        "base": base,
        "rhd": (base / "RHD", rhd),
        "stb": (base / "STB", stb),
        "freihand": (base / "FreiHAND", frei),
        "bundle": write_bundle(base / "bundle"),
    }


def dataset(name: str, root: Path, split: str | None = None) -> Any:
    if name == "rhd":
        return RHDDataset(root, split or "evaluation", size=SIZE)
    if name == "stb":
        return STBDataset(root, split or "test", size=SIZE)
    return FreiHANDDataset(root, split or "evaluation", size=SIZE)


def truth_of(name: str, root: Path) -> benchmarks.Truth:
    return benchmarks.read_truth(dataset(name, root), name, "test", progress=False)


def with_offsets(joints: np.ndarray) -> np.ndarray:
    """Joints 1-10 moved 10 mm along x, joints 11-20 25 mm: root-aligned errors 0, 10, 25 mm."""
    out = joints.copy()
    out[:, 1:11, 0] += 0.010
    out[:, 11:, 0] += 0.025
    return out


def expected_auc(thresholds: np.ndarray) -> float:
    """The AUC of errors {0 (1 joint), 10 (10 joints), 25 mm (10 joints)}, by its definition."""
    curve = np.where(thresholds >= 25.0, 1.0, 11 / 21)
    return float(np.trapezoid(curve, thresholds) / (thresholds[-1] - thresholds[0]))


# ---- ground truth in the set's own frame -----------------------------------------------------


def test_rhd_truth_is_the_annotation_in_its_own_camera_and_handedness(
    roots: dict[str, Any],
) -> None:
    root, fixture = roots["rhd"]
    truth = truth_of("rhd", root)
    assert truth.ids == [str(k) for k in sorted(fixture)]
    assert truth.mirrored.tolist() == [fixture[int(k)]["left"] for k in truth.ids]  # some left
    joints = np.stack([fixture[int(key)]["project_xyz"] for key in truth.ids])
    projected = truth.project(joints)  # how predicted joints are projected into the set's image
    for i, key in enumerate(truth.ids):
        uv = project(fixture[int(key)]["K"], joints[i])
        np.testing.assert_allclose(truth.joints_3d[i], joints[i], atol=1e-6)  # un-mirrored
        np.testing.assert_allclose(truth.joints_2d[i], uv, atol=1e-3)
        np.testing.assert_allclose(projected[i], uv, atol=1e-3)


def test_stb_truth_ids_are_sequence_and_frame(roots: dict[str, Any]) -> None:
    truth = truth_of("stb", roots["stb"][0])
    assert truth.ids == ["B1Counting/0", "B1Counting/1", "B1Random/0", "B1Random/1"]
    assert truth.mirrored.all()  # STB shows a left hand; the truth is given back as one


# ---- numbers against hand-computed values ------------------------------------------------------


@pytest.mark.parametrize("name", ["rhd", "stb"])
def test_known_3d_offsets_give_the_hand_computed_errors_pck_and_auc(
    roots: dict[str, Any], name: str
) -> None:
    truth = truth_of(name, roots[name][0])
    pred = benchmarks.Predictions(truth.ids, with_offsets(truth.joints_3d))
    results = benchmarks.score(truth, pred).results
    pck = results["pck"]
    assert results["pose_error_mm"] == pytest.approx((10 * 10 + 10 * 25) / 21, abs=1e-6)
    assert pck["pck_20"] == pytest.approx(11 / 21)
    assert pck["pck_30"] == 1.0
    assert pck["auc_20_50"] == pytest.approx(expected_auc(THRESHOLDS_20_50), abs=1e-9)
    assert pck["auc_20_50_zb"] == pytest.approx(expected_auc(THRESHOLDS_20_50_ZB), abs=1e-9)
    assert pck["auc_20_50"] != pytest.approx(pck["auc_20_50_zb"])  # both conventions, labelled
    assert set(results["auc_conventions"]) >= {"auc_20_50", "auc_20_50_zb"}


def test_2d_errors_are_pixels_of_the_sets_own_image(roots: dict[str, Any]) -> None:
    """A joint moved dx along x at depth z moves f dx / z pixels (u = f x / z + c)."""
    root, fixture = roots["rhd"]
    truth = truth_of("rhd", root)
    moved = with_offsets(truth.joints_3d)
    results = benchmarks.score(truth, benchmarks.Predictions(truth.ids, moved)).results
    focal = np.array([fixture[int(k)]["K"][0, 0] for k in truth.ids])
    expected = focal[:, None] * (moved - truth.joints_3d)[..., 0] / truth.joints_3d[..., 2]
    expected = np.where(truth.visible, expected, np.nan)
    per_joint = np.nanmean(expected, axis=0)  # EvalUtil: per joint, then over the joints
    assert truth.visible.sum() < truth.visible.size  # invisible joints are left out
    assert results["pck_2d"]["epe_mean_px"] == pytest.approx(np.nanmean(per_joint), rel=1e-4)


def test_perfect_predictions_score_zero_error_and_mirrored_ones_do_not(
    roots: dict[str, Any],
) -> None:
    truth = truth_of("rhd", roots["rhd"][0])
    perfect = benchmarks.score(truth, benchmarks.Predictions(truth.ids, truth.joints_3d)).results
    assert perfect["pose_error_mm"] == pytest.approx(0.0, abs=1e-6)
    assert perfect["pck"]["auc_20_50"] == 1.0
    assert perfect["pck_2d"]["epe_mean_px"] == pytest.approx(0.0, abs=1e-3)
    flipped = truth.joints_3d * np.array([-1.0, 1.0, 1.0])  # a left hand reported as a right one
    wrong = benchmarks.score(truth, benchmarks.Predictions(truth.ids, flipped)).results
    assert wrong["pose_error_mm"] > 5.0


def test_freihand_is_scored_after_procrustes_with_scale(roots: dict[str, Any]) -> None:
    """A similarity transform of the truth has zero aligned error, but not zero raw error."""
    truth = truth_of("freihand", roots["freihand"][0])
    c, s = np.cos(0.3), np.sin(0.3)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])

    def moved(points: np.ndarray) -> np.ndarray:
        return 1.3 * points @ R.T + np.array([0.02, -0.01, 0.05])

    pred = benchmarks.Predictions(truth.ids, moved(truth.joints_3d), moved(truth.vertices))
    results = benchmarks.score(truth, pred).results
    report = results["freihand"]
    assert report["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-6)
    assert report["pa_mpvpe_mm"] == pytest.approx(0.0, abs=1e-6)
    assert report["f_5mm"] == 1.0 and report["f_15mm"] == 1.0
    # every error is within 0-50 mm; only the t = 0 point may miss (errors of ~1e-12 mm)
    assert 1 - 0.5 / 99 - 1e-12 <= report["auc_0_50_pa"] <= 1.0
    assert report["mpjpe_mm"] > 10.0
    assert "778" in results["mesh"]


# ---- `handshape eval` on the benchmarks ------------------------------------------------------


def eval_cli(*args: str) -> int:
    return main(["eval", *args])


@pytest.mark.parametrize("name", ["rhd", "stb"])
def test_saved_predictions_score_exactly_as_the_checkpoint_run(
    roots: dict[str, Any], tmp_path: Path, name: str
) -> None:
    root = roots[name][0]
    saved = tmp_path / "pred.json"
    assert eval_cli(
        "--checkpoint", str(roots["bundle"]), "--data", f"{name}:{root}",
        "--out", str(tmp_path / "net"), "--save-predictions", str(saved),
    ) == 0  # fmt: skip
    assert eval_cli(
        "--predictions", str(saved), "--data", f"{name}:{root}", "--out", str(tmp_path / "file")
    ) == 0  # fmt: skip
    net = json.loads((tmp_path / "net" / "metrics.json").read_text())
    file = json.loads((tmp_path / "file" / "metrics.json").read_text())
    assert file["pck"] == pytest.approx(net["pck"], abs=1e-9)
    assert file["pck_2d"] == pytest.approx(net["pck_2d"], abs=1e-9)
    assert net["pck"]["mean_mm"] > 0  # an untrained network: a real error, not a trivial zero
    # the drawn curve is the one the AUCs integrate (linspace(0, 50, 20) mm)
    curve = net["pck_curve"]
    drawn = auc(np.asarray(curve["pck"]), np.asarray(curve["thresholds_mm"]))
    assert drawn == pytest.approx(net["pck"]["auc_0_50"], abs=1e-12)
    assert sorted(p.name for p in (tmp_path / "net").iterdir()) == [
        "metrics.json", "pck.png", "pck_vs_published.png",
    ]  # fmt: skip
    assert net["published_auc_20_50"]["auc"]["Ge et al. (CVPR 2019)"] in (0.920, 0.998)
    ids = set(json.loads(saved.read_text()))
    assert ids == set(benchmarks.read_truth(dataset(name, root), name, "", progress=False).ids)


def test_freihand_pred_json_round_trip_and_the_mesh_topology_note(
    roots: dict[str, Any], tmp_path: Path
) -> None:
    root = roots["freihand"][0]
    saved = tmp_path / "pred.json"
    assert eval_cli(
        "--checkpoint", str(roots["bundle"]), "--data", f"freihand:{root}",
        "--out", str(tmp_path / "net"), "--save-predictions", str(saved),
    ) == 0  # fmt: skip
    layout = json.loads(saved.read_text())
    assert len(layout) == 2 and len(layout[0]) == 2 and np.shape(layout[0][0]) == (21, 3)
    assert eval_cli(
        "--predictions", str(saved), "--data", f"freihand:{root}", "--out", str(tmp_path / "f")
    ) == 0  # fmt: skip
    net = json.loads((tmp_path / "net" / "metrics.json").read_text())
    file = json.loads((tmp_path / "f" / "metrics.json").read_text())
    assert file["freihand"] == pytest.approx(net["freihand"], abs=1e-9)
    # handshape's own hand is not MANO's topology: no vertex error, and metrics.json says why
    assert "pa_mpvpe_mm" not in net["freihand"] and "f_5mm" in net["freihand"]
    assert "not MANO's 778" in net["mesh"]


def test_freihand_without_3d_labels_saves_predictions_but_scores_nothing(
    roots: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "FreiHAND"
    shutil.copytree(roots["freihand"][0], root)
    (root / "evaluation_xyz.json").unlink()
    (root / "evaluation_verts.json").unlink()
    saved = tmp_path / "pred.json"
    spec = f"freihand:{root}"
    out = tmp_path / "out"
    code = eval_cli("--checkpoint", str(roots["bundle"]), "--data", spec, "--out", str(out),
                    "--save-predictions", str(saved))  # fmt: skip
    assert code == 0 and len(json.loads(saved.read_text())[0]) == 2
    assert np.isfinite(np.asarray(json.loads(saved.read_text())[0])).all()
    assert not (out / "metrics.json").exists()
    assert eval_cli("--predictions", str(saved), "--data", spec, "--out", str(out)) == 2
    assert "no 3D labels" in capsys.readouterr().err


# ---- errors --------------------------------------------------------------------------------------


def test_missing_and_extra_ids_are_named(
    roots: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = roots["rhd"][0]
    truth = truth_of("rhd", root)
    preds = dict(zip(truth.ids[1:], truth.joints_3d[1:], strict=True)) | {
        "99999": np.zeros((21, 3))
    }
    bad = write_joint_predictions(tmp_path / "peer.json", preds, "rhd")
    code = eval_cli("--predictions", str(bad), "--data", f"rhd:{root}", "--out", str(tmp_path))
    err = capsys.readouterr().err
    assert code == 2
    assert str(bad) in err and f"missing (e.g. {truth.ids[0]})" in err and "99999" in err
    assert not (tmp_path / "metrics.json").exists()


def test_a_freihand_file_of_the_wrong_length_is_named(
    roots: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write_freihand_predictions(tmp_path / "pred.json", np.zeros((3, 21, 3)),
                                     np.zeros((3, 778, 3)))  # fmt: skip
    spec = f"freihand:{roots['freihand'][0]}"
    assert eval_cli("--predictions", str(bad), "--data", spec, "--out", str(tmp_path)) == 2
    assert f"{bad}: 3 samples, the evaluation split has 2" in capsys.readouterr().err


def test_a_corrupt_image_and_a_missing_annotation_file_are_named(
    roots: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "RHD"
    shutil.copytree(roots["rhd"][0], root)
    broken = root / "evaluation" / "color" / "00010.png"
    broken.write_bytes(b"\x89PNG not really")
    args = ("--checkpoint", str(roots["bundle"]), "--data", f"rhd:{root}", "--out",
            str(tmp_path / "out"))  # fmt: skip
    assert eval_cli(*args) == 2
    assert str(broken) in capsys.readouterr().err
    (root / "evaluation" / "anno_evaluation.pickle").unlink()
    assert eval_cli(*args) == 2
    assert "anno_evaluation.pickle" in capsys.readouterr().err
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_exactly_one_of_checkpoint_and_predictions(
    roots: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = f"rhd:{roots['rhd'][0]}"
    with pytest.raises(SystemExit) as err:
        eval_cli("--checkpoint", "a", "--predictions", "b", "--data", spec, "--out", str(tmp_path))
    assert err.value.code == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert eval_cli("--data", spec, "--out", str(tmp_path)) == 2
    assert "give --checkpoint, --predictions or --model keypoints" in capsys.readouterr().err


def test_prediction_files_are_refused_for_the_synthetic_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = eval_cli("--predictions", str(tmp_path / "p.json"), "--data", f"synthetic:{tmp_path}",
                    "--out", str(tmp_path))  # fmt: skip
    assert code == 2 and "not synthetic" in capsys.readouterr().err


def test_a_pose_only_network_cannot_write_freihand_pred_json(
    roots: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = write_bundle(tmp_path / "pose", "model.head.name=none", "model.pose_from=latent")
    spec = f"freihand:{roots['freihand'][0]}"
    code = eval_cli("--checkpoint", str(bundle), "--data", spec, "--out", str(tmp_path / "o"),
                    "--save-predictions", str(tmp_path / "p.json"))  # fmt: skip
    assert code == 2 and "pose only" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


def test_a_limited_run_scores_the_first_samples_of_a_whole_split_file(
    roots: dict[str, Any], tmp_path: Path
) -> None:
    root = roots["stb"][0]
    truth = truth_of("stb", root)
    whole = write_joint_predictions(
        tmp_path / "peer.json", dict(zip(truth.ids, truth.joints_3d, strict=True)), "stb"
    )
    out = tmp_path / "out"
    code = eval_cli("--predictions", str(whole), "--data", f"stb:{root}", "--out", str(out),
                    "--limit", "3")  # fmt: skip
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["samples"] == 3 and metrics["pose_error_mm"] == pytest.approx(0.0, abs=1e-6)


def test_a_bad_prediction_file_is_named_before_any_image_is_read(
    roots: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "RHD"
    shutil.copytree(roots["rhd"][0], root)
    for image in (root / "evaluation" / "color").iterdir():
        image.write_bytes(b"broken")  # reading any image would fail, naming it
    bad = tmp_path / "peer.json"
    bad.write_text('{"3": [[0, 0, 0.5]]')
    code = eval_cli("--predictions", str(bad), "--data", f"rhd:{root}", "--out", str(tmp_path))
    err = capsys.readouterr().err
    assert code == 2 and f"{bad}: not valid JSON" in err and "color" not in err


def test_save_predictions_needs_a_checkpoint(
    roots: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = f"rhd:{roots['rhd'][0]}"
    code = eval_cli("--predictions", str(tmp_path / "a.json"), "--data", spec, "--out",
                    str(tmp_path), "--save-predictions", str(tmp_path / "b.json"))  # fmt: skip
    assert code == 2 and "give --checkpoint" in capsys.readouterr().err


def test_a_joint_without_a_pixel_counts_as_a_2d_miss(roots: dict[str, Any]) -> None:
    truth = truth_of("rhd", roots["rhd"][0])
    joints = truth.joints_3d.copy()
    joints[:, 5, 2] = 0.0  # on the camera plane: no projection
    results = benchmarks.score(truth, benchmarks.Predictions(truth.ids, joints)).results
    visible_5 = truth.visible[:, 5].any()
    assert visible_5 and results["pck_2d"]["pck_30px"] < 1.0


def test_stb_with_ge_et_al_boxes_scores_in_the_original_image(
    roots: dict[str, Any], tmp_path: Path
) -> None:
    """Crops from the boxes file (the registry uses ROOT/STB_eval_bboxes.mat): the ground truth
    is still the set's own, so the true joints score zero error in 3D and in pixels."""
    import scipy.io

    root = tmp_path / "STB"
    shutil.copytree(roots["stb"][0], root)
    truth = truth_of("stb", root)
    uv = truth.joints_2d
    lo, hi = uv.min(axis=1), uv.max(axis=1)
    side = (hi - lo).max(axis=1) + 30
    corner = (lo + hi) / 2 - (side[:, None] - 1) / 2
    boxes = np.concatenate([corner, side[:, None], side[:, None]], axis=1)
    scipy.io.savemat(root / "STB_eval_bboxes.mat", {"bboxes": np.float32(boxes)})
    peer = write_joint_predictions(
        tmp_path / "peer.json", dict(zip(truth.ids, truth.joints_3d, strict=True)), "stb"
    )
    assert eval_dataset("stb", root).reader.boxes is not None  # the boxes are what crops
    out = tmp_path / "out"
    assert eval_cli("--predictions", str(peer), "--data", f"stb:{root}", "--out", str(out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pose_error_mm"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["pck_2d"]["epe_mean_px"] == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("name", ["rhd", "freihand"])
def test_the_keypoint_network_is_scored_through_mediapipes_landmarks(
    roots: dict[str, Any], tmp_path: Path, name: str
) -> None:
    """`eval --model keypoints`: the shipped network on each crop's landmarks, under the
    benchmark's protocol (the fixtures' images hold no real hand: the numbers are not the
    point, the protocol's files and the lifting at the true root are)."""
    root = roots[name][0]
    out = tmp_path / "kp"
    assert eval_cli("--model", "keypoints", "--data", f"{name}:{root}", "--out", str(out)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    if name == "rhd":
        assert metrics["samples"] == 4 and metrics["pck"]["mean_mm"] > 0
    else:
        assert metrics["freihand"]["pa_mpjpe_mm"] > 0


def test_simulated_keypoints_are_refused_on_a_benchmark(
    roots: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--model", "keypoints", "--simulated-keypoints", "--data", f"rhd:{roots['rhd'][0]}")
    assert eval_cli(*args, "--out", str(tmp_path)) == 2
    assert "simulated keypoints are for the synthetic validation set" in capsys.readouterr().err
