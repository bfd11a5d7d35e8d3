"""Cityscapes instance-segmentation AP with the exact rules of ``evalInstanceLevelSemanticLabeling``.

Default settings of the official script (no distance information): IoU thresholds ``np.arange(0.5, 1.0, 0.05)``,
minimum GT region size 100 px. Per class and threshold ``t``:

- GT instances are the thing segments with an instance id (``labelId * 1000 + k``) of at least 100 px; group
  (crowd) regions (``instanceIds == labelId``) and smaller instances are not counted;
- a GT instance matched by predictions with ``IoU > t`` (``IoU = |p & g| / (|g| + |p| - |p & g|)``) is one true
  positive scored with the highest confidence; its other matches are false positives; an unmatched GT instance is
  a (hard) false negative;
- a prediction that matches no GT segment of its class (groups and small instances included) is a false positive
  unless the share of its pixels on void, on groups of its class and on small instances of its class is above
  ``t`` (a group region smaller than 100 px counts twice, as in the official code);
- AP is the official step-wise integral of the precision-recall curve built from those scored examples; a class
  without GT is NaN, a class with GT but no prediction 0. Where the official script crashes (a class with GT and
  predictions but no scored example at all, e.g. every prediction ignored) the AP is 0.

Each image is reduced to *match records* (per class and threshold: the scored examples, the hard false negatives,
the GT and prediction counts), so images can be evaluated anywhere and the records simply concatenated:

- :class:`~panoptic_st.evaluation.instance.InstanceAP` is a ``torchmetrics.Metric`` on the project's tensors
  (records are list states);
- :func:`~panoptic_st.evaluation.instance_files.evaluate_instances` is a drop-in for the official script on its
  files.

This module holds the rules: the records of one image, the AP of concatenated records, the official averages
and a paired bootstrap over images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cityscapesscripts.helpers.labels import labels as cs_labels

__all__ = [
    "INSTANCE_LABELS",
    "MIN_REGION_SIZE",
    "OVERLAPS",
    "InstanceRecords",
    "ap_matrix",
    "average_precision",
    "image_records",
    "mean_ap",
    "paired_bootstrap",
    "records_at_threshold",
    "scaled_min_region_size",
    "summarize_instances",
]

OVERLAPS: np.ndarray = np.arange(0.5, 1.0, 0.05)
"""IoU thresholds, computed exactly as the official script does (so 0.6 is 0.6000000000000001)."""
MIN_REGION_SIZE = 100
INSTANCE_LABELS: tuple[str, ...] = tuple(
    lab.name for lab in cs_labels if lab.hasInstances and not lab.ignoreInEval
)
"""Evaluated classes in the official order (= trainIds 11..18)."""


# ----------------------------------------------------------------------------------------------------------------
# per-image match records


@dataclass
class InstanceRecords:
    """Match records of one or more images.

    ``cls``, ``thr``, ``true``, ``score``: one row per scored example (class index, threshold index, whether it is a
    true positive, confidence); ``hard_fn`` (C, T): unmatched GT instances; ``n_gt`` (C,): counted GT instances;
    ``n_pred`` (C,): non-empty predictions.
    """

    cls: np.ndarray
    thr: np.ndarray
    true: np.ndarray
    score: np.ndarray
    hard_fn: np.ndarray
    n_gt: np.ndarray
    n_pred: np.ndarray

    @classmethod
    def concatenate(
        cls, records: Sequence[InstanceRecords], num_classes: int, num_thr: int
    ) -> InstanceRecords:
        if not records:
            z = np.zeros(0)
            return cls(
                z.astype(np.int64), z.astype(np.int64), z.astype(bool), z,
                np.zeros((num_classes, num_thr), np.int64), np.zeros(num_classes, np.int64),
                np.zeros(num_classes, np.int64),
            )  # fmt: skip
        return cls(
            np.concatenate([r.cls for r in records]),
            np.concatenate([r.thr for r in records]),
            np.concatenate([r.true for r in records]),
            np.concatenate([r.score for r in records]),
            sum(r.hard_fn for r in records),
            sum(r.n_gt for r in records),
            sum(r.n_pred for r in records),
        )


def image_records(
    gt_index: np.ndarray,
    gt_class: np.ndarray,
    gt_group: np.ndarray,
    gt_size: np.ndarray,
    void: np.ndarray,
    pred_masks: Sequence[np.ndarray],
    pred_class: Sequence[int],
    pred_score: Sequence[float],
    num_classes: int,
    overlaps: np.ndarray = OVERLAPS,
    min_region_size: int = MIN_REGION_SIZE,
) -> InstanceRecords:
    """Match records of one image.

    Args:
        gt_index: HxW index of the GT segment of an evaluated class under each pixel, -1 elsewhere.
        gt_class, gt_group, gt_size: per GT segment: class index, whether it is a group (crowd) region, pixel count.
        void: HxW bool, the GT void pixels.
        pred_masks: bool HxW masks (or flat pixel-index arrays) of the predictions of evaluated classes.
        pred_class, pred_score: class index and confidence of each prediction.
    """
    n_gt, n_thr = len(gt_class), len(overlaps)
    flat_gt = gt_index.reshape(-1)
    flat_void = void.reshape(-1)
    sizes, void_hits, classes, scores = [], [], [], []
    pair_p, pair_g, pair_i = [], [], []
    for mask, c, s in zip(pred_masks, pred_class, pred_score):
        nz = mask if mask.dtype != bool else np.flatnonzero(mask.reshape(-1))
        if len(nz) == 0:
            continue  # empty masks are skipped
        j = len(sizes)
        sizes.append(len(nz))
        void_hits.append(int(np.count_nonzero(flat_void[nz])))
        classes.append(int(c))
        scores.append(float(s))
        hits = np.bincount(flat_gt[nz] + 1, minlength=n_gt + 1)[1:]
        g = np.flatnonzero((hits > 0) & (gt_class == c))
        pair_p.append(np.full(len(g), j))
        pair_g.append(g)
        pair_i.append(hits[g])
    n_pred = len(sizes)
    size = np.asarray(sizes, np.int64)
    voidh = np.asarray(void_hits, np.int64)
    pcls = np.asarray(classes, np.int64)
    pscore = np.asarray(scores, np.float64)
    pp = np.concatenate(pair_p).astype(np.int64) if pair_p else np.zeros(0, np.int64)
    pg = np.concatenate(pair_g).astype(np.int64) if pair_g else np.zeros(0, np.int64)
    pi = np.concatenate(pair_i).astype(np.int64) if pair_i else np.zeros(0, np.int64)

    iou = pi / (gt_size[pg] + size[pp] - pi)
    small = gt_size < min_region_size
    counted = ~gt_group & ~small
    # pixels of each prediction on void, on groups and on small GT of its class (threshold independent)
    ignore = voidh + np.bincount(
        pp, weights=pi * (gt_group[pg].astype(np.int64) + small[pg]), minlength=n_pred
    )
    ignore_share = ignore / np.maximum(size, 1)

    rows_c, rows_t, rows_true, rows_s = [], [], [], []
    hard_fn = np.zeros((num_classes, n_thr), np.int64)
    for ti, t in enumerate(overlaps):
        ok = iou > t
        # GT side: each counted GT with matches -> one TP (highest score), the other matches -> FPs
        sel = ok & counted[pg]
        g_sel, p_sel = pg[sel], pp[sel]
        matched = np.zeros(n_gt, bool)
        matched[g_sel] = True
        hard_fn[:, ti] = np.bincount(gt_class[counted & ~matched], minlength=num_classes)[:num_classes]
        if len(g_sel):
            order = np.lexsort((-pscore[p_sel], g_sel))
            g_sorted, p_sorted = g_sel[order], p_sel[order]
            first = np.ones(len(g_sorted), bool)
            first[1:] = g_sorted[1:] != g_sorted[:-1]
            rows_c.append(gt_class[g_sorted])
            rows_t.append(np.full(len(g_sorted), ti))
            rows_true.append(first)
            rows_s.append(pscore[p_sorted])
        # prediction side: matching nothing (groups, small GT included) and not mostly ignored -> FP
        found = np.zeros(n_pred, bool)
        found[pp[ok]] = True
        fp = ~found & (ignore_share <= t)
        rows_c.append(pcls[fp])
        rows_t.append(np.full(int(fp.sum()), ti))
        rows_true.append(np.zeros(int(fp.sum()), bool))
        rows_s.append(pscore[fp])
    return InstanceRecords(
        cls=np.concatenate(rows_c).astype(np.int64),
        thr=np.concatenate(rows_t).astype(np.int64),
        true=np.concatenate(rows_true).astype(bool),
        score=np.concatenate(rows_s).astype(np.float64),
        hard_fn=hard_fn,
        n_gt=np.bincount(gt_class[counted], minlength=num_classes)[:num_classes].astype(np.int64),
        n_pred=np.bincount(pcls, minlength=num_classes)[:num_classes].astype(np.int64),
    )


def average_precision(true: np.ndarray, score: np.ndarray, hard_fn: int) -> float:
    """The official precision-recall integral of scored examples plus ``hard_fn`` unmatched GT instances.

    One curve point per distinct score ``s`` (examples with score >= s are detections), plus the artificial point
    (recall 0, precision 1); step widths are half the recall differences to the two neighbours.
    """
    if len(score) == 0:
        return 0.0  # the official script crashes here; no scored example means no true positive
    order = np.argsort(score, kind="stable")
    s, y = score[order], true[order].astype(np.float64)
    cum = np.cumsum(y)
    n, n_true = len(s), cum[-1]
    _, first = np.unique(s, return_index=True)
    below = np.where(
        first > 0, cum[np.maximum(first - 1, 0)], 0.0
    )  # true examples scored below the threshold
    tp = n_true - below
    fp = n - first - tp
    fn = below + hard_fn
    precision = np.append(tp / (tp + fp), 1.0)
    recall = np.append(tp / (tp + fn), 0.0)
    padded = np.concatenate([recall[:1], recall, [0.0]])
    widths = 0.5 * (padded[:-2] - padded[2:])
    return float(np.dot(precision, widths))


def ap_matrix(records: InstanceRecords, num_classes: int, num_thr: int) -> np.ndarray:
    """(C, T) AP: NaN for classes without GT, 0 for classes with GT but no prediction."""
    ap = np.full((num_classes, num_thr), np.nan)
    order = np.lexsort((records.thr, records.cls))
    cls, thr = records.cls[order], records.thr[order]
    true, score = records.true[order], records.score[order]
    bounds = np.searchsorted(cls * num_thr + thr, np.arange(num_classes * num_thr + 1))
    for c in range(num_classes):
        if records.n_gt[c] == 0:
            continue
        for t in range(num_thr):
            if records.n_pred[c] == 0:
                ap[c, t] = 0.0
                continue
            lo, hi = bounds[c * num_thr + t], bounds[c * num_thr + t + 1]
            ap[c, t] = average_precision(true[lo:hi], score[lo:hi], int(records.hard_fn[c, t]))
    return ap


def summarize_instances(ap: np.ndarray, class_names: Sequence, overlaps: np.ndarray = OVERLAPS) -> dict:
    """The official ``averages`` dict: ``allAp``, ``allAp50%``, ``classes`` -> ``{name: {ap, ap50%}}``.

    The means are NumPy's ``nanmean`` over the whole matrix and column, as in the official script (summing only
    the finite entries would group the additions differently)."""
    o50 = int(np.flatnonzero(np.isclose(overlaps, 0.5))[0])
    return {
        "allAp": _nanmean(ap),
        "allAp50%": _nanmean(ap[:, o50]),
        "classes": {
            name: {"ap": float(np.mean(ap[i])), "ap50%": float(ap[i, o50])}
            for i, name in enumerate(class_names)
        },
    }


def _nanmean(values: np.ndarray) -> float:
    """``np.nanmean``, NaN without a warning when every value is NaN."""
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def records_at_threshold(records: InstanceRecords, thr: int) -> InstanceRecords:
    """The records of one IoU threshold index only (a single-threshold ``InstanceRecords``)."""
    rows = records.thr == thr
    return InstanceRecords(records.cls[rows], np.zeros(int(rows.sum()), np.int64), records.true[rows],
                           records.score[rows], records.hard_fn[:, thr : thr + 1], records.n_gt, records.n_pred)


def mean_ap(records: Sequence[InstanceRecords], num_classes: int) -> float:
    """Class-mean AP of single-threshold image records (classes without GT left out, as the official mean)."""
    ap = ap_matrix(InstanceRecords.concatenate(records, num_classes, 1), num_classes, 1)
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")


def paired_bootstrap(
    records_a: Sequence[InstanceRecords],
    records_b: Sequence[InstanceRecords],
    num_classes: int,
    overlap: float = 0.5,
    samples: int = 1000,
    seed: int = 0,
) -> dict:
    """AP at IoU ``overlap`` of two models on the same images and a paired bootstrap over images of b - a.

    Images are resampled with replacement (the same draw for both models) ``samples`` times. Returns ``ap_a``,
    ``ap_b``, ``difference`` (on all images), ``low`` and ``high`` (the 2.5 and 97.5 percentiles of the resampled
    differences) and ``p_better`` (the share of resamples in which b scores higher).
    """
    if len(records_a) != len(records_b) or not records_a:
        raise ValueError(f"paired_bootstrap needs the same non-zero number of images, got {len(records_a)} and "
                         f"{len(records_b)}")
    thr = int(np.flatnonzero(np.isclose(OVERLAPS, overlap))[0])
    a = [records_at_threshold(r, thr) for r in records_a]
    b = [records_at_threshold(r, thr) for r in records_b]
    rng = np.random.default_rng(seed)
    n = len(a)
    diffs = np.empty(samples)
    for k in range(samples):
        draw = rng.integers(0, n, n)
        diffs[k] = mean_ap([b[i] for i in draw], num_classes) - mean_ap([a[i] for i in draw], num_classes)
    ap_a, ap_b = mean_ap(a, num_classes), mean_ap(b, num_classes)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"ap_a": ap_a, "ap_b": ap_b, "difference": ap_b - ap_a, "low": float(low), "high": float(high),
            "p_better": float(np.mean(diffs > 0))}


def scaled_min_region_size(height: int, width: int) -> int:
    """The official 100 px minimum GT region at 2048x1024, scaled to an image of another resolution."""
    return max(1, round(MIN_REGION_SIZE * height * width / (2048 * 1024)))
