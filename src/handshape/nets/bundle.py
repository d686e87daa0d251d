"""Inference bundles: a trained network's weights (model.safetensors) and resolved config
(config.yaml), read back into a network.

Kept apart from training and evaluation so that commands which only run a network (predict,
export) import neither Lightning nor the training stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from handshape.nets.network import HandNet

__all__ = ["load_network"]


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def load_network(checkpoint: Path) -> tuple[HandNet, dict[str, Any]]:
    """A network in eval mode and its resolved config, from an inference bundle folder
    (model.safetensors + config.yaml), that folder's model.safetensors, or a training
    checkpoint (.ckpt, read with weights_only=True). Errors name the file and what is wrong."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_file() and checkpoint.suffix == ".safetensors":
        checkpoint = checkpoint.parent  # a bundle's weights: the config sits beside them
    if checkpoint.is_dir():
        from safetensors.torch import load_file

        cfg_path, weights_path = checkpoint / "config.yaml", checkpoint / "model.safetensors"
        for path in (cfg_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing from the bundle {checkpoint}")
        try:
            cfg = OmegaConf.to_container(OmegaConf.load(cfg_path), resolve=True)
        except Exception as err:  # YAML and OmegaConf grammar errors
            raise ValueError(f"{cfg_path}: not a readable config ({err})") from err
        try:
            state = load_file(str(weights_path))
        except Exception as err:  # safetensors raises its own error type
            raise ValueError(
                f"{weights_path}: not a readable safetensors file ({_first_line(err)})"
            ) from err
    elif checkpoint.is_file():
        try:
            saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception as err:  # zip, pickle and weights-only errors of several types
            raise ValueError(
                f"{checkpoint}: not a PyTorch checkpoint that can be read safely (expected a "
                "bundle folder, its model.safetensors, or a .ckpt written by handshape "
                f"training; torch says: {_first_line(err)})"
            ) from err
        try:
            cfg = saved["hyper_parameters"]["cfg"]
            weights = saved["state_dict"]
        except (KeyError, TypeError) as err:
            raise ValueError(
                f"{checkpoint}: a PyTorch file, but not a handshape training checkpoint (no "
                "hyper_parameters.cfg and state_dict)"
            ) from err
        state = {k.removeprefix("net."): v for k, v in weights.items() if k.startswith("net.")}
    else:
        raise FileNotFoundError(f"{checkpoint}: no such bundle folder or checkpoint")
    if not isinstance(cfg, dict) or not {"model", "handmodel"} <= set(cfg):
        raise ValueError(f"{checkpoint}: its config lacks the model or handmodel section")
    net = HandNet.from_config(cfg)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"{checkpoint}: weights do not fit the configured network ({_first_line(err)})"
        ) from err
    return net.eval(), cfg
