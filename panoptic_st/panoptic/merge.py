"""Semantic + instance -> panoptic, and instance-guided refinement of semantic pseudo-labels (thesis ch. 8.5)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from panoptic_st.data.labels import IGNORE_INDEX, LABEL_DIVISOR, NUM_CLASSES, THING_TRAIN_IDS

VOID = -1
CITYSCAPES_PIXELS = 2048 * 1024
CITYSCAPES_STUFF_AREA = 2048


def stuff_area_threshold(height: int, width: int, full_res_area: int = CITYSCAPES_STUFF_AREA) -> int:
    """Minimum stuff segment area, scaled from 2048 px at 2048x1024 to the given resolution."""
    return max(1, round(full_res_area * height * width / CITYSCAPES_PIXELS))


def _thing_lookup(thing_ids: Sequence[int], device: torch.device) -> torch.Tensor:
    lookup = torch.zeros(256, dtype=torch.bool, device=device)
    lookup[list(thing_ids)] = True
    return lookup


def majority_class(segments: torch.Tensor, semantic: torch.Tensor, num_segments: int,
                   allowed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(class, pixel count) of the most frequent semantic class inside each segment 1..num_segments.

    `segments` holds 0 (none) or 1..num_segments; pixels whose class is not `allowed` (bool [256]) do not vote.
    Index 0 of the outputs belongs to "none"; a segment without votes gets count 0.
    """
    sem = semantic.long().clamp(0, 255)
    votes = segments > 0
    if allowed is not None:
        votes &= allowed[sem]
    key = segments[votes].long() * 256 + sem[votes]
    hist = torch.bincount(key, minlength=(num_segments + 1) * 256).view(num_segments + 1, 256)
    counts, classes = hist.max(dim=1)
    return classes, counts


def _consecutive(instances: torch.Tensor) -> tuple[torch.Tensor, int]:
    ids, inverse = torch.unique(instances, return_inverse=True)
    offset = 1 if ids.numel() and ids[0] == 0 else 0
    if offset == 0:
        inverse = inverse + 1
    return inverse * (instances != 0), ids.numel() - offset


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
    is_thing = _thing_lookup(thing_ids, semantic.device)
    sem = semantic.long()
    segments, count = _consecutive(instances.long())
    classes, votes = majority_class(segments, sem, count, allowed=is_thing)
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


def refine_with_instances(labels: torch.Tensor, instances: torch.Tensor,
                          ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Overlay instance masks on semantic pseudo-labels: every pixel of a mask takes its majority label.

    labels [B, H, W] (ignore_index = no label), instances [B, H, W] (0 = none). Ignored pixels do not vote; a
    mask with no labelled pixel stays as it was. Thesis ch. 8.5, "guided mask improvement".
    """
    refined = labels.clone()
    for b in range(labels.shape[0]):
        segments, count = _consecutive(instances[b].long())
        if count == 0:
            continue
        allowed = torch.ones(256, dtype=torch.bool, device=labels.device)
        allowed[ignore_index] = False
        classes, votes = majority_class(segments, labels[b], count, allowed)
        covered = (segments > 0) & (votes[segments] > 0)
        refined[b][covered] = classes[segments[covered]].to(labels.dtype)
    return refined


def sample_instances(instances: torch.Tensor, fraction: float, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """Keep a random `fraction` of the instances of each image (thesis: 30% of GT instances); others become 0."""
    kept = torch.zeros_like(instances)
    for b in range(instances.shape[0]):
        ids = instances[b].unique()
        ids = ids[ids != 0]
        if ids.numel() == 0:
            continue
        n = max(1, round(fraction * ids.numel()))
        chosen = ids[torch.randperm(ids.numel(), generator=generator)[:n].to(ids.device)]
        mask = torch.isin(instances[b], chosen)
        kept[b][mask] = instances[b][mask]
    return kept
