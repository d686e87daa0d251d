"""Published 3D PCK results on RHD and STB that handshape's numbers are put beside (Fig. 9).

Ge et al. (CVPR 2019) compare with state-of-the-art methods in their Fig. 9: left, RHD with 3D
pose supervision; middle, STB with 3D pose supervision; right, STB without 3D supervision. Each
legend entry gives a method's AUC of the 3D PCK curve over 20-50 mm. `PUBLISHED_AUC` holds the
left and middle panels; the right panel (weak supervision, compared only with Cai et al.) is not
recorded here. The AUCs are as printed: which threshold grid each paper integrated over is not
stated in the legend, so compare ours in both conventions
(`handshape.evaluation.metrics.pck_report`).

`checked` says how far each number was verified: the three STB baselines of Zhang et al. are
also available as PCK curve points (`STB_REFERENCE_CURVES`, B1 test sequences), and the AUC of
those points reproduces the legend value to three decimals (tested). The other legend values
were read from the published figure; the text copy of the paper in shared/seed has no figure
text, so they are not re-checked by a test. Ge et al.'s own values are also quoted in issue 11.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FIG9",
    "PUBLISHED_AUC",
    "STB_REFERENCE_CURVES",
    "STB_REFERENCE_THRESHOLDS_MM",
    "PublishedAUC",
    "published_aucs",
]

FIG9 = "Ge et al., 3D Hand Shape and Pose Estimation from a Single RGB Image, CVPR 2019, Fig. 9"
_LEGEND = "legend value, read from the published figure"
_CURVE = "legend value; the AUC of Zhang et al.'s curve points (STB_REFERENCE_CURVES) agrees"


@dataclass(frozen=True)
class PublishedAUC:
    """One method's published AUC of the 3D PCK over 20-50 mm on one benchmark."""

    dataset: str  # "rhd" or "stb"
    method: str  # as labelled in the figure
    auc: float
    reference: str  # the method's own publication
    source: str  # where the number is printed
    panel: str  # which panel of the source
    checked: str  # how far the number was verified


def _entry(dataset: str, method: str, auc: float, reference: str, checked: str = _LEGEND):
    panel = "left (RHD, 3D supervision)" if dataset == "rhd" else "middle (STB, 3D supervision)"
    return PublishedAUC(dataset, method, auc, reference, FIG9, panel, checked)


_GE = "Ge et al., CVPR 2019"
_CAI = "Cai et al., Weakly-supervised 3D Hand Pose Estimation from Monocular RGB Images, ECCV 2018"
_SPURR = "Spurr et al., Cross-modal Deep Variational Hand Pose Estimation, CVPR 2018"
_ZB = "Zimmermann & Brox, Learning to Estimate 3D Hand Pose from Single RGB Images, ICCV 2017"
_IQBAL = "Iqbal et al., Hand Pose Estimation via Latent 2.5D Heatmap Regression, ECCV 2018"
_MUELLER = (
    "Mueller et al., GANerated Hands for Real-Time 3D Hand Tracking from Monocular RGB, CVPR 2018"
)
_PANTELERIS = (
    "Panteleris et al., Using a Single RGB Frame for Real Time 3D Hand Pose Estimation in the "
    "Wild, WACV 2018"
)
_ZHANG = (
    "Zhang et al., 3D Hand Pose Tracking and Estimation Using Stereo Matching, "
    "arXiv:1610.07214, 2016"
)

PUBLISHED_AUC: tuple[PublishedAUC, ...] = (
    _entry("rhd", "Ge et al. (CVPR 2019)", 0.920, _GE),
    _entry("rhd", "Cai et al. (ECCV 2018)", 0.887, _CAI),
    _entry("rhd", "Spurr et al. (CVPR 2018)", 0.849, _SPURR),
    _entry("rhd", "Zimmermann & Brox (ICCV 2017)", 0.675, _ZB),
    _entry("stb", "Ge et al. (CVPR 2019)", 0.998, _GE),
    _entry("stb", "Cai et al. (ECCV 2018)", 0.994, _CAI),
    _entry("stb", "Iqbal et al. (ECCV 2018)", 0.994, _IQBAL),
    _entry("stb", "Spurr et al. (CVPR 2018)", 0.983, _SPURR),
    _entry("stb", "Mueller et al. (CVPR 2018)", 0.965, _MUELLER),
    _entry("stb", "Zimmermann & Brox (ICCV 2017)", 0.948, _ZB),
    _entry("stb", "Panteleris et al. (WACV 2018)", 0.941, _PANTELERIS),
    _entry("stb", "CHPR (Zhang et al. 2016)", 0.839, _ZHANG, _CURVE),
    _entry("stb", "ICPPSO (Zhang et al. 2016)", 0.748, _ZHANG, _CURVE),
    _entry("stb", "PSO (Zhang et al. 2016)", 0.709, _ZHANG, _CURVE),
)

# 3D PCK of Zhang et al.'s three baselines on STB's B1 sequences at 20, 25, ..., 50 mm, as
# Zimmermann & Brox tabulated them for their STB comparison (lmb-freiburg/hand3d,
# utils/general.py, get_stb_ref_curves); Ge et al.'s Fig. 9 draws the same curves.
STB_REFERENCE_THRESHOLDS_MM: np.ndarray = np.arange(20.0, 50.1, 5.0)
STB_REFERENCE_CURVES: dict[str, np.ndarray] = {
    "PSO (Zhang et al. 2016)": np.array(
        [0.32236842, 0.53947368, 0.67434211, 0.75657895, 0.80921053, 0.86513158, 0.89473684]
    ),
    "ICPPSO (Zhang et al. 2016)": np.array(
        [0.51973684, 0.64473684, 0.71710526, 0.77302632, 0.80921053, 0.84868421, 0.86842105]
    ),
    "CHPR (Zhang et al. 2016)": np.array(
        [0.56578947, 0.71710526, 0.82236842, 0.88157895, 0.91447368, 0.9375, 0.96052632]
    ),
}


def published_aucs(dataset: str) -> tuple[PublishedAUC, ...]:
    """The recorded results on one benchmark ("rhd" or "stb"), best first."""
    if dataset not in ("rhd", "stb"):
        raise ValueError(f"published results exist for 'rhd' and 'stb', not {dataset!r}")
    rows = [p for p in PUBLISHED_AUC if p.dataset == dataset]
    return tuple(sorted(rows, key=lambda p: -p.auc))
