"""The command line's start: building the parser and logging import none of the heavy stack, and
only rank zero of a DDP run reports (the rank read from the launcher's variables)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from handshape.cli import RANK_VARIABLES, _RankZero, process_rank

HEAVY = ("torch", "pytorch_lightning", "lightning_fabric", "torch_geometric", "pyrender", "OpenGL")


def test_the_parser_and_a_log_record_import_none_of_the_heavy_stack() -> None:
    probe = (
        "import logging, sys; from handshape.cli import build_parser, _configure_logging;"
        "build_parser().parse_args(['pretrain']); _configure_logging();"
        "logging.getLogger('handshape').info('started');"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
    assert "[handshape] started" in result.stderr


@pytest.fixture
def no_rank(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def record() -> logging.LogRecord:
    return logging.LogRecord("handshape", logging.INFO, __file__, 1, "message", None, None)


def test_a_single_process_is_rank_zero_and_reports(no_rank: pytest.MonkeyPatch) -> None:
    assert process_rank() == 0
    assert _RankZero().filter(record())


@pytest.mark.parametrize("name", RANK_VARIABLES)
def test_only_rank_zero_reports_whichever_variable_the_launcher_sets(
    no_rank: pytest.MonkeyPatch, name: str
) -> None:
    no_rank.setenv(name, "1")
    assert process_rank() == 1 and not _RankZero().filter(record())
    no_rank.setenv(name, "0")
    assert process_rank() == 0 and _RankZero().filter(record())


def test_the_global_rank_comes_before_the_local_one(no_rank: pytest.MonkeyPatch) -> None:
    """A second node's first process: local rank 0, global rank 2 (as Lightning reads them)."""
    no_rank.setenv("LOCAL_RANK", "0")
    no_rank.setenv("RANK", "2")
    assert process_rank() == 2 and not _RankZero().filter(record())
