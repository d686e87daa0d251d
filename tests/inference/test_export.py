"""Specification of `handshape export` and `predict --backend onnxruntime`: the exported model
gives PyTorch's uvd on a batch; nothing is kept when it does not. Tiny networks with randomised
statistics and output weights, so that every output carries signal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime  # noqa: F401  (the export extra is part of the test environment)
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from handshape.cli import main
from handshape.config import load_experiment
from handshape.geometry.mesh_graph import mesh_hierarchy
from handshape.handmodel.model import HandModel
from handshape.inference.export import OPSET, OnnxHandNet, export_network
from handshape.nets.bundle import load_network
from handshape.nets.network import HandNet


def make_bundle(folder: Path, *overrides: str) -> Path:
    """A bundle (model.safetensors + config.yaml) of a tiny network with non-trivial weights."""
    cfg = OmegaConf.to_container(load_experiment("tiny", list(overrides)), resolve=True)
    assert isinstance(cfg, dict)
    hand = HandModel.default()
    hierarchy = mesh_hierarchy(hand.data.faces, hand.num_vertices, cfg["model"]["graph_levels"])
    torch.manual_seed(0)
    net = HandNet(OmegaConf.create(cfg["model"]), hierarchy, hand)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
        for param in net.parameters():
            if torch.count_nonzero(param) == 0:  # zero-initialised outputs
                param.normal_(0, 0.05)
    folder.mkdir(parents=True)
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()}, folder / "model.safetensors"
    )
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    return folder


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("export") / "bundle")


def images(batch: int, size: int, seed: int = 3) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def reference(bundle: Path, image: torch.Tensor) -> Any:
    net, _ = load_network(bundle)
    with torch.inference_mode():
        return net(image)


def test_onnx_export_gives_pytorchs_uvd_on_a_batch(bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "hand.onnx"
    assert main(["export", "--checkpoint", str(bundle), "--format", "onnx", "--out", str(out)]) == 0
    exported = OnnxHandNet(out)
    image = images(5, exported.input_size)  # neither the traced batch size (1) nor the check's
    expected = reference(bundle, image)
    got = exported(image)
    assert expected.vertices.abs().max() > 1e-2  # the comparison is not between zeros
    torch.testing.assert_close(got.joints, expected.joints, rtol=0, atol=1e-4)
    torch.testing.assert_close(got.vertices, expected.vertices, rtol=0, atol=1e-4)
    # the file says which network it is
    assert exported.config is not None and exported.config["model"]["input_size"] == 64
    import onnx

    assert onnx.load(str(out)).opset_import[0].version == OPSET


def test_torchscript_export_gives_pytorchs_uvd(bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "hand.pt"
    main(["export", "--checkpoint", str(bundle), "--format", "torchscript", "--out", str(out)])
    loaded = torch.jit.load(str(out))
    image = images(3, 64)
    expected = reference(bundle, image)
    with torch.no_grad():
        joints, vertices = loaded(image)
    torch.testing.assert_close(joints, expected.joints, rtol=0, atol=1e-4)
    torch.testing.assert_close(vertices, expected.vertices, rtol=0, atol=1e-4)


def test_a_pose_only_network_exports_joints_only(tmp_path: Path) -> None:
    folder = make_bundle(tmp_path / "pose", "model.head.name=none", "model.pose_from=latent")
    net, cfg = load_network(folder)
    export_network(net, cfg, tmp_path / "pose.onnx", "onnx")
    exported = OnnxHandNet(tmp_path / "pose.onnx")
    assert not exported.has_mesh
    image = images(2, 64)
    got = exported(image)
    assert got.vertices is None
    torch.testing.assert_close(got.joints, reference(folder, image).joints, rtol=0, atol=1e-4)


def test_a_disagreeing_export_is_not_kept(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import handshape.inference.export

    monkeypatch.setattr(handshape.inference.export, "TOLERANCE", -1.0)
    net, cfg = load_network(bundle)
    with pytest.raises(ValueError, match="differs from PyTorch"):
        export_network(net, cfg, tmp_path / "bad.pt", "torchscript")
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_is_refused(bundle: Path, tmp_path: Path) -> None:
    net, cfg = load_network(bundle)
    with pytest.raises(ValueError, match="format"):
        export_network(net, cfg, tmp_path / "x", "tflite")


def test_predict_with_onnxruntime_matches_torch(bundle: Path, tmp_path: Path) -> None:
    photo = Path(__file__).parents[1] / "fixtures" / "hand_photo.png"
    model = tmp_path / "hand.onnx"
    main(["export", "--checkpoint", str(bundle), "--format", "onnx", "--out", str(model)])
    records = {}
    for backend, checkpoint in (("torch", bundle), ("onnxruntime", model)):
        out = tmp_path / backend
        args = ["predict", "--model", "image", "--checkpoint", str(checkpoint), str(photo)]
        assert main([*args, "--out", str(out), "--no-refine", "--backend", backend]) == 0
        records[backend] = json.loads((out / "hand_photo.json").read_text())["hands"]
        assert (out / "hand_photo_hand0.ply").is_file()
    np.testing.assert_allclose(
        records["onnxruntime"][0]["joints_3d_m"], records["torch"][0]["joints_3d_m"], atol=1e-4
    )


def test_onnxruntime_backend_without_the_extra_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"handshape\[export\]"):
        OnnxHandNet(tmp_path / "hand.onnx")
