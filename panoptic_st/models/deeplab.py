"""DeepLab V2 (own ASPP-sum head on a dilated timm encoder), V3 and V3+ (segmentation_models_pytorch).

Every network is a `SegmentationNet` with two parts, `.encoder` (image -> list of feature maps) and `.head`
(feature list -> logits at the encoder's output stride); `forward` upsamples the logits bilinearly to the input
size. `param_groups` uses that split for SAC's learning-rate multipliers.
"""

from __future__ import annotations

import difflib
from functools import partial
from typing import Any, Literal

import segmentation_models_pytorch as smp
import timm
import torch
import torch.nn.functional as F
from torch import nn

from panoptic_st.config import SEMANTIC_ARCHS, ConfigError
from panoptic_st.models.weights import check_weights_loaded, timm_encoder, timm_weights

Arch = Literal["deeplabv2", "deeplabv3", "deeplabv3plus"]
ARCHS: tuple[str, ...] = SEMANTIC_ARCHS


def check_encoder_name(encoder: str, key: str) -> None:
    """Refuse an encoder that timm does not know, in one line naming the config key and the closest names."""
    if timm.is_model(encoder):
        return
    close = difflib.get_close_matches(encoder, timm.list_models(), n=3, cutoff=0.6)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise ConfigError(f"{key}={encoder}: unknown encoder (not a timm model name){hint}")


class ASPPSum(nn.Module):
    """DeepLabV2 classifier: parallel dilated 3x3 convolutions whose outputs are summed."""

    def __init__(self, in_channels: int, num_classes: int, dilations: tuple[int, ...] = (6, 12, 18, 24)):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, num_classes, kernel_size=3, padding=d, dilation=d) for d in dilations
        )
        for conv in self.branches:
            nn.init.normal_(conv.weight, mean=0.0, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Logits from the deepest feature map."""
        x = features[-1]
        return sum(branch(x) for branch in self.branches)


class SMPHead(nn.Module):
    """Decoder and segmentation head of an smp model, applied to its encoder's feature list."""

    def __init__(self, decoder: nn.Module, segmentation_head: nn.Module):
        super().__init__()
        self.decoder = decoder
        self.segmentation_head = segmentation_head

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Logits at the decoder's resolution."""
        return self.segmentation_head(self.decoder(features))


class SegmentationNet(nn.Module):
    """Encoder -> head -> bilinear upsampling of the logits to the input size."""

    def __init__(self, encoder: nn.Module, head: nn.Module, input_divisor: int = 1):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.input_divisor = input_divisor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, C, H, W] for images [B, 3, H, W]."""
        height, width = x.shape[-2:]
        if height % self.input_divisor or width % self.input_divisor:
            raise ValueError(
                f"input size {height}x{width} must be divisible by {self.input_divisor} for this network"
            )
        logits = self.head(self.encoder(x))
        return F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)


def _build_v2(encoder: str, num_classes: int, output_stride: int, weights: dict[str, Any]) -> SegmentationNet:
    """DeepLabV2: dilated timm encoder (deepest level only) with the ASPP-sum head."""
    backbone = timm.create_model(
        encoder,
        features_only=True,
        out_indices=(-1,),
        output_stride=output_stride,
        pretrained=bool(weights),
        **weights,
    )
    return SegmentationNet(backbone, ASPPSum(backbone.feature_info.channels()[-1], num_classes))


def _build_smp(
    arch: str, encoder: str, num_classes: int, output_stride: int, weights: dict[str, Any]
) -> SegmentationNet:
    """DeepLabV3 / V3+ from smp with a `tu-` timm encoder, split into encoder and head."""
    model_cls = smp.DeepLabV3 if arch == "deeplabv3" else smp.DeepLabV3Plus
    model = model_cls(
        encoder_name=f"tu-{encoder}",
        encoder_weights=True if weights else None,
        encoder_output_stride=output_stride,
        classes=num_classes,
        upsampling=1,
        **weights,
    )
    head = SMPHead(model.decoder, model.segmentation_head)
    return SegmentationNet(model.encoder, head, input_divisor=output_stride)


def build_deeplab(
    arch: Arch,
    encoder: str,
    num_classes: int = 19,
    output_stride: int = 8,
    encoder_weights_file: str | None = None,
) -> SegmentationNet:
    """DeepLab network on a timm encoder (`resnet101` for real runs, e.g. `mobilenetv3_small_100` for toy runs).

    ImageNet weights come only from `encoder_weights_file` (a torchvision or timm checkpoint of the plain
    classifier, checked to cover the whole encoder); without it the encoder is randomly initialised. V3/V3+ need input sides divisible by `output_stride`.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown DeepLab arch {arch!r}; expected one of {', '.join(ARCHS)}")
    check_encoder_name(encoder, "semantic.encoder")
    weights = timm_weights(encoder_weights_file)
    build = _build_v2 if arch == "deeplabv2" else partial(_build_smp, arch)
    net = build(encoder, num_classes, output_stride, weights)
    check_weights_loaded(timm_encoder(net.encoder), encoder_weights_file, encoder)
    return net


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    head_lr_mult: float = 10.0,
    bias_lr_mult: float = 2.0,
) -> list[dict[str, Any]]:
    """SGD parameter groups: encoder at `lr`, head at `head_lr_mult * lr`; biases at `bias_lr_mult` times
    their part's rate and without weight decay.

    Needs `model.encoder` and `model.head`. Parameters frozen later (e.g. BatchNorm) may stay in the groups:
    they receive no gradient, so the optimiser skips them.
    """
    groups = []
    for part, part_lr in (("encoder", lr), ("head", head_lr_mult * lr)):
        named = list(getattr(model, part).named_parameters())
        weights = [p for name, p in named if not name.endswith("bias")]
        biases = [p for name, p in named if name.endswith("bias")]
        groups.append(
            {"name": f"{part}_weight", "params": weights, "lr": part_lr, "weight_decay": weight_decay}
        )
        groups.append(
            {"name": f"{part}_bias", "params": biases, "lr": bias_lr_mult * part_lr, "weight_decay": 0.0}
        )
    return groups
