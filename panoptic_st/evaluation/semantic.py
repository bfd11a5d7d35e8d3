"""Semantic-segmentation IoU with the rules of ``evalPixelLevelSemanticLabeling``.

One confusion matrix accumulated over the whole split (not per image). GT pixels of ignored classes are dropped;
a *void prediction* (trainId 255, or a label id that is ignored in evaluation) on a valid GT pixel is a false
negative of the GT class, exactly as in the official script, so the matrix has one extra column for them:
shape (C, C + 1), rows = GT trainId, columns = predicted trainId, last column = void prediction.
``IoU = TP / (TP + FP + FN)``; a class absent from both GT and prediction is NaN and left out of the mean (the
official convention). The 16- and 13-class protocols average over subsets (``labels.PROTOCOLS``).

- :func:`confusion_matrix`: pure function, one ``bincount``;
- :class:`SemanticIoU`: ``torchmetrics.Metric`` summing that matrix across processes;
- :func:`evaluate_semantic`: drop-in for the official script on label-id PNGs.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
from cityscapesscripts.helpers.labels import category2labels
from cityscapesscripts.helpers.labels import labels as cs_labels
from torchmetrics import Metric

from panoptic_st.data.labels import (
    CLASS_NAMES,
    IGNORE_INDEX,
    LABEL_ID_TO_TRAIN_ID,
    NUM_CLASSES,
    PROTOCOLS,
)
from panoptic_st.errors import EvaluationInputError
from panoptic_st.evaluation.files import (
    find_ground_truth,
    match_prediction_files,
    read_label_png,
)

__all__ = [
    "SemanticIoU",
    "category_iou_from_confusion",
    "confusion_matrix",
    "evaluate_semantic",
    "iou_from_confusion",
    "mean_iou",
]


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """(C, C + 1) int64 pixel counts: row = GT class, column = predicted class, last column = void prediction
    (``ignore_index`` or any value outside ``[0, C)``). GT pixels outside ``[0, C)`` (e.g. ``ignore_index``) are
    dropped. Any shapes, as long as ``pred`` and ``target`` match."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    c = num_classes
    if pred.device.type == "cpu":  # numpy's bincount is faster than torch's on the CPU
        # as unsigned, negative values are huge: one minimum() sends everything outside [0, C) to C
        t = np.minimum(target.reshape(-1).numpy().astype(np.int64, copy=False).view(np.uint64), c)
        p = np.minimum(pred.reshape(-1).numpy().astype(np.int64, copy=False).view(np.uint64), c)
        if 0 <= ignore_index < c:
            t[target.reshape(-1).numpy() == ignore_index] = c
        t *= np.uint64(c + 1)
        t += p
        counts = np.bincount(t.view(np.int64), minlength=(c + 1) * (c + 1))
        return torch.from_numpy(counts.reshape(c + 1, c + 1)[:c].copy())
    t = target.reshape(-1).long()
    p = pred.reshape(-1).long()
    valid = (t >= 0) & (t < c) & (t != ignore_index)
    t, p = t[valid], p[valid]
    p = torch.where((p >= 0) & (p < c), p, torch.full_like(p, c))
    return torch.bincount(t * (c + 1) + p, minlength=c * (c + 1)).reshape(c, c + 1)


def iou_from_confusion(confmat: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Per-class IoU (float64) from a (C, C + 1) matrix; NaN where TP + FP + FN = 0."""
    cm = torch.as_tensor(confmat).double()
    c = cm.shape[0]
    tp = torch.diagonal(cm[:, :c])
    fn = cm.sum(1) - tp
    fp = cm[:, :c].sum(0) - tp
    denom = tp + fp + fn
    return torch.where(denom > 0, tp / denom.clamp_min(1), torch.full_like(tp, math.nan))


def mean_iou(iou: torch.Tensor, classes: Sequence[int] | None = None) -> torch.Tensor:
    """Mean over ``classes`` (default all) of the IoUs that are not NaN; NaN if there are none."""
    sel = iou if classes is None else iou[list(classes)]
    sel = sel[~torch.isnan(sel)]
    return sel.mean() if sel.numel() else torch.tensor(math.nan, dtype=iou.dtype)


_TRAIN_CATEGORY = [next(lab.category for lab in cs_labels if lab.trainId == t) for t in range(NUM_CLASSES)]
CATEGORIES: tuple[str, ...] = tuple(category2labels)


def category_iou_from_confusion(confmat: torch.Tensor | np.ndarray) -> dict[str, float]:
    """Official category IoU (flat, construction, ...) from a (19, 20) trainId matrix; NaN for ``void``."""
    cm = torch.as_tensor(confmat).double()
    out = {}
    for cat in CATEGORIES:
        ids = [t for t in range(NUM_CLASSES) if _TRAIN_CATEGORY[t] == cat]
        if not ids:
            out[cat] = math.nan
            continue
        others = [t for t in range(NUM_CLASSES) if _TRAIN_CATEGORY[t] != cat]
        tp = cm[ids][:, ids].sum()
        fn = cm[ids].sum() - tp
        fp = cm[others][:, ids].sum()
        denom = tp + fp + fn
        out[cat] = float(tp / denom) if denom > 0 else math.nan
    return out


class SemanticIoU(Metric):
    """mIoU over a split, equal to the official script.

    ``update(preds, target)``: trainId maps of any equal shape (e.g. (B, H, W)); predictions may be logits
    (B, C, H, W), which are arg-maxed. State: one (C, C + 1) confusion matrix, summed across processes.
    ``compute()`` -> ``{"iou": (C,) float64 with NaN for absent classes, "miou": mean over ``classes``,
    "miou_19", "miou_16", "miou_13"}``.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(
        self, num_classes: int = NUM_CLASSES, classes: Sequence[int] | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.classes = tuple(range(num_classes)) if classes is None else tuple(int(c) for c in classes)
        self.add_state(
            "confmat", torch.zeros(num_classes, num_classes + 1, dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.dim() == target.dim() + 1 and preds.is_floating_point():
            preds = preds.argmax(1)
        self.confmat += confusion_matrix(preds, target, self.num_classes).to(self.confmat.device)

    def compute(self) -> dict[str, torch.Tensor]:
        iou = iou_from_confusion(self.confmat)
        out = {"iou": iou, "miou": mean_iou(iou, self.classes)}
        if self.num_classes == NUM_CLASSES:
            for n, cls in PROTOCOLS.items():
                out[f"miou_{n}"] = mean_iou(iou, cls)
        return out


# ----------------------------------------------------------------------------------------------------------------
# drop-in for evalPixelLevelSemanticLabeling on the official files

_MAX_LABEL = max(lab.id for lab in cs_labels)  # 33
_N_LABELS = _MAX_LABEL + 1
_LABEL_TO_TRAIN = LABEL_ID_TO_TRAIN_ID[:_N_LABELS].astype(np.int64)


def _label_confusion(gt_file, pred_file) -> np.ndarray:
    """(34, 34) label-id confusion matrix of one image pair, as the official script accumulates it."""
    gt = read_label_png(gt_file)
    pred = read_label_png(pred_file)
    if gt.shape != pred.shape:
        raise EvaluationInputError(
            f"{pred_file}: size {pred.shape[1]}x{pred.shape[0]} differs from the GT {gt.shape[1]}x{gt.shape[0]}"
        )
    if gt.dtype == np.uint8 and pred.dtype == np.uint8:
        hist = cv2.calcHist([gt, pred], [0, 1], None, [256, 256], [0, 256, 0, 256])
        hist = hist.astype(np.int64)
    else:
        g, p = gt.astype(np.int64), pred.astype(np.int64)
        if g.min(initial=0) < 0 or p.min(initial=0) < 0:
            raise EvaluationInputError(f"{pred_file}: negative label ids")
        n = max(int(g.max(initial=0)), int(p.max(initial=0)), _MAX_LABEL) + 1
        hist = np.bincount((g * n + p).reshape(-1), minlength=n * n).reshape(n, n)
    if hist[_N_LABELS:].any():
        bad = np.flatnonzero(hist[_N_LABELS:].sum(1)) + _N_LABELS
        raise EvaluationInputError(f"{gt_file}: unknown label ids {bad[:5].tolist()}")
    if hist[:, _N_LABELS:].any():
        bad = np.flatnonzero(hist[:, _N_LABELS:].sum(0)) + _N_LABELS
        raise EvaluationInputError(
            f"{pred_file}: unknown label ids {bad[:5].tolist()} (expected label ids 0..33)"
        )
    return hist[:_N_LABELS, :_N_LABELS]


def label_to_train_confusion(label_cm: np.ndarray) -> torch.Tensor:
    """Fold a (34, 34) label-id matrix into the (19, 20) trainId matrix (ignored GT rows dropped, ignored
    predictions into the void column)."""
    rows = _LABEL_TO_TRAIN
    cols = np.where(rows < NUM_CLASSES, rows, NUM_CLASSES)
    out = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64)
    keep = rows < NUM_CLASSES
    np.add.at(out, (rows[keep][:, None], cols[None, :]), label_cm[keep])
    return torch.from_numpy(out)


def evaluate_semantic(
    gt_dir: str | os.PathLike,
    pred_dir: str | os.PathLike,
    results_file: str | os.PathLike | None = None,
    *,
    workers: int | None = None,
    progress: bool = False,
) -> dict:
    """Drop-in for ``evalPixelLevelSemanticLabeling`` on label-id PNGs (without the instance-level nIoU).

    GT: every ``*_gtFine_labelIds.png`` under ``gt_dir``; predictions: for each, exactly one
    ``{city}_{seq}_{frame}*.png`` under ``pred_dir`` holding Cityscapes label ids. Returns the official keys
    ``confMatrix`` (34x34 label ids), ``classScores`` (every label name, NaN for ignored ones),
    ``averageScoreClasses``, ``categoryScores``, ``averageScoreCategories``, plus ``averageScoreProtocols``
    (mIoU over the 19/16/13-class protocols) and ``trainIdIoU``; writes them to ``results_file`` if given.
    """
    gt_files = find_ground_truth(gt_dir, "_gtFine_labelIds.png")
    preds = match_prediction_files(gt_files, pred_dir, "png")
    n_workers = max(1, min(workers or min(2, os.cpu_count() or 1), len(gt_files)))
    from tqdm import tqdm

    label_cm = np.zeros((_N_LABELS, _N_LABELS), np.int64)
    with ThreadPoolExecutor(n_workers) as pool:
        for cm in tqdm(
            pool.map(_label_confusion, gt_files, preds),
            total=len(gt_files), disable=not progress, desc="semantic", unit="img", leave=False,
        ):  # fmt: skip
            label_cm += cm
    train_cm = label_to_train_confusion(label_cm)
    iou = iou_from_confusion(train_cm)
    class_scores = {}
    for lab in cs_labels:
        if lab.id < 0:
            continue
        class_scores[lab.name] = float(iou[lab.trainId]) if not lab.ignoreInEval else math.nan
    category_scores = category_iou_from_confusion(train_cm)

    def avg(values):
        vals = [v for v in values if not math.isnan(v)]
        return sum(vals) / len(vals) if vals else math.nan

    results = {
        "confMatrix": label_cm.tolist(),
        "classScores": class_scores,
        "averageScoreClasses": avg(class_scores.values()),
        "categoryScores": category_scores,
        "averageScoreCategories": avg(category_scores.values()),
        "averageScoreProtocols": {str(n): float(mean_iou(iou, cls)) for n, cls in PROTOCOLS.items()},
        "trainIdIoU": {CLASS_NAMES[t]: float(iou[t]) for t in range(NUM_CLASSES)},
    }
    if results_file is not None:
        with open(results_file, "w") as f:
            json.dump(results, f, indent=4)
    return results
