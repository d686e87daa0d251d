"""Mesh heads: interchangeable modules mapping the latent vector to mesh vertices, chosen by name.

The config names a head (``model.head: graphcnn``) and `build_head` constructs it. The registry
is explicit: adding a head is one module plus one `register_head` line at the end of this file.

    >>> head = build_head("graphcnn", latent_dim=512, hierarchy=hierarchy)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from handshape.nets.heads.graphcnn import GraphCNNHead

__all__ = ["HEADS", "GraphCNNHead", "build_head", "register_head"]

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


def build_head(name: str, **kwargs: Any) -> nn.Module:
    """Construct the head registered as ``name`` with keyword arguments ``kwargs``.

    Raises:
        ValueError: ``name`` is not registered; the message lists the known heads.
    """
    try:
        cls = HEADS[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(HEADS)) or "(none)"
        raise ValueError(f"unknown head {name!r}; known heads: {known}") from None
    return cls(**kwargs)


register_head("graphcnn")(GraphCNNHead)
