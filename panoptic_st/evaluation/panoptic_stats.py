"""The panoptic matching rules on one image's joint histogram of segments, and the official result dict.

Rules (``cityscapesscripts.evaluation.evalPanopticSemanticLabeling``, REFERENCE section 5), per image:

- a GT and a predicted segment of the same category match when IoU > 0.5, where
  ``union = |pred| + |gt| - |pred & gt| - |pred & GT void|``; crowd GT segments are never matched;
- unmatched non-crowd GT segments are false negatives;
- an unmatched predicted segment is a false positive unless more than half of it lies on GT void plus the crowd
  region of its category (the official code keeps one crowd region per category: the last one listed);
- per category ``PQ = sum IoU / (TP + FP/2 + FN/2)``, ``SQ = sum IoU / TP``, ``RQ = TP / (TP + FP/2 + FN/2)``;
  categories with ``TP + FP + FN = 0`` are left out of the averages.

PQ+ (Porzi et al. 2019, torchmetrics ``ModifiedPanopticQuality``): things as PQ; for a stuff category, the sum of
the IoUs (same union) of all same-category GT/prediction pairs with IoU > 0, divided by the number of GT segments.

The IoU sums are floating-point sums, so their last digit depends on the order of the additions: an image's
matches are added one by one in the official order (ascending GT segment id), see :meth:`PanopticStats.add`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PanopticStats", "pair_runs", "panoptic_image_stats", "summarize_panoptic"]

COUNT_FIELDS = ("tp", "fp", "fn", "plus_iou", "plus_gt")
"""The per-category sums that are added as whole arrays (the IoU sums follow the official order instead)."""
FIELDS = ("iou",) + COUNT_FIELDS


@dataclass
class PanopticStats:
    """Per-category sums: IoU of matches, TP, FP, FN, and for PQ+ the IoU>0 pair sum and the GT segment count.

    Stats of a single image also keep their matches (``match_cat``, ``match_iou``, in the official order), so that
    a sum over images can add them one by one as the official script does; sums over images keep none (None).
    """

    iou: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    plus_iou: np.ndarray
    plus_gt: np.ndarray
    match_cat: np.ndarray | None = None
    match_iou: np.ndarray | None = None

    @classmethod
    def zeros(cls, n: int) -> PanopticStats:
        """Empty sums over ``n`` categories."""
        f, i = np.zeros(n, np.float64), np.zeros(n, np.int64)
        return cls(f.copy(), i.copy(), i.copy(), i.copy(), f.copy(), i.copy())

    def select(self, categories: Sequence[int]) -> PanopticStats:
        """The sums of the given category indices only (without matches)."""
        return PanopticStats(*(getattr(self, name)[list(categories)] for name in FIELDS))

    def add(self, other: PanopticStats) -> None:
        """Add ``other``: counts as arrays; IoUs match by match if ``other`` is one image, else as an array."""
        for name in COUNT_FIELDS:
            getattr(self, name).__iadd__(getattr(other, name))
        if other.match_cat is None:
            self.iou += other.iou
        else:
            _add_in_order(self.iou, other.match_cat, other.match_iou)

    def __iadd__(self, other: PanopticStats):
        self.add(other)
        return self


def _add_in_order(sums: np.ndarray, categories: np.ndarray, values: np.ndarray) -> None:
    """``sums[c] += v`` for each pair in turn (the official running sum: the order decides the last digit)."""
    for c, value in zip(categories.tolist(), values.tolist()):
        sums[c] += value


def pair_runs(
    gt: np.ndarray, pred: np.ndarray, changed: np.ndarray | None = None, scratch: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal runs of equal (gt, pred) pairs of two HxW maps: (gt value, pred value, length) per run.

    Label maps are piecewise constant, so there are far fewer runs than pixels and everything after this one
    compare-and-scan pass works on the runs. ``changed`` (HxW bool) and ``scratch`` (Hx(W-1) bool) are optional
    buffers to reuse.
    """
    height, width = gt.shape
    changed = np.empty((height, width), bool) if changed is None else changed
    scratch = np.empty((height, width - 1), bool) if scratch is None else scratch
    changed[:, 0] = True
    np.not_equal(gt[:, 1:], gt[:, :-1], out=changed[:, 1:])
    np.not_equal(pred[:, 1:], pred[:, :-1], out=scratch)
    np.logical_or(changed[:, 1:], scratch, out=changed[:, 1:])
    starts = np.flatnonzero(changed)
    return gt.reshape(-1)[starts], pred.reshape(-1)[starts], np.diff(starts, append=gt.size)


def panoptic_image_stats(
    joint: np.ndarray,
    gt_cat: np.ndarray,
    gt_crowd: np.ndarray,
    gt_area: np.ndarray,
    pred_cat: np.ndarray,
    num_categories: int,
    gt_order: np.ndarray | None = None,
) -> PanopticStats:
    """PQ statistics of one image from its joint histogram of segments.

    Args:
        joint: ``(n_gt + 2, n_pred + 1)`` pixel counts; GT rows ``0..n_gt-1`` are segments, row ``n_gt`` is void,
            row ``n_gt + 1`` holds pixels of unlisted GT ids (neither segment nor void); column ``n_pred`` is void.
        gt_cat, pred_cat: category index per segment in ``[0, num_categories]`` (``num_categories`` = unknown:
            counted nowhere).
        gt_crowd: bool per GT segment.
        gt_area: area per GT segment (the official script takes it from the GT JSON, whose areas
            :func:`~panoptic_st.evaluation.panoptic_files.evaluate_panoptic` checks against the PNG).
        gt_order: a sort key per GT segment giving the order in which matches are summed (official: the GT id);
            default: the row order.
    """
    n_gt, n_pred = len(gt_cat), len(pred_cat)
    nc = num_categories + 1
    inter = joint[:n_gt, :n_pred]
    void_p = joint[n_gt, :n_pred]
    pred_area = joint[:, :n_pred].sum(0)

    g, p = np.nonzero((inter > 0) & (gt_cat[:, None] == pred_cat[None, :]) & ~gt_crowd[:, None])
    it = inter[g, p]
    iou = it / (pred_area[p] + gt_area[g] - it - void_p[p])
    m = iou > 0.5
    g_m, p_m, iou_m = g[m], p[m], iou[m]
    if gt_order is not None:
        order = np.argsort(gt_order[g_m], kind="stable")
        g_m, p_m, iou_m = g_m[order], p_m[order], iou_m[order]
    gt_matched = np.zeros(n_gt, bool)
    gt_matched[g_m] = True
    pred_matched = np.zeros(n_pred, bool)
    pred_matched[p_m] = True
    ignored = _ignored_pixels(joint, gt_cat, gt_crowd, pred_cat, pred_matched)
    fp = ~pred_matched & ~(ignored / np.maximum(pred_area, 1) > 0.5)
    known = gt_cat[g_m] < num_categories
    stats = PanopticStats(
        iou=np.zeros(num_categories, np.float64),
        tp=np.bincount(gt_cat[g_m], minlength=nc)[:num_categories],
        fp=np.bincount(pred_cat[fp], minlength=nc)[:num_categories],
        fn=np.bincount(gt_cat[~gt_matched & ~gt_crowd], minlength=nc)[:num_categories],
        plus_iou=np.bincount(gt_cat[g], weights=iou, minlength=nc)[:num_categories].astype(np.float64),
        plus_gt=np.bincount(gt_cat[~gt_crowd], minlength=nc)[:num_categories],
        match_cat=gt_cat[g_m][known],
        match_iou=iou_m[known],
    )
    _add_in_order(stats.iou, stats.match_cat, stats.match_iou)
    return stats


def _ignored_pixels(joint, gt_cat, gt_crowd, pred_cat, pred_matched) -> np.ndarray:
    """Pixels of each predicted segment on GT void, plus (unmatched ones) on the crowd region of its category."""
    n_gt, n_pred = len(gt_cat), len(pred_cat)
    ignored = joint[n_gt, :n_pred].astype(np.float64)
    crowd_of_cat = {}
    for i in np.flatnonzero(gt_crowd):  # the official keeps the last crowd segment of each category
        crowd_of_cat[int(gt_cat[i])] = int(i)
    if crowd_of_cat:
        for j in np.flatnonzero(~pred_matched):
            c = crowd_of_cat.get(int(pred_cat[j]))
            if c is not None:
                ignored[j] += joint[c, j]
    return ignored


def summarize_panoptic(
    stats: PanopticStats,
    category_ids: Sequence[int],
    is_thing: Sequence[bool],
    *,
    absent: float = 0.0,
    pq_plus: bool = False,
) -> dict:
    """The official result dict: ``All``/``Things``/``Stuff`` -> ``pq, sq, rq, n`` and ``per_class`` ->
    ``{category_id: {pq, sq, rq}}``. Categories with TP+FP+FN = 0 get ``absent`` (official: 0.0) per class and are
    left out of the averages; an empty average is NaN (the official script divides by zero there).
    With ``pq_plus`` every entry also gets ``pq_plus``."""
    per_class: dict[int, dict] = {}
    rows = []  # (is_thing, counted, entry)
    for k, (cid, thing) in enumerate(zip(category_ids, is_thing)):
        counted, entry = _class_entry(stats, k, absent)
        if pq_plus:
            entry["pq_plus"] = _class_pq_plus(stats, k, bool(thing), counted, entry)
        per_class[int(cid)] = entry
        rows.append((bool(thing), counted, entry))

    results: dict = {}
    for name, want in (("All", None), ("Things", True), ("Stuff", False)):
        group = [(c, e) for t, c, e in rows if want is None or t == want]
        used = [e for c, e in group if c]
        res = {key: _mean([e[key] for e in used]) for key in ("pq", "sq", "rq")}
        res["n"] = len(used)
        if pq_plus:
            res["pq_plus"] = _mean([e["pq_plus"] for _, e in group if not np.isnan(e["pq_plus"])])
        results[name] = res
        if name == "All":
            results["per_class"] = per_class
    return results


def _class_entry(stats: PanopticStats, k: int, absent: float) -> tuple[bool, dict]:
    """Whether category ``k`` counts (TP+FP+FN > 0) and its ``pq, sq, rq``, with the official formulas."""
    tp, fp, fn, iou = int(stats.tp[k]), int(stats.fp[k]), int(stats.fn[k]), float(stats.iou[k])
    if tp + fp + fn == 0:
        return False, {"pq": absent, "sq": absent, "rq": absent}
    denom = tp + 0.5 * fp + 0.5 * fn
    return True, {"pq": iou / denom, "sq": iou / tp if tp else 0.0, "rq": tp / denom}


def _class_pq_plus(stats: PanopticStats, k: int, thing: bool, counted: bool, entry: dict) -> float:
    """PQ+ of category ``k``: its PQ for things, the IoU>0 pair sum over the GT segment count for stuff."""
    if thing:
        return entry["pq"] if counted else float("nan")
    n_gt = int(stats.plus_gt[k])
    return float(stats.plus_iou[k]) / n_gt if n_gt else float("nan")


def _mean(values: list[float]) -> float:
    """The official average (a running sum from 0, divided by the count); NaN when empty."""
    return sum(values) / len(values) if values else float("nan")
