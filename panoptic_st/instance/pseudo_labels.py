"""Instance pseudo-labels from pixel embeddings and semantic masks (thesis Algorithm 2), post-processing and
per-instance predictions for AP."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from panoptic_st.data.labels import IGNORE_INDEX, THING_TRAIN_IDS
from panoptic_st.instance.meanshift import agglomerative_clusters, mean_shift, merge_clusters, nearest_center
from panoptic_st.ops.segments import drop_segments, majority_class, renumber_segments, segment_ids

METHODS = ("meanshift+", "meanshift", "agglomerative")
PREDICT_MAX_POINTS = 16384
"""Pixels per class mask that mean-shift finds its modes on at prediction (the rest take the nearest mode): all of
them on the toy, a bounded share of a 1024 x 2048 image's large masks."""


@dataclass(frozen=True)
class ClusteringSettings:
    """How one instance model's embeddings become instances: thing classes clustered, method and parameters."""

    classes: tuple[int, ...] = tuple(THING_TRAIN_IDS)
    method: str = "meanshift+"
    bandwidth: float = 0.5
    delta_d: float = 2.0
    min_size: int = 50
    postprocess_kernel: int = 3
    max_points: int | None = PREDICT_MAX_POINTS


def cluster_instances(embeddings: Tensor, semantic: Tensor, settings: ClusteringSettings,
                      max_points: int | None = None) -> tuple[Tensor, Tensor]:
    """Instance map [H,W] and class table of one image (`instance_pseudo_labels`, then the morphological opening);
    `max_points` caps the pixels mean-shift runs on per class mask."""
    instances, classes = instance_pseudo_labels(embeddings, semantic, settings.classes, settings.bandwidth,
                                                settings.delta_d, settings.min_size, settings.method, max_points)
    if settings.postprocess_kernel > 1:
        instances = postprocess_instances(instances, settings.postprocess_kernel)
    return instances, classes


def cluster_embeddings(points: Tensor, method: str, bandwidth: float, delta_d: float,
                       max_points: int | None = None) -> Tensor:
    """Cluster labels [N] of embeddings [N,D] with "meanshift+" (mean-shift, then merge), "meanshift" or
    "agglomerative" (average linkage, distance threshold delta_d).

    With `max_points`, mean-shift finds its modes on at most that many evenly spaced points (in the given order,
    i.e. a regular spatial subsample of a mask) and every point takes its nearest mode: a large mask then costs
    about as much as a mask of `max_points` pixels. Autocast is off: distances from bf16 or fp16 matrix products of
    embeddings as large as joint positions (`instance/spatial.py`) are coarser than the bandwidth.
    """
    with torch.autocast(points.device.type, enabled=False):
        if method == "agglomerative":
            return agglomerative_clusters(points, distance_threshold=delta_d)
        if max_points is not None and points.shape[0] > max_points:
            index = torch.linspace(0, points.shape[0] - 1, max_points, device=points.device).round().long()
            _, modes = mean_shift(points[index], bandwidth)
            labels = nearest_center(points.float() - modes.mean(0), modes - modes.mean(0))
        else:
            labels, _ = mean_shift(points, bandwidth)
        return merge_clusters(points, labels, delta_d) if method == "meanshift+" else labels


def instance_pseudo_labels(
    embeddings: Tensor,
    semantic: Tensor,
    thing_classes: Sequence[int] = THING_TRAIN_IDS,
    bandwidth: float = 0.5,
    delta_d: float = 2.0,
    min_size: int = 50,
    method: str = "meanshift+",
    max_points: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Instance map [H,W] (0 = none, instances 1..K) and class table [K+1] (trainId of instance i at index i,
    IGNORE_INDEX at 0) from embeddings [D,H,W] and a semantic trainId map [H,W].

    For each thing class present with at least `min_size` pixels, the embeddings inside its mask are
    clustered; clusters under `min_size` pixels are dropped and the rest of all classes fused into one map.
    `classes[instance_map]` gives the class of every pixel. `max_points` caps the pixels mean-shift runs on per
    mask (see `cluster_embeddings`).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if embeddings.dim() != 3 or semantic.shape != embeddings.shape[1:]:
        raise ValueError(
            f"expected embeddings [D,H,W] and semantic [H,W], got {tuple(embeddings.shape)} and "
            f"{tuple(semantic.shape)}"
        )
    instance_map = torch.zeros(semantic.shape, dtype=torch.long, device=semantic.device)
    classes = [IGNORE_INDEX]
    for cls in thing_classes:
        mask = semantic == cls
        if int(mask.sum()) < min_size:
            continue
        labels = cluster_embeddings(embeddings[:, mask].T.detach(), method, bandwidth, delta_d, max_points)
        _, labels, counts = torch.unique(labels, return_inverse=True, return_counts=True)
        kept = torch.nonzero(counts >= min_size).squeeze(1)
        new_ids = torch.zeros(counts.numel(), dtype=torch.long, device=semantic.device)
        new_ids[kept] = torch.arange(len(classes), len(classes) + kept.numel(), device=semantic.device)
        instance_map[mask] = new_ids[labels]
        classes.extend([cls] * kept.numel())
    return instance_map, torch.tensor(classes, dtype=torch.long, device=semantic.device)


def postprocess_instances(instance_map: Tensor, kernel: int = 3) -> Tensor:
    """Morphological opening (erosion then dilation, square `kernel`) of each instance mask of [H,W].

    Opening only removes pixels (spurs, thin bridges, specks), so instances never overlap afterwards;
    ids are kept and an instance that disappears is simply absent. The image border does not erode.
    """
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be a positive odd size, got {kernel}")
    result = torch.zeros_like(instance_map)
    pad = kernel // 2
    for instance in torch.unique(instance_map).tolist():
        if instance == 0:
            continue
        ys, xs = torch.nonzero(instance_map == instance, as_tuple=True)
        # bounding box grown by the kernel radius, so that neighbouring non-instance pixels erode it
        top, left = max(int(ys.min()) - pad, 0), max(int(xs.min()) - pad, 0)
        bottom, right = int(ys.max()) + 1 + pad, int(xs.max()) + 1 + pad
        crop = (instance_map[top:bottom, left:right] == instance).float()[None, None]
        eroded = -F.max_pool2d(-crop, kernel, stride=1, padding=pad)
        opened = F.max_pool2d(eroded, kernel, stride=1, padding=pad)[0, 0] > 0.5
        result[top:bottom, left:right][opened] = instance
    return result


def drop_unconfident_instances(instance_map: Tensor, instance_classes: Tensor, semantic_probs: Tensor,
                               min_confidence: float) -> Tensor:
    """Instance map [H,W] without the instances whose mean probability of their class (in `semantic_probs`
    [C,H,W]) is below `min_confidence`; their pixels become 0 (unlabelled), the other ids are kept."""
    if min_confidence <= 0:
        return instance_map
    ids = segment_ids(instance_map)
    _, _, scores = instance_predictions(instance_map, semantic_probs, instance_classes)
    return drop_segments(instance_map, ids[scores < min_confidence])


def drop_unstable_instances(instance_map: Tensor, embeddings: Tensor, bandwidth: float, min_size: int,
                            max_points: int | None = None) -> Tensor:
    """Instance map [H,W] without the instances whose embeddings [D,H,W] split into two or more clusters of at least
    `min_size` pixels when clustered again with mean-shift+ at the finer `bandwidth` (also the merge distance);
    their pixels become 0 (unlabelled). Touching objects merged at the coarse bandwidth split here."""
    ids = segment_ids(instance_map)
    unstable = []
    for instance in ids:
        points = embeddings[:, instance_map == instance].T
        labels = cluster_embeddings(points, "meanshift+", bandwidth, bandwidth, max_points)
        if int((torch.bincount(labels) >= min_size).sum()) > 1:
            unstable.append(instance)
    return drop_segments(instance_map, torch.stack(unstable)) if unstable else instance_map


def instance_predictions(
    instance_map: Tensor, semantic_probs: Tensor, instance_classes: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Masks [K,H,W] (bool), classes [K] and scores [K] of the instances of [H,W], for AP evaluation.

    The class is `instance_classes[id]` when that table is given, else the most frequent argmax class of
    `semantic_probs` [C,H,W] inside the mask; the score is the mean probability of that class in the mask
    (the instance confidence of Panoptic-DeepLab / EDAPS).
    """
    ids = segment_ids(instance_map)
    masks = instance_map[None] == ids[:, None, None]
    if instance_classes is not None:
        classes = instance_classes.to(ids.device)[ids].long()
    else:
        renumbered, _ = renumber_segments(instance_map)
        classes = majority_class(renumbered, semantic_probs.argmax(0), ids.numel())[0][1:]
    scores = [semantic_probs[cls][mask].mean() for cls, mask in zip(classes.tolist(), masks)]
    return masks, classes, torch.stack(scores) if scores else torch.zeros(0, device=instance_map.device)
