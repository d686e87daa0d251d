"""Mesh heads: interchangeable modules mapping the latent vector to mesh vertices, chosen by name.

The config names a head (``model.head.name``: graphcnn, mano or lbs) and `build_head` constructs
it. The registry
is explicit: adding a head is one module plus one `register_head` line at the end of this file.

    >>> head = build_head("graphcnn", latent_dim=512, hierarchy=hierarchy)  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from handshape.nets.heads.graphcnn import GraphCNNHead
from handshape.nets.heads.parametric import DirectLBSHead, ManoHead

__all__ = ["HEADS", "DirectLBSHead", "GraphCNNHead", "ManoHead", "build_head", "register_head"]

HeadT = TypeVar("HeadT", bound=type[nn.Module])

HEADS: dict[str, type[nn.Module]] = {}


def register_head(name: str) -> Callable[[HeadT], HeadT]:
    """Class decorator registering a head under ``name``.

    Registering the same class twice under one name is a no-op; a different class under a
    taken name raises ValueError.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a head name must be a non-empty string, got {name!r}")

    def decorator(cls: HeadT) -> HeadT:
        known = HEADS.get(name)
        if known is not None and known is not cls:
            raise ValueError(
                f"head name {name!r} is already registered to {known.__module__}."
                f"{known.__qualname__}"
            )
        HEADS[name] = cls
        return cls

    return decorator


def build_head(name: str, context: dict[str, Any] | None = None, **kwargs: Any) -> nn.Module:
    """Construct the head registered as ``name`` with keyword arguments ``kwargs``.

    ``context`` holds what the network can offer every head (``hierarchy``: the mesh's
    coarsening tree, ``hand``: the parametric hand model); a head receives the entries its
    constructor names and ignores the rest, so heads are swapped by config alone.

    Raises:
        ValueError: ``name`` is not registered; the message lists the known heads.
    """
    try:
        cls = HEADS[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(HEADS)) or "(none)"
        raise ValueError(f"unknown head {name!r}; known heads: {known}") from None
    accepted = inspect.signature(cls).parameters
    wanted = {k: v for k, v in (context or {}).items() if k in accepted}
    return cls(**wanted, **kwargs)


register_head("graphcnn")(GraphCNNHead)
register_head("mano")(ManoHead)
register_head("lbs")(DirectLBSHead)
