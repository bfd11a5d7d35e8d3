"""Segment maps: integer maps with 0 = no segment and any other value a segment id (instances, regions).

Renumbering, majority votes of a label map inside segments, and dropping or randomly keeping whole segments.
"""

from __future__ import annotations

import torch
from torch import Tensor

from panoptic_st.data.labels import IGNORE_INDEX
from panoptic_st.ops.classes import class_lookup


def segment_ids(segments: Tensor) -> Tensor:
    """The sorted ids of the segments of a map (0 excluded)."""
    ids = torch.unique(segments)
    return ids[ids != 0]


def renumber_segments(segments: Tensor) -> tuple[Tensor, Tensor]:
    """(map with the segments renumbered 1..K in the order of their ids, the K original ids)."""
    ids, inverse = torch.unique(segments, return_inverse=True)
    offset = 1 if ids.numel() and ids[0] == 0 else 0
    if offset == 0:
        inverse = inverse + 1
    return inverse * (segments != 0), ids[offset:]


def majority_class(segments: Tensor, semantic: Tensor, num_segments: int,
                   allowed: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(class, pixel count) of the most frequent semantic class inside each segment 1..num_segments.

    `segments` holds 0 (none) or 1..num_segments; pixels whose class is not `allowed` (bool [256]) do not vote.
    Index 0 of the outputs belongs to "none"; a segment without votes gets count 0; ties go to the lower class.
    """
    sem = semantic.long().clamp(0, 255)
    votes = segments > 0
    if allowed is not None:
        votes &= allowed[sem]
    key = segments[votes].long() * 256 + sem[votes]
    hist = torch.bincount(key, minlength=(num_segments + 1) * 256).view(num_segments + 1, 256)
    counts, classes = hist.max(dim=1)
    return classes, counts


def fill_segments_with_majority_label(labels: Tensor, segments: Tensor,
                                      ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Every pixel of a segment takes the majority label of the segment.

    labels [B, H, W] (ignore_index = no label), segments [B, H, W] (0 = none). Ignored pixels do not vote; a
    segment with no labelled pixel stays as it was.
    """
    filled = labels.clone()
    voters = ~class_lookup([ignore_index], labels.device)
    for b in range(labels.shape[0]):
        renumbered, ids = renumber_segments(segments[b].long())
        if ids.numel() == 0:
            continue
        classes, votes = majority_class(renumbered, labels[b], ids.numel(), voters)
        covered = (renumbered > 0) & (votes[renumbered] > 0)
        filled[b][covered] = classes[renumbered[covered]].to(labels.dtype)
    return filled


def drop_segments(segments: Tensor, ids: Tensor) -> Tensor:
    """Segment map with the pixels of the segments `ids` set to 0; the other ids are kept."""
    dropped = torch.zeros(int(segments.max()) + 1, dtype=torch.bool, device=segments.device)
    dropped[ids] = True
    return torch.where(dropped[segments], torch.zeros_like(segments), segments)


def random_share(count: int, fraction: float, exact_count: bool = False,
                 generator: torch.Generator | None = None) -> Tensor:
    """Bool [count] (CPU): which of `count` items are kept, each with probability `fraction`, or with `exact_count`
    exactly round(fraction * count) of them, at least one (drawn without replacement)."""
    if exact_count:
        chosen = torch.randperm(count, generator=generator)[:max(1, round(fraction * count))]
        return torch.zeros(count, dtype=torch.bool).index_fill_(0, chosen, True)
    if fraction >= 1.0:
        return torch.ones(count, dtype=torch.bool)
    return torch.rand(count, generator=generator) < fraction


def keep_random_segments(segments: Tensor, fraction: float, generator: torch.Generator | None = None,
                         exact_count: bool = False) -> Tensor:
    """Segment map (any shape; all its segments compete) keeping a random share of its segments (`random_share`);
    the others become 0."""
    ids = segment_ids(segments)
    if ids.numel() == 0:
        return segments
    kept = random_share(ids.numel(), fraction, exact_count, generator).to(ids.device)
    return drop_segments(segments, ids[~kept])
