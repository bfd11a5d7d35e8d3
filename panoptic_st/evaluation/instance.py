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

- :class:`InstanceAP` is a ``torchmetrics.Metric`` on the project's tensors (records are list states);
- :func:`evaluate_instances` is a drop-in for the official script on its files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from cityscapesscripts.helpers.labels import id2label
from cityscapesscripts.helpers.labels import labels as cs_labels
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from panoptic_st.data.labels import NUM_CLASSES, THING_TRAIN_IDS
from panoptic_st.evaluation.export import (
    EvaluationInputError,
    find_ground_truth,
    match_prediction_files,
    read_label_png,
    read_mask_png,
    to_numpy,
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
    """The official ``averages`` dict: ``allAp``, ``allAp50%``, ``classes`` -> ``{name: {ap, ap50%}}``."""
    o50 = int(np.flatnonzero(np.isclose(overlaps, 0.5))[0])
    finite = np.isfinite(ap)
    return {
        "allAp": float(np.mean(ap[finite])) if finite.any() else float("nan"),
        "allAp50%": float(np.mean(ap[finite[:, o50], o50])) if finite[:, o50].any() else float("nan"),
        "classes": {
            name: {"ap": float(np.mean(ap[i])), "ap50%": float(ap[i, o50])}
            for i, name in enumerate(class_names)
        },
    }


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


# ----------------------------------------------------------------------------------------------------------------
# torchmetrics metric on the project's tensors


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


def scaled_min_region_size(height: int, width: int) -> int:
    """The official 100 px minimum GT region at 2048x1024, scaled to an image of another resolution."""
    return max(1, round(MIN_REGION_SIZE * height * width / (2048 * 1024)))


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


# ----------------------------------------------------------------------------------------------------------------
# drop-in for evalInstanceLevelSemanticLabeling on the official files

_NAME_TO_INDEX = {name: i for i, name in enumerate(INSTANCE_LABELS)}
_VOID_LABEL_IDS = [lab.id for lab in cs_labels if lab.ignoreInEval and lab.id >= 0]


def _read_prediction_list(txt: Path, pred_root: Path) -> dict[Path, tuple[int, float]]:
    """``{mask path: (label id, confidence)}`` of one result file (a repeated mask keeps its last entry, as the
    official reader's dict does)."""
    entries: dict[Path, tuple[int, float]] = {}
    try:
        lines = txt.read_text().splitlines()
    except OSError as exc:
        raise EvaluationInputError(f"{txt}: cannot read ({exc})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3:
            raise EvaluationInputError(f"{txt}:{n}: expected 'relative/mask.png labelId confidence'")
        rel, label, conf = parts
        if os.path.isabs(rel):
            raise EvaluationInputError(f"{txt}:{n}: mask path must be relative")
        path = Path(os.path.abspath(txt.parent / rel))
        if os.path.commonpath([str(path), str(pred_root)]) != str(pred_root):
            raise EvaluationInputError(
                f"{txt}:{n}: mask {rel} points outside the prediction folder {pred_root}"
            )
        try:
            label_id, confidence = int(float(label)), float(conf)
        except ValueError:
            raise EvaluationInputError(f"{txt}:{n}: label id and confidence must be numbers") from None
        if label_id not in id2label:
            raise EvaluationInputError(f"{txt}:{n}: unknown label id {label_id}")
        entries[path] = (label_id, confidence)
    return entries


def _file_records(gt_file: Path, txt: Path, pred_root: Path,
                  min_region_size: int | None = MIN_REGION_SIZE) -> InstanceRecords:
    ids = read_label_png(gt_file).astype(np.int64)
    if ids.min(initial=0) < 0:
        raise EvaluationInputError(f"{gt_file}: negative instance ids")
    counts = np.bincount(ids.reshape(-1))
    present = np.flatnonzero(counts)
    labels = np.where(present < 1000, present, present // 1000)
    names = [id2label[int(lab)].name if int(lab) in id2label else None for lab in labels]
    if None in names:
        bad = int(present[names.index(None)])
        raise EvaluationInputError(f"{gt_file}: instance id {bad} has an unknown label id")
    keep = [i for i, nm in enumerate(names) if nm in _NAME_TO_INDEX]
    seg_ids = present[keep]
    lut = np.full(len(counts), -1, np.int64)
    lut[seg_ids] = np.arange(len(seg_ids))
    gt_index = lut[ids]
    void_lut = np.zeros(len(counts), bool)
    void_ids = [v for v in _VOID_LABEL_IDS if v < len(counts)]
    void_lut[void_ids] = True
    void = void_lut[ids]
    gt_class = np.array([_NAME_TO_INDEX[names[i]] for i in keep], np.int64)

    masks, classes, scores = [], [], []
    for path, (label_id, conf) in _read_prediction_list(txt, pred_root).items():
        name = id2label[label_id].name
        if name not in _NAME_TO_INDEX:
            continue
        pixels, shape = read_mask_png(path)
        if shape != ids.shape:
            raise EvaluationInputError(
                f"{path}: mask size {shape[::-1]} differs from the GT {ids.shape[::-1]}"
            )
        masks.append(pixels)
        classes.append(_NAME_TO_INDEX[name])
        scores.append(conf)
    return image_records(
        gt_index,
        gt_class,
        seg_ids < 1000,
        counts[seg_ids],
        void,
        masks,
        classes,
        scores,
        len(INSTANCE_LABELS),
        OVERLAPS,
        min_region_size or scaled_min_region_size(*ids.shape),
    )


def evaluate_instances(
    gt_dir: str | os.PathLike,
    pred_dir: str | os.PathLike,
    results_file: str | os.PathLike | None = None,
    *,
    workers: int | None = None,
    progress: bool = False,
    min_region_size: int | None = MIN_REGION_SIZE,
) -> dict:
    """Drop-in for ``evalInstanceLevelSemanticLabeling`` (default settings) on the official files.

    ``min_region_size``: GT instances below it are ignored (official: 100 px; None scales 100 px at 2048x1024 to
    each image's size, as :class:`InstanceAP` does for downscaled data such as the toy benchmark).

    GT: every ``*_gtFine_instanceIds.png`` under ``gt_dir``; predictions: for each, exactly one
    ``{city}_{seq}_{frame}*.txt`` under ``pred_dir`` listing ``relative/mask.png labelId confidence``.
    Returns the official result dict (``averages`` -> ``allAp``, ``allAp50%``, ``classes``; ``overlaps``,
    ``minRegionSizes``, ``distanceThresholds``, ``minStereoDensities``, ``instLabels``, ``resultApMatrix``) and
    writes it to ``results_file`` if given. No GT cache or ``matches.json`` is written.
    """
    gt_files = find_ground_truth(gt_dir, "_gtFine_instanceIds.png")
    txts = match_prediction_files(gt_files, pred_dir, "txt")
    pred_root = Path(os.path.abspath(pred_dir))
    n_workers = max(1, min(workers or min(2, os.cpu_count() or 1), len(gt_files)))
    from tqdm import tqdm

    with ThreadPoolExecutor(n_workers) as pool:
        records = list(
            tqdm(
                pool.map(lambda a: _file_records(a[0], a[1], pred_root, min_region_size), zip(gt_files, txts)),
                total=len(gt_files),
                disable=not progress,
                desc="instance",
                unit="img",
                leave=False,
            )
        )
    n_cls, n_thr = len(INSTANCE_LABELS), len(OVERLAPS)
    ap = ap_matrix(InstanceRecords.concatenate(records, n_cls, n_thr), n_cls, n_thr)
    results = {
        "averages": summarize_instances(ap, INSTANCE_LABELS),
        "overlaps": OVERLAPS.tolist(),
        "minRegionSizes": [min_region_size or "scaled", 1000, 1000],
        "distanceThresholds": [float("inf"), 100.0, 50.0],
        "minStereoDensities": [-float("inf"), 0.5, 0.5],
        "instLabels": list(INSTANCE_LABELS),
        "resultApMatrix": ap[None].tolist(),
    }
    if results_file is not None:
        with open(results_file, "w") as f:
            json.dump(results, f, sort_keys=True, indent=4)
    return results
