"""Specification of evaluation: loading a trained network, the metrics, their files, the report
and `handshape eval`, on a tiny synthetic set with a briefly trained tiny network."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from handshape.cli import main
from handshape.config import PACKAGE_CONFIGS, load_experiment
from handshape.data.synth.datamodule import SyntheticDataModule
from handshape.data.synth.generate import Plan, generate
from handshape.data.synth.reader import SyntheticDataset
from handshape.data.synth.scene import SynthConfig
from handshape.evaluation.evaluate import evaluate, write_results
from handshape.evaluation.metrics import THRESHOLDS_ZIMMERMANN
from handshape.lit.report import write_report
from handshape.lit.train import export_bundle, train_stage
from handshape.nets.bundle import load_network
from handshape.nets.network import HandNet

REPO = Path(__file__).resolve().parents[2]
CONFIGS = PACKAGE_CONFIGS
NUM_VAL = 16

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """8 training and 16 validation samples at 64 pixels; the full stage trained for 2 steps
    (checkpoints) and exported (bundle)."""
    base = tmp_path_factory.mktemp("eval")
    root, out = base / "data", base / "run"
    config = dataclasses.replace(
        SynthConfig.load(CONFIGS / "data" / "synthetic.yaml"), size=64, shard_size=8
    )
    for split, num in (("train", 8), ("val", NUM_VAL)):
        generate(Plan(root, split, num, 0, config), progress=False)
    cfg = OmegaConf.to_container(
        load_experiment(
            "tiny", ["train.stages.full.steps=2", f"data.root={root}", f"output={out}"], CONFIGS
        ),
        resolve=True,
    )
    assert isinstance(cfg, dict)
    data = SyntheticDataModule(root, batch_size=4, num_workers=0)
    torch.manual_seed(0)
    last = train_stage(cfg, "full", out, data, progress=False)
    best = last.with_name("best.ckpt")
    bundle = export_bundle(cfg, best, out / "bundle")
    val = SyntheticDataset(root / "val", train=False)
    return {"root": root, "val": val, "last": last, "best": best, "bundle": bundle, "cfg": cfg}


@pytest.fixture(scope="module")
def network(trained: dict[str, Any]) -> tuple[HandNet, dict[str, Any]]:
    return load_network(trained["bundle"])


@pytest.fixture(scope="module")
def results(network: tuple[HandNet, dict[str, Any]], trained: dict[str, Any]) -> dict[str, Any]:
    net, cfg = network
    return evaluate(net, cfg, trained["val"], batch_size=8, progress=False)


# ---- evaluate ---------------------------------------------------------------------------------


def test_evaluate_returns_finite_errors_and_a_monotone_pck_curve(results: dict[str, Any]) -> None:
    assert results["samples"] == NUM_VAL
    for key in ("mesh_error_mm", "pose_error_mm"):
        assert math.isfinite(results[key]) and results[key] > 0, key
    curve = results["pck_curve"]
    thresholds, pck = np.asarray(curve["thresholds_mm"]), np.asarray(curve["pck"])
    np.testing.assert_allclose(thresholds, THRESHOLDS_ZIMMERMANN)
    assert pck.shape == thresholds.shape
    assert ((pck >= 0) & (pck <= 1)).all()
    assert (np.diff(pck) >= 0).all()
    for key in ("auc_20_50", "auc_20_50_zb", "auc_0_50", "pck_20", "pck_30", "pck_40", "pck_50"):
        assert 0.0 <= results["pck"][key] <= 1.0, key


def test_evaluate_does_not_depend_on_the_batch_size(
    network: tuple[HandNet, dict[str, Any]], trained: dict[str, Any], results: dict[str, Any]
) -> None:
    """Errors are averaged per sample (and per joint), not per batch: 16 = 5 + 5 + 5 + 1."""
    net, cfg = network
    other = evaluate(net, cfg, trained["val"], batch_size=5, progress=False)
    assert other["samples"] == results["samples"]
    for key in ("mesh_error_mm", "pose_error_mm"):
        assert other[key] == pytest.approx(results[key], rel=1e-5)
    np.testing.assert_allclose(other["pck_curve"]["pck"], results["pck_curve"]["pck"])


def test_evaluate_limit_takes_the_first_samples(
    network: tuple[HandNet, dict[str, Any]], trained: dict[str, Any]
) -> None:
    net, cfg = network
    assert evaluate(net, cfg, trained["val"], limit=5, progress=False)["samples"] == 5


def test_write_results_writes_metrics_json_and_a_png(
    results: dict[str, Any], tmp_path: Path
) -> None:
    json_path, plot = write_results(results, tmp_path / "eval")
    assert json_path == tmp_path / "eval" / "metrics.json"
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(results))
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["metrics.json", plot.name]


def test_write_report_mentions_the_numbers(results: dict[str, Any], tmp_path: Path) -> None:
    path = write_report(tmp_path, results)
    assert path == tmp_path / "report.md"
    text = path.read_text()
    assert f"{results['samples']} synthetic validation samples" in text
    assert f"| mesh error (mm) | {results['mesh_error_mm']:.2f} |" in text
    assert f"| pose error (mm) | {results['pose_error_mm']:.2f} |" in text
    assert f"{results['pck']['auc_20_50']:.3f}" in text
    assert f"{results['pck']['pck_50']:.3f}" in text
    assert "(eval/pck.png)" in text
    assert not list(tmp_path.glob("*.tmp"))


# ---- load_network -----------------------------------------------------------------------------


def test_checkpoints_load_with_weights_only(trained: dict[str, Any]) -> None:
    for path in (trained["last"], trained["best"]):
        saved = torch.load(path, map_location="cpu", weights_only=True)
        assert saved["hyper_parameters"]["cfg"] == trained["cfg"]
        assert any(k.startswith("net.") for k in saved["state_dict"])


def test_bundle_and_checkpoint_give_identical_networks(
    trained: dict[str, Any], network: tuple[HandNet, dict[str, Any]]
) -> None:
    from_bundle, cfg = network
    from_ckpt, cfg_ckpt = load_network(trained["best"])
    assert cfg == cfg_ckpt == trained["cfg"]
    assert isinstance(from_ckpt, HandNet) and not from_ckpt.training
    image = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = from_bundle(image), from_ckpt(image)
    assert torch.equal(a.vertices, b.vertices)
    assert torch.equal(a.joints, b.joints)


def test_a_missing_path_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.ckpt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_network(missing)


@pytest.mark.parametrize("name", ["model.safetensors", "config.yaml"])
def test_a_bundle_missing_a_file_is_a_clear_error_naming_it(
    trained: dict[str, Any], tmp_path: Path, name: str
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(trained["bundle"], bundle)
    (bundle / name).unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(bundle / name))):
        load_network(bundle)


def test_a_corrupt_checkpoint_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "broken.ckpt"
    path.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_network(path)


def test_a_foreign_torch_file_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "other.ckpt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_network(path)


class _Payload:
    """Anything but plain data: unpickling it would run code."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("unpickled!",))


def test_a_checkpoint_holding_arbitrary_objects_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": {"cfg": _Payload()}, "state_dict": {}}, path)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_network(path)
    assert "unpickled!" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "content"),
    [("model.safetensors", b"\x00" * 64), ("config.yaml", b"model: [x\n")],
    ids=["safetensors", "config"],
)
def test_a_corrupt_bundle_is_a_clear_error_naming_the_file(
    trained: dict[str, Any], tmp_path: Path, name: str, content: bytes
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(trained["bundle"], bundle)
    (bundle / name).write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(str(bundle / name))):
        load_network(bundle)


# ---- `handshape eval` -------------------------------------------------------------------------


def test_eval_command_writes_the_metrics(
    trained: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    code = main([
        "eval", "--checkpoint", str(trained["bundle"]),
        "--data", f"synthetic:{trained['root']}:val", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["samples"] == NUM_VAL
    assert (out / "pck.png").is_file()
    printed = capsys.readouterr().out
    assert json.loads(printed.splitlines()[0])["mesh_error_mm"] == metrics["mesh_error_mm"]


def test_eval_command_reads_training_checkpoints_and_limits(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    code = main([
        "eval", "--checkpoint", str(trained["last"]),
        "--data", f"synthetic:{trained['root']}:val", "--out", str(out), "--limit", "3",
    ])  # fmt: skip
    assert code == 0
    assert json.loads((out / "metrics.json").read_text())["samples"] == 3


@pytest.mark.parametrize("spec", ["foo", "synthetic:", ":data"])
def test_eval_command_rejects_a_malformed_data_spec(
    trained: dict[str, Any], tmp_path: Path, spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as err:
        main(
            ["eval", "--checkpoint", str(trained["bundle"]), "--data", spec, "--out", str(tmp_path)]
        )
    assert err.value.code == 2
    assert "NAME:ROOT[:SPLIT]" in capsys.readouterr().err
    assert not (tmp_path / "metrics.json").exists()


def test_eval_command_rejects_an_unknown_data_set(
    trained: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([
        "eval", "--checkpoint", str(trained["bundle"]), "--data", "nosuchset:/data",
        "--out", str(tmp_path),
    ])  # fmt: skip
    assert code == 2
    assert "unknown data set 'nosuchset'" in capsys.readouterr().err
    assert not (tmp_path / "metrics.json").exists()


def test_eval_command_reports_a_missing_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent"
    code = main([
        "eval", "--checkpoint", str(missing), "--data", f"synthetic:{tmp_path}",
        "--out", str(tmp_path / "eval"),
    ])  # fmt: skip
    assert code == 2
    assert str(missing) in capsys.readouterr().err


# ---- meshes of another topology ----------------------------------------------------------------


@pytest.fixture(scope="module")
def subdivided_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """handshape's hand midpoint-subdivided, in the MANO layout: a model of another topology."""
    from handshape.handmodel.mano_io import write_mano
    from handshape.handmodel.model import HandModel
    from meshes import subdivided_hand

    path = tmp_path_factory.mktemp("topology") / "subdivided_mano.pkl"
    write_mano(subdivided_hand(HandModel.default().data), path)
    return path


def test_meshes_of_one_topology_compare_vertex_to_vertex(
    results: dict[str, Any], subdivided_file: Path
) -> None:
    from handshape.evaluation.evaluate import mesh_alignment
    from handshape.handmodel.mano_io import read_mano
    from handshape.handmodel.model import HandModel

    assert results["mesh_alignment"] == "vertex to vertex"
    # handshape's hand written in the MANO layout and read back is the same topology
    from handshape.handmodel.mano_io import write_mano

    write_mano(HandModel.default().data, subdivided_file.with_name("own.pkl"))
    own = HandModel(read_mano(subdivided_file.with_name("own.pkl")))
    assert mesh_alignment(own, HandModel.default()) is None
    assert mesh_alignment(HandModel(read_mano(subdivided_file)), HandModel.default()) is not None


def test_a_mesh_of_another_topology_is_read_off_at_the_true_vertices(
    subdivided_file: Path,
) -> None:
    """The subdivided hand contains every original vertex: mapped back, a posed subdivided hand
    gives exactly the posed original one."""
    from handshape.evaluation.evaluate import mesh_alignment
    from handshape.handmodel.mano_io import read_mano
    from handshape.handmodel.model import HandModel

    original, finer = HandModel.default().double(), HandModel(read_mano(subdivided_file)).double()
    alignment = mesh_alignment(finer, original)
    assert alignment is not None
    assert (alignment.num_source, alignment.num_target) == (
        finer.num_vertices,
        original.num_vertices,
    )
    torch.manual_seed(0)
    pose = 0.3 * torch.randn(2, 16, 3, dtype=torch.float64)
    expected = original(pose=pose).vertices
    mapped = alignment.apply(finer(pose=pose).vertices)
    torch.testing.assert_close(mapped, expected, atol=1e-9, rtol=0)


def test_evaluate_aligns_a_network_of_another_topology(
    trained: dict[str, Any], subdivided_file: Path
) -> None:
    from handshape.geometry.mesh_graph import mesh_hierarchy
    from handshape.handmodel.mano_io import read_mano
    from handshape.handmodel.model import HandModel

    cfg = {**trained["cfg"], "handmodel": {"mano": str(subdivided_file)}}
    finer = HandModel(read_mano(subdivided_file))
    hierarchy = mesh_hierarchy(
        finer.data.faces, finer.num_vertices, levels=cfg["model"]["graph_levels"]
    )
    torch.manual_seed(0)
    net = HandNet(OmegaConf.create(cfg["model"]), hierarchy, finer).eval()
    with torch.no_grad():  # the output layer starts at zero: give the mesh some shape
        for lin in net.head.convs[-1].lins:
            lin.weight.normal_(0, 0.1)
    out = evaluate(net, cfg, trained["val"], batch_size=8, progress=False)
    assert out["mesh_alignment"] == (
        f"closest point on the aligned rest template ({finer.num_vertices} -> "
        f"{HandModel.default().num_vertices} vertices)"
    )
    assert math.isfinite(out["mesh_error_mm"]) and out["mesh_error_mm"] > 0
