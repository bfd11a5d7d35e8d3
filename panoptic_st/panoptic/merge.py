"""Semantic + instance -> panoptic."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from panoptic_st.data.labels import LABEL_DIVISOR, NUM_CLASSES, THING_TRAIN_IDS
from panoptic_st.ops.classes import class_lookup
from panoptic_st.ops.segments import majority_class, renumber_segments

VOID = -1
CITYSCAPES_PIXELS = 2048 * 1024
CITYSCAPES_STUFF_AREA = 2048


def stuff_area_threshold(height: int, width: int, full_res_area: int = CITYSCAPES_STUFF_AREA) -> int:
    """Minimum stuff segment area, scaled from 2048 px at 2048x1024 to the given resolution."""
    return max(1, round(full_res_area * height * width / CITYSCAPES_PIXELS))


def merge_panoptic(semantic: torch.Tensor, instances: torch.Tensor, stuff_area: int | None = None,
                   thing_ids: Sequence[int] = THING_TRAIN_IDS, label_divisor: int = LABEL_DIVISOR) -> torch.Tensor:
    """Panoptic map [H, W] (class * label_divisor + instance; stuff: class * label_divisor; void -1).

    Things come from the instance map, each instance taking the majority thing class of the semantic map inside
    it (instances without thing pixels are dropped). Stuff comes from the semantic map where no instance lies;
    stuff segments under `stuff_area` pixels (default: 2048 at 2048x1024, scaled) and thing-class pixels without
    an instance become void.
    """
    height, width = semantic.shape
    stuff_area = stuff_area_threshold(height, width) if stuff_area is None else stuff_area
    is_thing = class_lookup(thing_ids, semantic.device)
    sem = semantic.long()
    segments, ids = renumber_segments(instances.long())
    classes, votes = majority_class(segments, sem, ids.numel(), allowed=is_thing)
    kept = votes > 0
    kept[0] = False
    panoptic = torch.full_like(sem, VOID)
    stuff = (segments == 0) & (sem < NUM_CLASSES) & ~is_thing[sem.clamp(0, 255)]
    stuff_area_per_class = torch.bincount(sem[stuff], minlength=NUM_CLASSES)
    stuff &= stuff_area_per_class[sem.clamp(0, NUM_CLASSES - 1)] >= stuff_area
    panoptic[stuff] = sem[stuff] * label_divisor
    per_class_index = _index_within_class(classes, kept)
    things = kept[segments]
    panoptic[things] = classes[segments[things]] * label_divisor + per_class_index[segments[things]]
    return panoptic


def _index_within_class(classes: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """1-based running index of each kept segment among the kept segments of its class."""
    index = torch.zeros_like(classes)
    for cls in classes[kept].unique():
        members = kept & (classes == cls)
        index[members] = torch.arange(1, int(members.sum()) + 1, device=classes.device)
    return index
