"""A Fig. 9-style comparison: our 3D PCK over 20-50 mm beside the published results.

Left: our PCK curve(s) over 20-50 mm (and, on STB, the curve points of Zhang et al.'s
baselines, dashed). Right: an "AUC ladder", every published AUC of
`handshape.evaluation.published` on that benchmark as a labelled marker, ours in colour. Our
AUC is given in both threshold conventions (linspace(20, 50, 20) and Zimmermann & Brox's 12
thresholds); the ladder places the first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from handshape.evaluation.metrics import THRESHOLDS_20_50, THRESHOLDS_20_50_ZB, auc, pck_curve
from handshape.evaluation.published import (
    STB_REFERENCE_CURVES,
    STB_REFERENCE_THRESHOLDS_MM,
    published_aucs,
)
from handshape.safeio.atomic import atomic_write

__all__ = ["plot_pck_vs_published"]

_NAMES = {"rhd": "RHD", "stb": "STB"}


def _spread(values: list[float], gap: float, top: float) -> list[float]:
    """Label heights near `values` (ascending) at least `gap` apart and not above `top`."""
    out: list[float] = []
    for v in values:
        out.append(max(v, out[-1] + gap) if out else v)
    overflow = out[-1] - top if out else 0.0
    if overflow > 0:  # push the whole stack down, keeping the gaps
        out = [y - overflow for y in out]
        for i in range(len(out) - 2, -1, -1):
            out[i] = min(out[i], out[i + 1] - gap)
    return out


def plot_pck_vs_published(
    errors_mm: Mapping[str, np.ndarray],
    dataset: str,
    out: str | os.PathLike[str],
    title: str | None = None,
) -> Path:
    """Draw our 3D PCK beside the published AUCs of one benchmark, written atomically.

    Args:
        errors_mm: label -> (B, J) per-sample per-joint 3D errors in mm (NaN = not evaluated),
            e.g. {"handshape quick": errors}; one curve per entry.
        dataset: "rhd" or "stb".
        out: output path; the format follows its suffix (.png, .pdf, .svg).
        title: axes title (default: "3D PCK on <dataset>").

    Returns:
        The output path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    published = published_aucs(dataset)  # also refuses an unknown data set
    if not errors_mm:
        raise ValueError("plot_pck_vs_published needs at least one error set")
    fig = Figure(figsize=(9.0, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, 2, width_ratios=(3.0, 2.0), wspace=0.05)
    ax = fig.add_subplot(grid[0])
    ladder = fig.add_subplot(grid[1])

    ours: list[tuple[str, float, str]] = []
    for i, (name, errors) in enumerate(errors_mm.items()):
        colour = f"C{i}"
        curve = pck_curve(errors, THRESHOLDS_20_50)
        a = auc(curve, THRESHOLDS_20_50)
        a_zb = auc(pck_curve(errors, THRESHOLDS_20_50_ZB), THRESHOLDS_20_50_ZB)
        label = f"{name} (AUC {a:.3f}; Z&B grid {a_zb:.3f})"
        ax.plot(THRESHOLDS_20_50, curve, marker="o", markersize=3, color=colour, label=label)
        ours.append((name, a, colour))
    if dataset == "stb":
        styles = ("--", "-.", ":")
        for (name, curve), style in zip(STB_REFERENCE_CURVES.items(), styles, strict=True):
            a = auc(curve, STB_REFERENCE_THRESHOLDS_MM)
            ax.plot(STB_REFERENCE_THRESHOLDS_MM, curve, linestyle=style, color="0.45",
                    linewidth=1.0, label=f"{name} (AUC {a:.3f})")  # fmt: skip
    ax.set_xlim(20.0, 50.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("error threshold (mm)")
    ax.set_ylabel("3D PCK")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title(title or f"3D PCK on {_NAMES[dataset]} (20-50 mm)", fontsize=9)

    # The ladder: published AUCs in grey, ours in colour, labels spread so none overlap.
    rows = [(p.method, p.auc, "0.35") for p in published] + ours
    rows.sort(key=lambda r: r[1])
    lo = min(r[1] for r in rows)
    lo = max(0.0, lo - 0.05 * (1.0 - lo) - 0.01)
    gap = (1.0 - lo) * 0.065
    heights = _spread([r[1] for r in rows], gap, 1.0)
    for (name, value, colour), y in zip(rows, heights, strict=True):
        ladder.plot([0.0], [value], marker="o", color=colour, markersize=5)
        ladder.plot([0.0, 0.12], [value, y], color=colour, linewidth=0.6)
        ladder.text(0.14, y, f"{value:.3f}  {name}", va="center", fontsize=7, color=colour)
    ladder.set_ylim(min(lo, heights[0] - gap), 1.0 + gap)
    ladder.set_xlim(-0.1, 1.6)
    ladder.set_xticks([])
    ladder.yaxis.tick_right()
    ladder.set_title(f"AUC 20-50 mm; published: {published[0].source.split(',')[0]} Fig. 9",
                     fontsize=8)  # fmt: skip
    for side in ("top", "left", "bottom"):
        ladder.spines[side].set_visible(False)
    fig.subplots_adjust(left=0.07, right=0.93, bottom=0.12, top=0.9)

    out = Path(out)
    fmt = out.suffix.lstrip(".").lower() or "png"
    return atomic_write(out, lambda tmp: fig.savefig(tmp, format=fmt))
