"""Pixel-embedding U-Net of the instance branch (smp `Unet` on a timm encoder)."""

from __future__ import annotations

import segmentation_models_pytorch as smp
from torch import nn

from panoptic_st.models.deeplab import check_encoder_name
from panoptic_st.models.weights import check_weights_loaded, timm_encoder, timm_weights


def build_embedding_unet(
    encoder: str = "tu-resnet18", embedding_dim: int = 8, encoder_weights_file: str | None = None
) -> nn.Module:
    """U-Net mapping an image [B,3,H,W] to unnormalised pixel embeddings [B,embedding_dim,H,W].

    `encoder` must be a timm-universal name (`tu-<timm model>`). ImageNet weights are read only from
    `encoder_weights_file` (a torchvision or timm checkpoint of that model); without it the encoder is randomly initialised.
    Nothing is downloaded. H and W must be multiples of 32.
    """
    if not encoder.startswith("tu-"):
        raise ValueError(f"encoder must be a timm-universal name 'tu-<model>', got {encoder!r}")
    if embedding_dim < 1:
        raise ValueError(f"embedding_dim must be positive, got {embedding_dim}")
    check_encoder_name(encoder.removeprefix("tu-"), "instance.encoder")
    net = smp.Unet(
        encoder_name=encoder,
        encoder_weights=True if encoder_weights_file is not None else None,
        classes=embedding_dim,
        activation=None,
        **timm_weights(encoder_weights_file),
    )
    check_weights_loaded(timm_encoder(net.encoder), encoder_weights_file, encoder)
    return net
