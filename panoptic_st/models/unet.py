"""Pixel-embedding U-Net of the instance branch (smp `Unet` on a timm encoder)."""

from __future__ import annotations

from pathlib import Path

import segmentation_models_pytorch as smp
from torch import nn


def build_embedding_unet(
    encoder: str = "tu-resnet18", embedding_dim: int = 8, encoder_weights_file: str | None = None
) -> nn.Module:
    """U-Net mapping an image [B,3,H,W] to unnormalised pixel embeddings [B,embedding_dim,H,W].

    `encoder` must be a timm-universal name (`tu-<timm model>`). ImageNet weights are read only from
    `encoder_weights_file` (a timm checkpoint of that model); without it the encoder is randomly initialised.
    Nothing is downloaded. H and W must be multiples of 32.
    """
    if not encoder.startswith("tu-"):
        raise ValueError(f"encoder must be a timm-universal name 'tu-<model>', got {encoder!r}")
    if embedding_dim < 1:
        raise ValueError(f"embedding_dim must be positive, got {embedding_dim}")
    extra: dict[str, dict[str, str]] = {}
    if encoder_weights_file is not None:
        if not Path(encoder_weights_file).is_file():
            raise FileNotFoundError(f"encoder weights file not found: {encoder_weights_file}")
        extra["pretrained_cfg_overlay"] = {"file": str(encoder_weights_file)}
    return smp.Unet(
        encoder_name=encoder,
        encoder_weights=True if encoder_weights_file is not None else None,
        classes=embedding_dim,
        activation=None,
        **extra,
    )
