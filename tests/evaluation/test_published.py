"""Published results: Ge et al.'s Fig. 9 numbers, each with its source, checkable where possible."""

from __future__ import annotations

import pytest

from handshape.evaluation.metrics import auc
from handshape.evaluation.published import (
    PUBLISHED_AUC,
    STB_REFERENCE_CURVES,
    STB_REFERENCE_THRESHOLDS_MM,
    published_aucs,
)


def test_ge_et_al_as_quoted_in_the_issue() -> None:
    ge = {p.dataset: p.auc for p in PUBLISHED_AUC if p.method.startswith("Ge et al.")}
    assert ge == {"stb": 0.998, "rhd": 0.920}
    # Ge et al. lead both panels of their Fig. 9.
    assert published_aucs("stb")[0].method.startswith("Ge et al.")
    assert published_aucs("rhd")[0].method.startswith("Ge et al.")


def test_every_number_has_a_source() -> None:
    for p in PUBLISHED_AUC:
        assert p.dataset in ("rhd", "stb")
        assert 0.0 < p.auc <= 1.0
        assert "Fig. 9" in p.source and p.reference and p.panel and p.checked
    # The paper compares with three methods on RHD and with seven publications on STB
    # (Zhang et al.'s three baselines counting as one).
    assert len(published_aucs("rhd")) == 4
    assert len({p.reference for p in published_aucs("stb")}) == 8
    with pytest.raises(ValueError, match="freihand"):
        published_aucs("freihand")


def test_zhang_et_al_curve_points_reproduce_the_legend() -> None:
    assert STB_REFERENCE_THRESHOLDS_MM.tolist() == [20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0]
    legend = {p.method: p.auc for p in published_aucs("stb")}
    for name, curve in STB_REFERENCE_CURVES.items():
        assert auc(curve, STB_REFERENCE_THRESHOLDS_MM) == pytest.approx(legend[name], abs=5e-4)
