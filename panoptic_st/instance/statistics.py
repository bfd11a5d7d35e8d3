"""Pseudo-label quality against ground-truth instances, for monitoring only."""

from __future__ import annotations

import torch
from torch import Tensor

PSEUDO_LABEL_KINDS = ("true", "merge", "fragment", "other")


def pseudo_label_kinds(pseudo: Tensor, truth: Tensor, threshold: float = 0.5) -> dict[str, int]:
    """Pseudo-instances of [H,W] by kind against ground-truth instances [H,W] (0 = none), class-agnostic:
    `true` overlaps one GT instance with IoU > threshold; else `merge` holds more than half of two or more GT
    instances; else `fragment` lies mostly (> 80%) inside one GT instance; else `other` (background, mixtures).
    For monitoring only."""
    p_ids, p_idx = torch.unique(pseudo, return_inverse=True)
    t_ids, t_idx = torch.unique(truth, return_inverse=True)
    joint = torch.bincount((p_idx * len(t_ids) + t_idx).flatten(), minlength=len(p_ids) * len(t_ids))
    joint = joint.view(len(p_ids), len(t_ids)).float()
    pseudo_area, truth_area = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    iou = joint / (pseudo_area + truth_area - joint).clamp_min(1)
    rows, cols = p_ids != 0, t_ids != 0
    joint, iou = joint[rows][:, cols], iou[rows][:, cols]
    pseudo_area, truth_area = pseudo_area[rows].squeeze(1), truth_area[:, cols]
    if joint.shape[1] == 0:
        return {**dict.fromkeys(PSEUDO_LABEL_KINDS, 0), "other": int(joint.shape[0])}
    true = iou.max(dim=1).values > threshold
    merge = ~true & ((joint > 0.5 * truth_area).sum(1) >= 2)
    fragment = ~true & ~merge & (joint.max(dim=1).values > 0.8 * pseudo_area)
    other = ~true & ~merge & ~fragment
    return {kind: int(mask.sum()) for kind, mask in zip(PSEUDO_LABEL_KINDS, (true, merge, fragment, other))}


def match_counts(pseudo: Tensor, truth: Tensor, threshold: float = 0.5) -> tuple[int, int]:
    """(true, false) positive pseudo-instances: a pseudo-instance is true if it overlaps one GT instance with
    IoU > threshold. For monitoring only."""
    kinds = pseudo_label_kinds(pseudo, truth, threshold)
    return kinds["true"], sum(kinds.values()) - kinds["true"]
