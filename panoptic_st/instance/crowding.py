"""Copy-paste of source objects beside themselves, so that a source with sparse scenes still shows touching objects
of one class (rows of cars, groups of people) that an instance embedding must learn to tell apart."""

from __future__ import annotations

import torch
from torch import Tensor

SHIFT = (0.6, 1.0)
"""Sideways shift of a pasted copy, as a share of its object's width: it touches or partly covers the original."""
BRIGHTNESS = (0.7, 1.3)
"""Brightness factor of a pasted copy, so that neighbours differ in appearance as real ones do."""


def paste_neighbours(images: Tensor, labels: Tensor, probability: float, min_size: int = 15,
                     generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Copies of objects pasted beside themselves: (images [B, 3, H, W] in [0, 1], instance labels [B, H, W]).

    Each instance of at least `min_size` pixels (still visible after the copies pasted before it) is, with
    `probability`, copied (its pixels, brightness scaled by a
    factor drawn from `BRIGHTNESS`, and a new instance id) and pasted in front of the scene, shifted left or right by
    a share of its width drawn from `SHIFT`; the part of the copy outside the image is dropped. The inputs are not
    changed. Random draws come from `generator` (default: the global generator of the images' device).
    """
    images, labels = images.clone(), labels.clone()
    for b in range(labels.shape[0]):
        ids, areas = torch.unique(labels[b], return_counts=True)
        for instance in ids[(ids > 0) & (areas >= min_size)].tolist():
            mask = labels[b] == instance  # what earlier copies in front left of it
            if _uniform(0.0, 1.0, generator) < probability and mask.sum() >= min_size:
                _paste_copy(images[b], labels[b], mask, generator)
    return images, labels


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _paste_copy(image: Tensor, label: Tensor, mask: Tensor, generator: torch.Generator | None) -> None:
    """Paste one shifted, re-lit copy of the object under `mask` into `image` and `label` (in place)."""
    rows, cols = mask.nonzero(as_tuple=True)
    width = int(cols.max() - cols.min()) + 1
    side = 1 if _uniform(0.0, 1.0, generator) < 0.5 else -1
    shift = side * max(round(_uniform(*SHIFT, generator) * width), 1)
    target = cols + shift
    inside = (target >= 0) & (target < label.shape[1])
    rows, cols, target = rows[inside], cols[inside], target[inside]
    image[:, rows, target] = (image[:, rows, cols] * _uniform(*BRIGHTNESS, generator)).clamp(0.0, 1.0)
    label[rows, target] = label.max() + 1
