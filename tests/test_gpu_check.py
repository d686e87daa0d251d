"""scripts/gpu_check.sh end to end on the CPU with tiny settings: one results file with every
section of issue 14's GPU check, each measured (not failed), and validation metrics."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("env", "build", "latency", "throughput", "graph", "data", "train_rate", "pretrain")


@pytest.mark.timeout(900)
def test_gpu_check_runs_end_to_end_on_cpu_and_writes_one_results_file(tmp_path: Path) -> None:
    results = tmp_path / "out" / "gpu_check.json"
    command = ["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--out", str(results)]
    command += ["--budget", "400", "--experiment", "tiny", "--device", "cpu", "--no-compile"]
    command += ["--throughput-batch", "2", "--graph-batch", "2", "--train-steps", "2"]
    command += ["--repeat", "2", "--work", str(tmp_path / "work"), "--workers", "2"]
    command += ["--images-per-second", "0.5"]  # the smallest data set: a fast test
    done = subprocess.run(command, capture_output=True, text=True, timeout=880)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [p.name for p in results.parent.iterdir()] == ["gpu_check.json"]  # one file
    sections = json.loads(results.read_text())["sections"]
    assert set(sections) == set(SECTIONS)
    for name in SECTIONS:
        assert "error" not in sections[name], (name, sections[name].get("error"))
        assert "result" in sections[name], (name, sections[name])
    latency = sections["latency"]["result"]
    for key in ("fp32_ms", "bf16_ms", "inference_fp32_ms", "inference_bf16_ms"):
        assert latency[key] > 0, key
    for key in ("eager_bf16_images_per_s", "inference_bf16_images_per_s"):
        assert sections["throughput"]["result"][key] > 0, key
    graph = sections["graph"]["result"]
    assert graph["max_diff"] < 1e-5 and graph["pyg_ms"] > 0 and graph["handshape_ms"] > 0
    assert sections["train_rate"]["result"]["steps_per_s"] > 0
    pretrain = sections["pretrain"]["result"]
    assert pretrain["returncode"] == 0, pretrain["log_tail"]
    validation = pretrain["validation"]
    assert validation["samples"] > 0 and validation["mesh_error_mm"] > 0
