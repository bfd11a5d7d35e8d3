"""Per-pixel classes: lookup tables over class ids and the most probable class of class probabilities."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def class_lookup(class_ids: Sequence[int], device: torch.device | str | None = None, size: int = 256) -> torch.Tensor:
    """Bool table [size], True at `class_ids`: `class_lookup(ids)[label_map]` marks the pixels of those classes."""
    lookup = torch.zeros(size, dtype=torch.bool, device=device)
    lookup[list(class_ids)] = True
    return lookup


def max_over_classes(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exactly `probs.max(dim=1)` for [B, C, H, W] (values, index of the first maximum), faster on CPU, where `max`
    with indices over a non-innermost dim is not vectorised but `amax` and comparisons are."""
    if probs.device.type != "cpu":
        return probs.max(dim=1)
    classes = probs.shape[1]
    confidence = probs.amax(dim=1, keepdim=True)
    index_dtype = torch.uint8 if classes < 256 else torch.int64
    reverse = torch.arange(classes, 0, -1, device=probs.device, dtype=index_dtype).view(1, classes, 1, 1)
    first = ((probs >= confidence) * reverse).amax(dim=1)  # classes - index of the first maximum
    if bool((first == 0).any()):  # a NaN (no class compares >= NaN): keep max's NaN semantics
        return probs.max(dim=1)
    return confidence.squeeze(1), classes - first.long()
