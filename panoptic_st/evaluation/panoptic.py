"""Panoptic quality (PQ, SQ, RQ) and PQ+ with the exact rules of the official Cityscapes / COCO panopticapi script.

The rules and the result dict are in :mod:`~panoptic_st.evaluation.panoptic_stats`; two entry points share them:

- :class:`PanopticQuality` (here), a ``torchmetrics.Metric`` on the project's maps (``trainId * 1000 + instance``):
  per image, one compare-and-scan pass turns the two id maps into horizontal runs of equal (GT id, predicted id)
  pairs, and one weighted ``np.bincount`` of the runs is the joint histogram of segment pairs;
- :func:`~panoptic_st.evaluation.panoptic_files.evaluate_panoptic`, a drop-in for ``evaluatePanoptic`` on the
  official files (COCO panoptic JSON + PNGs), also importable from here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric

from panoptic_st.data.labels import LABEL_DIVISOR, NUM_CLASSES, THING_TRAIN_IDS
from panoptic_st.evaluation.panoptic_files import evaluate_panoptic
from panoptic_st.evaluation.panoptic_stats import (
    FIELDS,
    PanopticStats,
    pair_runs,
    panoptic_image_stats,
    summarize_panoptic,
)
from panoptic_st.ops.classes import class_lookup

__all__ = [
    "PanopticQuality",
    "PanopticStats",
    "evaluate_panoptic",
    "panoptic_from_semantic_instance",
    "panoptic_image_stats",
    "summarize_panoptic",
]

VOID = -1
"""Void in the project's panoptic maps: any negative id (and any id whose class is not a train class)."""


def panoptic_from_semantic_instance(
    semantic: torch.Tensor, instance: torch.Tensor, thing_ids: Sequence[int] = THING_TRAIN_IDS
) -> torch.Tensor:
    """GT panoptic map from a dataset item's ``semantic`` (trainIds, 255 ignore) and ``instance`` (0 = none).

    Things: ``trainId * 1000 + instance`` (instance 0 = crowd/group region, the default crowd convention of
    :class:`PanopticQuality`); stuff: ``trainId * 1000``; ignore: -1. Instance ids must be < 1000.
    """
    sem = semantic.long()
    inst = instance.long()
    thing = class_lookup(thing_ids, sem.device)
    valid = (sem >= 0) & (sem < NUM_CLASSES)
    is_thing = valid & thing[sem.clamp(0, 255)]
    pan = sem * LABEL_DIVISOR + torch.where(is_thing, inst, torch.zeros_like(inst))
    return torch.where(valid, pan, torch.full_like(pan, VOID))


class PanopticQuality(Metric):
    """PQ/SQ/RQ and PQ+ over a split, equal to the official script, on the project's panoptic maps.

    ``update(preds, target, target_crowd=None)``: ``preds`` and ``target`` are (H, W) or (B, H, W) integer maps
    with id ``trainId * 1000 + instance`` (stuff: ``trainId * 1000``); void = any negative id (e.g. -1) or an id
    whose class is not in ``[0, num_classes)`` (e.g. ``255 * 1000``). Crowd GT segments: by default the thing-class
    GT segments with instance 0 (Cityscapes crowd/group regions carry their class but no instance), otherwise
    ``target_crowd`` lists the crowd segment ids of each image.

    States (per class ``iou``, ``tp``, ``fp``, ``fn``, ``plus_iou``, ``plus_gt``) are summed across processes.
    ``compute()`` returns the official layout with trainIds as keys, averaged over ``classes`` (default: all 19;
    e.g. ``PROTOCOLS[16]``): ``{"All"|"Things"|"Stuff": {pq, sq, rq, n, pq_plus}, "per_class": {trainId: {pq, sq,
    rq, pq_plus}}}``; classes with TP+FP+FN = 0 are NaN per class and left out of the averages.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        thing_ids: Sequence[int] = THING_TRAIN_IDS,
        classes: Sequence[int] | None = None,
        label_divisor: int = LABEL_DIVISOR,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.thing_ids = tuple(int(t) for t in thing_ids)
        self.classes = tuple(range(num_classes)) if classes is None else tuple(int(c) for c in classes)
        self.label_divisor = label_divisor
        self._is_thing = np.zeros(num_classes, bool)
        self._is_thing[list(self.thing_ids)] = True
        for name in ("iou", "plus_iou"):
            self.add_state(name, torch.zeros(num_classes, dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("tp", "fp", "fn", "plus_gt"):
            self.add_state(name, torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def _segments(self, ids: np.ndarray):
        """(segment ids, inverse index with void = n, class per segment)."""
        uniq, inverse = np.unique(ids, return_inverse=True)
        cls = np.floor_divide(uniq, self.label_divisor)
        valid = (uniq >= 0) & (cls < self.num_classes)
        seg_ids = uniq[valid]
        remap = np.full(len(uniq), len(seg_ids), np.intp)
        remap[valid] = np.arange(len(seg_ids))
        return seg_ids, remap[inverse.reshape(ids.shape)], cls[valid]

    def update(
        self,
        preds: torch.Tensor,
        target: torch.Tensor,
        target_crowd: Sequence[Sequence[int] | torch.Tensor] | None = None,
    ) -> None:
        if preds.shape != target.shape:
            raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} differ in shape")
        if preds.dim() == 2:
            preds, target = preds[None], target[None]
            if target_crowd is not None:
                target_crowd = [target_crowd]  # type: ignore[list-item]
        if preds.dim() != 3:
            raise ValueError(f"expected (H, W) or (B, H, W) panoptic maps, got {tuple(preds.shape)}")
        pred_np = preds.detach().cpu().numpy().astype(np.int64, copy=False)
        target_np = target.detach().cpu().numpy().astype(np.int64, copy=False)
        total = PanopticStats.zeros(self.num_classes)
        for b in range(pred_np.shape[0]):
            crowd_ids = None if target_crowd is None else torch.as_tensor(target_crowd[b]).cpu().numpy()
            total += self._image_stats(target_np[b], pred_np[b], crowd_ids)
        for name in FIELDS:
            state = getattr(self, name)
            state += torch.as_tensor(getattr(total, name), dtype=state.dtype, device=state.device)

    def _image_stats(self, target: np.ndarray, pred: np.ndarray, crowd_ids: np.ndarray | None) -> PanopticStats:
        """The statistics of one (H, W) pair of maps (crowd: the default convention unless ``crowd_ids``)."""
        gt_run, pred_run, lengths = pair_runs(target, pred)
        gt_ids, gt_index, gt_cls = self._segments(gt_run)
        pred_ids, pred_index, pred_cls = self._segments(pred_run)
        if crowd_ids is None:
            crowd = self._is_thing[gt_cls] & (gt_ids % self.label_divisor == 0)
        else:
            crowd = np.isin(gt_ids, crowd_ids.astype(np.int64).reshape(-1))
        n_gt, n_pred = len(gt_ids), len(pred_ids)
        key = gt_index * (n_pred + 1) + pred_index
        joint = np.bincount(key, weights=lengths, minlength=(n_gt + 2) * (n_pred + 1))
        joint = joint.astype(np.int64).reshape(n_gt + 2, n_pred + 1)
        gt_area = joint[:n_gt].sum(1)
        return panoptic_image_stats(joint, gt_cls, crowd, gt_area, pred_cls, self.num_classes)

    def stats(self) -> PanopticStats:
        """The summed states as :class:`PanopticStats` (NumPy copies)."""
        return PanopticStats(*(getattr(self, name).detach().cpu().numpy().copy() for name in FIELDS))

    def compute(self) -> dict:
        sel = list(self.classes)
        sub = self.stats().select(sel)
        return summarize_panoptic(
            sub, sel, [bool(self._is_thing[c]) for c in sel], absent=float("nan"), pq_plus=True
        )
