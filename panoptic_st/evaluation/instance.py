"""Cityscapes instance-segmentation AP as a ``torchmetrics.Metric`` on the project's tensors, equal to the official
``evalInstanceLevelSemanticLabeling``; the rules are in :mod:`~panoptic_st.evaluation.instance_records`, the
drop-in on the official files is :func:`~panoptic_st.evaluation.instance_files.evaluate_instances` (both also
importable from here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from panoptic_st.data.labels import NUM_CLASSES, THING_TRAIN_IDS
from panoptic_st.evaluation.export import to_numpy
from panoptic_st.evaluation.instance_files import evaluate_instances
from panoptic_st.evaluation.instance_records import (
    INSTANCE_LABELS,
    MIN_REGION_SIZE,
    OVERLAPS,
    InstanceRecords,
    ap_matrix,
    average_precision,
    image_records,
    paired_bootstrap,
    scaled_min_region_size,
    summarize_instances,
)

__all__ = [
    "INSTANCE_LABELS",
    "MIN_REGION_SIZE",
    "OVERLAPS",
    "InstanceAP",
    "InstanceRecords",
    "average_precision",
    "evaluate_instances",
    "image_records",
    "paired_bootstrap",
    "scaled_min_region_size",
    "summarize_instances",
]


def _prediction_pixels(pred: Mapping, n: int) -> list[np.ndarray]:
    """Flat pixel indices of each of the ``n`` predicted instances (``masks`` or an ``instances`` id map)."""
    if "masks" in pred:
        masks = to_numpy(pred["masks"]).astype(bool)
        if len(masks) != n:
            raise ValueError(f"{len(masks)} masks but {n} labels")
        return [np.flatnonzero(m.reshape(-1)) for m in masks]
    flat = to_numpy(pred["instances"]).astype(np.int64).reshape(-1)
    order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[order], np.arange(1, n + 2))
    return [order[bounds[k] : bounds[k + 1]] for k in range(n)]


class InstanceAP(Metric):
    """Cityscapes instance AP / AP50 over a split, equal to the official script, on the project's tensors.

    ``update(preds, targets)`` takes one mapping per image.

    - prediction: ``labels`` (N,) trainIds, ``scores`` (N,) and either ``masks`` (N, H, W) bool (may overlap) or
      ``instances`` (H, W) ids where instance ``k`` (1..N) owns ``labels[k-1]`` and ``scores[k-1]``;
    - target: ``semantic`` (H, W) trainIds (255 ignore) and ``instance`` (H, W) ids (0 = none). Thing pixels with
      instance 0 are group (crowd) regions; void = ignore pixels without an instance id (ignored-class instances
      such as caravans are not void, as in the official script).

    ``min_region_size=None`` scales the official 100 px to each image's resolution (``scaled_min_region_size``),
    which is exactly 100 at 2048x1024 and keeps small objects of downscaled data (e.g. the toy benchmark) in the
    evaluation instead of ignoring all of them.
    Per-image match records are list states (concatenated across processes), counts are summed.
    ``compute()`` returns ``{"ap", "ap50", "per_class": {trainId: {"ap", "ap50"}}, "ap_matrix": (C, T) tensor}``.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(
        self,
        thing_ids: Sequence[int] = THING_TRAIN_IDS,
        num_classes: int = NUM_CLASSES,
        min_region_size: int | None = MIN_REGION_SIZE,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.thing_ids = tuple(int(t) for t in thing_ids)
        self.num_classes = num_classes
        self.min_region_size = min_region_size
        self._class_index = np.full(256, -1, np.int64)
        self._class_index[list(self.thing_ids)] = np.arange(len(self.thing_ids))
        c, t = len(self.thing_ids), len(OVERLAPS)
        for name in ("rec_cls", "rec_thr", "rec_true", "rec_score"):
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self.add_state("hard_fn", torch.zeros(c, t, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_gt", torch.zeros(c, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_pred", torch.zeros(c, dtype=torch.long), dist_reduce_fx="sum")

    def _target(self, target: Mapping):
        sem = to_numpy(target["semantic"]).astype(np.int64)
        inst = to_numpy(target["instance"]).astype(np.int64)
        valid = (sem >= 0) & (sem < self.num_classes)
        cls = np.where(valid, self._class_index[np.clip(sem, 0, 255)], -1)
        thing = cls >= 0
        void = ~valid & (inst == 0)
        key = np.where(thing, cls * (int(inst.max(initial=0)) + 1) + inst, -1)
        uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(key.shape)
        first = 1 if len(uniq) and uniq[0] < 0 else 0
        gt_index = inverse - first  # -1 where not a thing pixel
        seg_keys = uniq[first:]
        div = int(inst.max(initial=0)) + 1
        return gt_index, seg_keys // div, seg_keys % div == 0, counts[first:], void

    def records(self, pred: Mapping, target: Mapping) -> InstanceRecords:
        """Match records of one image, as ``update`` accumulates them (e.g. for ``paired_bootstrap``)."""
        gt_index, gt_class, gt_group, gt_size, void = self._target(target)
        labels = to_numpy(pred["labels"]).astype(np.int64).reshape(-1)
        scores = to_numpy(pred["scores"]).astype(np.float64).reshape(-1)
        pixels = _prediction_pixels(pred, len(labels))
        cls = self._class_index[np.clip(labels, 0, 255)]
        keep = [k for k in range(len(labels)) if 0 <= labels[k] < 256 and cls[k] >= 0]
        return image_records(
            gt_index, gt_class, gt_group, gt_size, void,
            [pixels[k] for k in keep], cls[keep], scores[keep],
            len(self.thing_ids), OVERLAPS, self.min_region_size or scaled_min_region_size(*gt_index.shape),
        )  # fmt: skip

    def update(self, preds: Sequence[Mapping], targets: Sequence[Mapping]) -> None:
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions but {len(targets)} targets")
        for pred, target in zip(preds, targets):
            rec = self.records(pred, target)
            self.rec_cls.append(torch.as_tensor(rec.cls, device=self.device))
            self.rec_thr.append(torch.as_tensor(rec.thr, device=self.device))
            self.rec_true.append(torch.as_tensor(rec.true, device=self.device))
            self.rec_score.append(torch.as_tensor(rec.score, dtype=torch.float64, device=self.device))
            self.hard_fn += torch.as_tensor(rec.hard_fn, device=self.device)
            self.n_gt += torch.as_tensor(rec.n_gt, device=self.device)
            self.n_pred += torch.as_tensor(rec.n_pred, device=self.device)

    def _cat(self, state) -> np.ndarray:
        if isinstance(state, list):
            if not state:
                return np.zeros(0)
            state = dim_zero_cat(state)
        return state.detach().cpu().numpy()

    def compute(self) -> dict:
        c, t = len(self.thing_ids), len(OVERLAPS)
        rec = InstanceRecords(
            self._cat(self.rec_cls).astype(np.int64),
            self._cat(self.rec_thr).astype(np.int64),
            self._cat(self.rec_true).astype(bool),
            self._cat(self.rec_score).astype(np.float64),
            self.hard_fn.cpu().numpy(),
            self.n_gt.cpu().numpy(),
            self.n_pred.cpu().numpy(),
        )
        ap = ap_matrix(rec, c, t)
        summary = summarize_instances(ap, list(self.thing_ids))
        return {
            "ap": summary["allAp"],
            "ap50": summary["allAp50%"],
            "per_class": {k: {"ap": v["ap"], "ap50": v["ap50%"]} for k, v in summary["classes"].items()},
            "ap_matrix": torch.as_tensor(ap),
        }
