"""Image normalisation: images in [0, 1] to network inputs, and SAC's source re-normalisation constants."""

from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(
    images: torch.Tensor,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> torch.Tensor:
    """Per-channel (image - mean) / std of [..., 3, H, W] images in [0, 1]; ImageNet statistics by default."""
    return TF.normalize(images, list(mean), list(std))


def renormalisation(source_mean: torch.Tensor, source_std: torch.Tensor, target_mean: torch.Tensor,
                    target_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Source normalisation constants that give source images the target's channel statistics (SAC):
    mean' = mu_s - sigma_s / sigma_t * (mu_t - mu_imagenet), std' = sigma_s * sigma_imagenet / sigma_t."""
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    return source_mean - source_std / target_std * (target_mean - mean), source_std * std / target_std
