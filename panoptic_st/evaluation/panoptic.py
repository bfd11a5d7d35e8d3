"""Panoptic quality (PQ, SQ, RQ) and PQ+ with the exact rules of the official Cityscapes / COCO panopticapi script.

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

Per image, one compare-and-scan pass turns the two id maps into horizontal runs of equal (GT id, predicted id)
pairs (label maps have far fewer runs than pixels); one weighted ``np.bincount`` of the runs over
``gt_index * (n_pred + 1) + pred_index`` is the joint histogram of segment pairs, and the matching works on that
small segment-by-segment matrix. The file reader packs both 16-bit ids of a pixel into one ``uint32`` straight from
the decoded PNG bytes (see ``export.bgr_id16_view``), so no per-pixel id arithmetic or lookup table is needed.

Two entry points share that core:

- :class:`PanopticQuality`, a ``torchmetrics.Metric`` on the project's maps (``trainId * 1000 + instance``);
- :func:`evaluate_panoptic`, a drop-in for ``evaluatePanoptic`` on the official files (COCO panoptic JSON + PNGs).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torchmetrics import Metric

from panoptic_st.data.labels import LABEL_DIVISOR, NUM_CLASSES, THING_TRAIN_IDS
from panoptic_st.evaluation.export import (
    EvaluationInputError,
    bgr_id16_view,
    read_json,
    read_panoptic_bgr,
    swap_id16,
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


# ----------------------------------------------------------------------------------------------------------------
# core


@dataclass
class PanopticStats:
    """Per-category sums: IoU of matches, TP, FP, FN, and for PQ+ the IoU>0 pair sum and the GT segment count."""

    iou: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    plus_iou: np.ndarray
    plus_gt: np.ndarray

    @classmethod
    def zeros(cls, n: int) -> PanopticStats:
        f, i = np.zeros(n, np.float64), np.zeros(n, np.int64)
        return cls(f.copy(), i.copy(), i.copy(), i.copy(), f.copy(), i.copy())

    def __iadd__(self, other: PanopticStats):
        for name in ("iou", "tp", "fp", "fn", "plus_iou", "plus_gt"):
            getattr(self, name).__iadd__(getattr(other, name))
        return self


def panoptic_image_stats(
    joint: np.ndarray,
    gt_cat: np.ndarray,
    gt_crowd: np.ndarray,
    gt_area: np.ndarray,
    pred_cat: np.ndarray,
    num_categories: int,
) -> PanopticStats:
    """PQ statistics of one image from its joint histogram of segments.

    Args:
        joint: ``(n_gt + 2, n_pred + 1)`` pixel counts; GT rows ``0..n_gt-1`` are segments, row ``n_gt`` is void,
            row ``n_gt + 1`` holds pixels of unlisted GT ids (neither segment nor void); column ``n_pred`` is void.
        gt_cat, pred_cat: category index per segment in ``[0, num_categories]`` (``num_categories`` = unknown:
            counted nowhere).
        gt_crowd: bool per GT segment.
        gt_area: area per GT segment (the official script takes it from the GT JSON, whose areas
            :func:`evaluate_panoptic` checks against the PNG).
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
    cat_m = gt_cat[g[m]]
    stats = PanopticStats(
        iou=np.bincount(cat_m, weights=iou[m], minlength=nc).astype(np.float64),
        tp=np.bincount(cat_m, minlength=nc),
        fp=np.zeros(nc, np.int64),
        fn=np.zeros(nc, np.int64),
        plus_iou=np.bincount(gt_cat[g], weights=iou, minlength=nc).astype(np.float64),
        plus_gt=np.bincount(gt_cat[~gt_crowd], minlength=nc),
    )
    gt_matched = np.zeros(n_gt, bool)
    gt_matched[g[m]] = True
    pred_matched = np.zeros(n_pred, bool)
    pred_matched[p[m]] = True
    stats.fn = np.bincount(gt_cat[~gt_matched & ~gt_crowd], minlength=nc)

    ignored = void_p.astype(np.float64)
    crowd_of_cat = {}
    for i in np.flatnonzero(gt_crowd):  # the official keeps the last crowd segment of each category
        crowd_of_cat[int(gt_cat[i])] = int(i)
    if crowd_of_cat:
        for j in np.flatnonzero(~pred_matched):
            c = crowd_of_cat.get(int(pred_cat[j]))
            if c is not None:
                ignored[j] += joint[c, j]
    fp = ~pred_matched & ~(ignored / np.maximum(pred_area, 1) > 0.5)
    stats.fp = np.bincount(pred_cat[fp], minlength=nc)
    for name in ("iou", "tp", "fp", "fn", "plus_iou", "plus_gt"):  # drop the unknown-category bin
        setattr(stats, name, getattr(stats, name)[:num_categories].copy())
    return stats


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
        tp, fp, fn, iou = int(stats.tp[k]), int(stats.fp[k]), int(stats.fn[k]), float(stats.iou[k])
        counted = tp + fp + fn > 0
        if counted:
            denom = tp + 0.5 * fp + 0.5 * fn
            entry = {"pq": iou / denom, "sq": iou / tp if tp else 0.0, "rq": tp / denom}
        else:
            entry = {"pq": absent, "sq": absent, "rq": absent}
        if pq_plus:
            if thing:
                entry["pq_plus"] = entry["pq"] if counted else float("nan")
            else:
                n_gt = int(stats.plus_gt[k])
                entry["pq_plus"] = float(stats.plus_iou[k]) / n_gt if n_gt else float("nan")
        per_class[int(cid)] = entry
        rows.append((bool(thing), counted, entry))

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else float("nan")

    results: dict = {}
    for name, want in (("All", None), ("Things", True), ("Stuff", False)):
        group = [(c, e) for t, c, e in rows if want is None or t == want]
        used = [e for c, e in group if c]
        res = {key: mean([e[key] for e in used]) for key in ("pq", "sq", "rq")}
        res["n"] = len(used)
        if pq_plus:
            res["pq_plus"] = mean([e["pq_plus"] for _, e in group if not np.isnan(e["pq_plus"])])
        results[name] = res
        if name == "All":
            results["per_class"] = per_class
    return results


# ----------------------------------------------------------------------------------------------------------------
# torchmetrics metric on the project's maps


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


def _int_pair_runs(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal runs of equal (gt, pred) pairs of two HxW maps: (gt value, pred value, length) per run."""
    changed = np.empty(gt.shape, bool)
    changed[:, 0] = True
    np.not_equal(gt[:, 1:], gt[:, :-1], out=changed[:, 1:])
    changed[:, 1:] |= pred[:, 1:] != pred[:, :-1]
    starts = np.flatnonzero(changed)
    return gt.reshape(-1)[starts], pred.reshape(-1)[starts], np.diff(starts, append=gt.size)


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
            gt_run, pred_run, lengths = _int_pair_runs(target_np[b], pred_np[b])
            gt_ids, gt_index, gt_cls = self._segments(gt_run)
            pred_ids, pred_index, pred_cls = self._segments(pred_run)
            if target_crowd is None:
                crowd = self._is_thing[gt_cls] & (gt_ids % self.label_divisor == 0)
            else:
                crowd_ids = torch.as_tensor(target_crowd[b]).cpu().numpy().astype(np.int64).reshape(-1)
                crowd = np.isin(gt_ids, crowd_ids)
            n_gt, n_pred = len(gt_ids), len(pred_ids)
            key = gt_index * (n_pred + 1) + pred_index
            joint = np.bincount(key, weights=lengths, minlength=(n_gt + 2) * (n_pred + 1))
            joint = joint.astype(np.int64).reshape(n_gt + 2, n_pred + 1)
            gt_area = joint[:n_gt].sum(1)
            total += panoptic_image_stats(joint, gt_cls, crowd, gt_area, pred_cls, self.num_classes)
        for name in ("iou", "tp", "fp", "fn", "plus_iou", "plus_gt"):
            state = getattr(self, name)
            state += torch.as_tensor(getattr(total, name), dtype=state.dtype, device=state.device)

    def stats(self) -> PanopticStats:
        return PanopticStats(
            *(
                getattr(self, n).detach().cpu().numpy().copy()
                for n in ("iou", "tp", "fp", "fn", "plus_iou", "plus_gt")
            )
        )

    def compute(self) -> dict:
        stats = self.stats()
        sel = list(self.classes)
        sub = PanopticStats(
            *(getattr(stats, n)[sel] for n in ("iou", "tp", "fp", "fn", "plus_iou", "plus_gt"))
        )
        return summarize_panoptic(
            sub, sel, [bool(self._is_thing[c]) for c in sel], absent=float("nan"), pq_plus=True
        )


# ----------------------------------------------------------------------------------------------------------------
# drop-in for evaluatePanoptic on the official files


class _Workspace(threading.local):
    """Per-thread buffers reused from image to image (fresh multi-MB arrays cost page faults on every image)."""

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        buf = self.buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self.buffers[name] = np.empty(shape, dtype)
        return buf


def _row_runs(key: np.ndarray, ws: _Workspace) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal runs of equal values of an HxW array: (value per run, length per run).

    Label maps are piecewise constant, so there are far fewer runs than pixels and everything after this one
    compare-and-scan pass works on the runs.
    """
    changed = ws.get("changed", key.shape, bool)
    changed[:, 0] = True
    np.not_equal(key[:, 1:], key[:, :-1], out=changed[:, 1:])
    starts = np.flatnonzero(changed)
    lengths = np.diff(starts, append=key.size)
    return key.reshape(-1)[starts], lengths


def _pair_runs(gt_img: np.ndarray, pred_img: np.ndarray, ws: _Workspace):
    """Runs of equal (GT id, predicted id) pairs of two decoded panoptic PNGs: (gt ids, pred ids, lengths)."""
    gt16, gt_short = bgr_id16_view(gt_img)
    pred16, pred_short = bgr_id16_view(pred_img)
    if gt_short and pred_short:  # both 16-bit: pack (pred, gt) into one uint32 per pixel
        key = ws.get("key32", gt16.shape, np.uint32)
        np.copyto(key, pred16)
        np.left_shift(key, 16, out=key)
        np.bitwise_or(key, gt16, out=key)
        values, lengths = _row_runs(key, ws)
        return swap_id16(values & 0xFFFF).astype(np.int64), swap_id16(values >> 16).astype(np.int64), lengths
    # 24-bit ids somewhere: pack the two BGRX pixels (uint32 each, X constant) into one uint64 per pixel
    key = ws.get("key64", gt16.shape, np.uint64)
    np.copyto(key, _bgrx_view(gt_img, ws, "gt_bgrx"))
    np.left_shift(key, 32, out=key)
    np.bitwise_or(key, _bgrx_view(pred_img, ws, "pred_bgrx"), out=key)
    values, lengths = _row_runs(key, ws)
    return _bgr_value_to_id(values >> 32), _bgr_value_to_id(values & 0xFFFFFFFF), lengths


def _bgrx_view(img: np.ndarray, ws: _Workspace, name: str) -> np.ndarray:
    """HxW uint32 ``B + 2^8 G + 2^16 R + 2^24 * 255`` of a BGR(A) image (alpha replaced, as the official ignores
    it)."""
    bgrx = ws.get(name, img.shape[:2] + (4,), np.uint8)
    if img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    cv2.cvtColor(img, cv2.COLOR_BGR2BGRA, dst=bgrx)
    return bgrx.view(np.uint32)[..., 0]


def _bgr_value_to_id(values: np.ndarray) -> np.ndarray:
    """Id ``R + 256 G + 256^2 B`` of values ``B + 256 G + 256^2 R`` (any higher bits dropped)."""
    v = values.astype(np.int64)
    return ((v >> 16) & 0xFF) + (v & 0xFF00) + ((v & 0xFF) << 16)


def _index_of(ids: np.ndarray, segment_ids: np.ndarray, void: int, unknown: int) -> np.ndarray:
    """Position of each id in ``segment_ids``; ``void`` for 0, ``unknown`` for ids not listed."""
    order = np.argsort(segment_ids, kind="stable")
    ordered = segment_ids[order]
    pos = np.clip(np.searchsorted(ordered, ids), 0, max(len(ordered) - 1, 0))
    found = ordered[pos] == ids if len(ordered) else np.zeros(len(ids), bool)
    index = np.where(found, order[pos] if len(ordered) else 0, unknown)
    index[ids == 0] = void
    return index


def _segments_of(ann: Mapping, json_path: Path, what: str) -> list[Mapping]:
    segs = ann.get("segments_info")
    if not isinstance(segs, list) or not all(isinstance(s, Mapping) for s in segs):
        raise EvaluationInputError(f"{json_path}: image {ann.get('image_id')!r} has no segments_info list of objects")
    ids = [s.get("id") for s in segs]
    for sid in ids:
        if not isinstance(sid, int) or not 0 < sid < 1 << 24:
            raise EvaluationInputError(
                f"{json_path}: image {ann.get('image_id')!r} has invalid {what} segment id {sid!r} (1..2^24-1)"
            )
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise EvaluationInputError(
            f"{json_path}: image {ann.get('image_id')!r} has duplicate {what} segment ids {dup}"
        )
    return segs


def _file_name(ann: Mapping, json_path: Path) -> str:
    name = ann.get("file_name")
    if not isinstance(name, str) or not name:
        raise EvaluationInputError(f"{json_path}: image {ann.get('image_id')!r} has no file_name")
    return name


def _categories_of(segs: list[Mapping], cat_index: Mapping, json_path: Path, image_id) -> np.ndarray:
    """Category index per segment; an unknown category_id is an error (the official script raises it for
    predictions and silently drops GT segments)."""
    cats = np.empty(len(segs), np.intp)
    for j, s in enumerate(segs):
        cid = s.get("category_id")
        c = None if isinstance(cid, (list, dict)) else cat_index.get(cid)
        if c is None:
            raise EvaluationInputError(
                f"{json_path}: In the image with ID {image_id} segment with ID {s['id']} has unknown category_id {cid!r}"
            )
        cats[j] = c
    return cats


def _check_listed(run: np.ndarray, index: np.ndarray, unlisted: int, png: Path, json_path: Path, image_id) -> None:
    """Raise if a PNG holds a segment id its JSON does not list (the official script raises it for predictions
    and counts such GT pixels as neither void nor segment)."""
    if (index == unlisted).any():
        sid = int(run[index == unlisted][0])
        raise EvaluationInputError(
            f"{png}: In the image with ID {image_id} segment with ID {sid} is presented in PNG and not presented "
            f"in JSON ({json_path})"
        )


def _check_areas(segs: list[Mapping], counted: np.ndarray, json_path: Path, png: Path, image_id) -> None:
    """Raise if a GT segment's ``area`` differs from its pixel count in the PNG (the official script trusts it)."""
    for s, n in zip(segs, counted.tolist()):
        area = s.get("area", n)
        if area != n:
            raise EvaluationInputError(
                f"{json_path}: In the image with ID {image_id} segment with ID {s['id']} has area {area!r} but "
                f"{n} pixels in {png.name}"
            )


def _evaluate_pair(
    gt_ann, pred_ann, gt_dir: Path, pred_dir: Path, cat_index, gt_json, pred_json, ws: _Workspace
) -> PanopticStats:
    image_id = gt_ann.get("image_id")
    gt_segs = _segments_of(gt_ann, gt_json, "GT")
    pred_segs = _segments_of(pred_ann, pred_json, "predicted")
    gt_png = gt_dir / _file_name(gt_ann, gt_json)
    pred_png = pred_dir / _file_name(pred_ann, pred_json)
    gt_img = read_panoptic_bgr(gt_png, ws.buffers.get("gt"))
    ws.buffers["gt"] = gt_img
    pred_img = read_panoptic_bgr(pred_png, ws.buffers.get("pred"))
    ws.buffers["pred"] = pred_img
    if gt_img.shape[:2] != pred_img.shape[:2]:
        raise EvaluationInputError(
            f"{pred_png}: size {pred_img.shape[1]}x{pred_img.shape[0]} differs from the GT "
            f"{gt_img.shape[1]}x{gt_img.shape[0]} ({gt_png.name})"
        )

    n_gt, n_pred = len(gt_segs), len(pred_segs)
    cols = n_pred + 2  # predicted segments, void, ids missing from the JSON
    gt_ids = np.array([s["id"] for s in gt_segs], np.int64)
    pred_ids = np.array([s["id"] for s in pred_segs], np.int64)
    gt_run, pred_run, lengths = _pair_runs(gt_img, pred_img, ws)
    gi = _index_of(gt_run, gt_ids, n_gt, n_gt + 1)
    pi = _index_of(pred_run, pred_ids, n_pred, n_pred + 1)
    _check_listed(pred_run, pi, n_pred + 1, pred_png, pred_json, image_id)
    pred_cat = _categories_of(pred_segs, cat_index, pred_json, image_id)
    joint = np.bincount(gi * cols + pi, weights=lengths, minlength=(n_gt + 2) * cols)
    joint = joint.astype(np.int64).reshape(n_gt + 2, cols)
    joint = joint[:, : n_pred + 1]
    pred_area = joint[:, :n_pred].sum(0)
    if (pred_area == 0).any():
        missing = pred_ids[pred_area == 0][:5].tolist()
        raise EvaluationInputError(
            f"{pred_json}: In the image with ID {image_id} the following segment IDs {missing} are presented in "
            f"JSON and not presented in PNG ({pred_png.name})"
        )
    _check_listed(gt_run, gi, n_gt + 1, gt_png, gt_json, image_id)
    gt_cat = _categories_of(gt_segs, cat_index, gt_json, image_id)
    gt_crowd = np.array([s.get("iscrowd", 0) == 1 for s in gt_segs], bool)
    gt_area = joint[:n_gt].sum(1)
    _check_areas(gt_segs, gt_area, gt_json, gt_png, image_id)
    return panoptic_image_stats(joint, gt_cat, gt_crowd, gt_area, pred_cat, len(cat_index))


def evaluate_panoptic(
    gt_json_file: str | os.PathLike,
    gt_folder: str | os.PathLike,
    pred_json_file: str | os.PathLike,
    pred_folder: str | os.PathLike,
    results_file: str | os.PathLike | None = None,
    *,
    pq_plus: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> dict:
    """Drop-in for ``evaluatePanoptic(gt_json_file, gt_folder, pred_json_file, pred_folder, resultsFile)``.

    Returns the same dict (``All``/``Things``/``Stuff`` -> ``pq, sq, rq, n``; ``per_class`` -> ``{label id: {pq,
    sq, rq}}``, 0.0 for categories without segments) and writes it to ``results_file`` if given. ``pq_plus`` adds
    PQ+ entries. Images run on ``workers`` threads (default: up to 2; the decoders release the GIL). Malformed
    input raises :class:`EvaluationInputError` with the official script's message where it has one
    (``KeyError``/``Exception`` there); where the official script trusts its input (GT areas, GT categories, GT
    PNG ids missing from the GT JSON) it is checked here too.
    """
    gt_json_file, pred_json_file = Path(gt_json_file), Path(pred_json_file)
    gt_folder, pred_folder = Path(gt_folder), Path(pred_folder)
    gt = read_json(gt_json_file)
    pred = read_json(pred_json_file)
    for path, data in ((gt_json_file, gt), (pred_json_file, pred)):
        if not isinstance(data.get("annotations"), list):
            raise EvaluationInputError(f"{path}: no 'annotations' list")
        if not all(isinstance(ann, Mapping) for ann in data["annotations"]):
            raise EvaluationInputError(f"{path}: every entry of 'annotations' must be an object")
    if not isinstance(gt.get("categories"), list) or not all(
        isinstance(c, Mapping) and isinstance(c.get("id"), int) for c in gt["categories"]
    ):
        raise EvaluationInputError(f"{gt_json_file}: no 'categories' list of objects with an integer 'id'")
    for folder, what in ((gt_folder, "ground truth"), (pred_folder, "predicted")):
        if not folder.is_dir():
            raise EvaluationInputError(f"Folder {folder} with {what} segmentations doesn't exist")
    categories = {c["id"]: c for c in gt["categories"]}
    cat_ids = list(categories)
    cat_index = {cid: k for k, cid in enumerate(cat_ids)}

    pred_by_image: dict = {}
    for ann in pred["annotations"]:
        image_id = ann.get("image_id")
        if image_id in pred_by_image:
            raise EvaluationInputError(f"{pred_json_file}: duplicate annotation for image {image_id!r}")
        pred_by_image[image_id] = ann
    pairs = []
    for gt_ann in gt["annotations"]:
        if gt_ann.get("image_id") not in pred_by_image:
            raise EvaluationInputError(
                f"{pred_json_file}: no prediction for the image with id: {gt_ann.get('image_id')}"
            )
        pairs.append((gt_ann, pred_by_image[gt_ann["image_id"]]))

    ws = _Workspace()  # one set of buffers per worker thread, freed with this call

    def one(pair):
        return _evaluate_pair(
            pair[0], pair[1], gt_folder, pred_folder, cat_index, gt_json_file, pred_json_file, ws
        )

    total = PanopticStats.zeros(len(cat_ids))
    n_workers = max(1, min(workers or min(2, os.cpu_count() or 1), len(pairs)))
    with ThreadPoolExecutor(n_workers) as pool, _progress(len(pairs), progress, "panoptic") as bar:
        for stats in pool.map(one, pairs):
            total += stats
            bar.update()
    results = summarize_panoptic(
        total, cat_ids, [categories[c].get("isthing", 0) == 1 for c in cat_ids], pq_plus=pq_plus
    )
    if results_file is not None:
        with open(results_file, "w") as f:
            json.dump(results, f, sort_keys=True, indent=4)
    return results


def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="img", leave=False)
