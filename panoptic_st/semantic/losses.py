"""Semantic-branch losses: supervised source cross-entropy, SAC's confidence-weighted focal target loss and the
target loss's weight over training."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from panoptic_st.config import SemanticConfig
from panoptic_st.data.labels import IGNORE_INDEX


def source_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Cross-entropy averaged over labelled pixels; 0 (with a graph) if every pixel is ignored."""
    total = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum")
    return total / (target != ignore_index).sum().clamp_min(1)


def focal_target_loss(
    logits: torch.Tensor,
    pseudo_labels: torch.Tensor,
    confidence: torch.Tensor,
    class_prior: torch.Tensor,
    power: float = 3.0,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """SAC's target loss: L = 1/N sum_i conf_i * (1 - chi_{y_i})^power * (-log softmax(logits_i)[y_i]).

    logits [B, C, H, W], pseudo_labels [B, H, W] (`ignore_index` = no label), confidence [B, H, W] (the
    teacher's max fused probability), class_prior chi [C]. N = B*H*W counts every pixel; ignored pixels add 0.
    "Focal" here is SAC's sense: the class weight (1 - chi_c)^power down-weights frequent classes; there is no
    Lin et al. (1 - p)^gamma term. Quirk fixed: the public code multiplies by the confidence broadcast across
    the batch ([B, 1, H, W] * [B, H, W]); here each pixel is weighted by its own confidence.
    """
    class_weight = ((1.0 - class_prior.clamp_min(0.0)) ** power).to(logits.dtype)
    per_pixel = F.cross_entropy(
        logits, pseudo_labels, weight=class_weight, ignore_index=ignore_index, reduction="none"
    )
    return (per_pixel * confidence).mean()


def target_weight(cfg: SemanticConfig, step: int) -> float:
    """Weight of the target loss, with an optional linear ramp-up over `target_rampup_steps`."""
    if cfg.target_rampup_steps <= 0:
        return cfg.target_weight
    return cfg.target_weight * min(1.0, step / cfg.target_rampup_steps)
