"""The stage spec of the graph networks: how many levels to move, then which convolutions.

A stage is ``(times, channels)``: the Graph CNN head first upsamples ``times`` levels towards the
finest mesh, the pose regressor first convolves and then pools ``times`` levels towards the
coarsest; ``channels`` lists the output width of each Chebyshev convolution of the stage.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["Stage", "validate_stages"]

# (levels to upsample (head) or pool (pose regressor) by, output channels of each convolution)
Stage = tuple[int, tuple[int, ...]]


def validate_stages(stages: Sequence[Stage], levels: int) -> tuple[Stage, ...]:
    """Normalise ``stages`` to tuples and check them against a hierarchy of ``levels`` levels.

    Returns:
        The stages as a tuple of ``(int, tuple[int, ...])``.

    Raises:
        ValueError: a negative level count, a non-positive channel count, no stage at all, or
            more levels in total than the hierarchy has.
    """
    out: list[Stage] = []
    for stage in stages:
        try:
            times, channels = stage
            times = int(times)
            channels = tuple(int(c) for c in channels)
        except (TypeError, ValueError):
            raise ValueError(f"a stage must be (levels, (channels, ...)), got {stage!r}") from None
        if times < 0:
            raise ValueError(f"a stage must move a non-negative number of levels, got {times}")
        if any(c <= 0 for c in channels):
            raise ValueError(f"channel counts must be positive, got {channels}")
        out.append((times, channels))
    if not out:
        raise ValueError("at least one stage is needed")
    total = sum(times for times, _ in out)
    if total > levels:
        raise ValueError(f"the stages span {total} levels but the hierarchy has only {levels}")
    return tuple(out)
