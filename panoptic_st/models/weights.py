"""ImageNet encoder weights from a local file (never downloaded): timm loads them, this module checks they fit.

timm's loader accepts a torchvision checkpoint of a ResNet (same tensor names) or a timm checkpoint, but it loads
non-strictly: a file of another network would leave the encoder random with only a log line. `timm_weights` reads
the file first (one-line error if it cannot), and `check_weights_loaded` refuses an encoder that the file does
not fully cover.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from panoptic_st.config import ConfigError

ACCEPTED = "a torchvision or timm ImageNet checkpoint of that encoder"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (a plain state dict, or one under `state_dict` / `model`)."""
    if not Path(path).is_file():
        raise ConfigError(f"encoder weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle, zip and torch errors all mean "not a checkpoint"
        raise ConfigError(f"encoder weights {path}: not a readable checkpoint ({type(err).__name__})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ConfigError(f"encoder weights {path}: expected a state dict, got {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def timm_weights(encoder_weights_file: str | None) -> dict[str, Any]:
    """timm `create_model` arguments that load the file's weights (none without a file)."""
    if encoder_weights_file is None:
        return {}
    read_state_dict(encoder_weights_file)
    return {"pretrained_cfg_overlay": {"file": str(encoder_weights_file)}}


def check_weights_loaded(timm_model: nn.Module, encoder_weights_file: str | None, encoder: str) -> None:
    """Every tensor of the timm model must have come from the file, with the file's values."""
    if encoder_weights_file is None:
        return
    loaded = read_state_dict(encoder_weights_file)
    own = {k: v for k, v in timm_model.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = [k for k, v in own.items() if k not in loaded or loaded[k].shape != v.shape]
    if missing:
        raise ConfigError(f"encoder weights {encoder_weights_file}: {len(missing)} of {len(own)} tensors of the "
                          f"{encoder} encoder are missing or of another shape (e.g. {missing[0]}); expected "
                          f"{ACCEPTED}")


def timm_encoder(encoder: nn.Module) -> nn.Module:
    """The timm model inside an encoder (smp's timm-universal encoders wrap it as `.model`)."""
    return getattr(encoder, "model", encoder)
