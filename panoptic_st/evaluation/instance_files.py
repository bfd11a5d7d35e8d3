"""Drop-in for the official ``evalInstanceLevelSemanticLabeling`` (default settings) on its files.

GT: every ``*_gtFine_instanceIds.png`` under the GT folder; predictions: for each, exactly one
``{city}_{seq}_{frame}*.txt`` under the prediction folder listing ``relative/mask.png labelId confidence``. Each
image is reduced to match records (:mod:`~panoptic_st.evaluation.instance_records`) on a thread pool (the PNG
decoder and NumPy release the GIL); no GT cache or ``matches.json`` is written.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import id2label
from cityscapesscripts.helpers.labels import labels as cs_labels

from panoptic_st.errors import EvaluationInputError
from panoptic_st.evaluation.files import (
    find_ground_truth,
    match_prediction_files,
    progress_bar,
    read_label_png,
    read_mask_png,
)
from panoptic_st.evaluation.instance_records import (
    INSTANCE_LABELS,
    MIN_REGION_SIZE,
    OVERLAPS,
    InstanceRecords,
    ap_matrix,
    image_records,
    scaled_min_region_size,
    summarize_instances,
)

__all__ = ["evaluate_instances"]

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


@dataclass
class _GroundTruth:
    """The GT instance segments of one image, as ``image_records`` takes them."""

    index: np.ndarray  # HxW segment index (int32), -1 outside evaluated segments
    cls: np.ndarray
    group: np.ndarray
    size: np.ndarray
    void: np.ndarray  # HxW bool


def _read_ground_truth(gt_file: Path) -> _GroundTruth:
    """The segments of the evaluated classes in a ``*_gtFine_instanceIds.png`` (groups: ids below 1000)."""
    ids = read_label_png(gt_file)
    if ids.dtype.kind == "i" and ids.min(initial=0) < 0:
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
    lut = np.full(len(counts), -1, np.int32)
    lut[seg_ids] = np.arange(len(seg_ids))
    void_lut = np.zeros(len(counts), bool)
    void_lut[[v for v in _VOID_LABEL_IDS if v < len(counts)]] = True
    return _GroundTruth(
        index=np.take(lut, ids),
        cls=np.array([_NAME_TO_INDEX[names[i]] for i in keep], np.int64),
        group=seg_ids < 1000,
        size=counts[seg_ids],
        void=np.take(void_lut, ids),
    )


def _read_predictions(txt: Path, pred_root: Path, shape: tuple[int, ...]):
    """(pixel indices, class index, confidence) of the listed masks of evaluated classes."""
    masks, classes, scores = [], [], []
    for path, (label_id, conf) in _read_prediction_list(txt, pred_root).items():
        name = id2label[label_id].name
        if name not in _NAME_TO_INDEX:
            continue
        pixels, mask_shape = read_mask_png(path)
        if mask_shape != shape:
            raise EvaluationInputError(f"{path}: mask size {mask_shape[::-1]} differs from the GT {shape[::-1]}")
        masks.append(pixels)
        classes.append(_NAME_TO_INDEX[name])
        scores.append(conf)
    return masks, classes, scores


def _file_records(gt_file: Path, txt: Path, pred_root: Path,
                  min_region_size: int | None = MIN_REGION_SIZE) -> InstanceRecords:
    """The match records of one GT file and its prediction list."""
    gt = _read_ground_truth(gt_file)
    masks, classes, scores = _read_predictions(txt, pred_root, gt.index.shape)
    return image_records(
        gt.index, gt.cls, gt.group, gt.size, gt.void, masks, classes, scores, len(INSTANCE_LABELS), OVERLAPS,
        min_region_size or scaled_min_region_size(*gt.index.shape),
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
    with ThreadPoolExecutor(n_workers) as pool, progress_bar(len(gt_files), progress, "instance") as bar:
        records = []
        for rec in pool.map(lambda a: _file_records(a[0], a[1], pred_root, min_region_size), zip(gt_files, txts)):
            records.append(rec)
            bar.update()
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
