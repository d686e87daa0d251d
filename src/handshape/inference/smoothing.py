"""Temporal smoothing of per-frame hand outputs: the One Euro filter (Casiez, Roussel and Vogel,
CHI 2012).

Each value is low-pass filtered with a cut-off frequency that rises with its speed,
f_c = min_cutoff + beta * |dx/dt| (the speed itself low-passed at d_cutoff), so a still hand
does not jitter and a moving one does not lag. The smoothing factor of a step of dt seconds is
alpha = 1 / (1 + tau / dt), tau = 1 / (2 pi f_c).

`OneEuro` filters arrays of any fixed shape elementwise; `handshape predict` keeps one per
tracked hand (its track number) and forgets hands that left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def _alpha(cutoff: float | np.ndarray, dt: float) -> float | np.ndarray:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


@dataclass
class OneEuro:
    """One Euro filter over arrays of one shape. min_cutoff (Hz): lower is smoother when still;
    beta: higher follows fast motion more closely; d_cutoff (Hz): of the speed estimate."""

    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0
    _x: np.ndarray | None = field(default=None, repr=False)
    _dx: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ValueError(
                "One Euro filter: min_cutoff and d_cutoff must be positive and beta at least 0, "
                f"got {self.min_cutoff}, {self.d_cutoff}, {self.beta}"
            )

    def reset(self) -> None:
        self._x = self._dx = None

    def __call__(self, x: np.ndarray, dt: float) -> np.ndarray:
        """The filtered value of the next sample x, dt seconds after the last one."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.copy()
        if dt <= 0:
            raise ValueError(f"One Euro filter: time step must be positive, got {dt}")
        assert self._dx is not None
        speed = (x - self._x) / dt
        a_d = _alpha(self.d_cutoff, dt)
        self._dx = a_d * speed + (1 - a_d) * self._dx
        a = _alpha(self.min_cutoff + self.beta * np.abs(self._dx), dt)
        self._x = a * x + (1 - a) * self._x
        return self._x.copy()
