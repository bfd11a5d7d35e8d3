"""Drop-in for the official ``evaluatePanoptic`` on its files: COCO panoptic JSON + PNGs, same result dict.

Per image, one compare-and-scan pass over the two decoded PNGs (each seen as one ``uint32`` per pixel) finds the
horizontal runs of equal (GT id, predicted id) pairs (label maps have far fewer runs than pixels); one weighted
``np.bincount`` of the runs over ``gt_index * (n_pred + 2) + pred_index`` is the joint histogram of segment pairs,
and the matching (:mod:`~panoptic_st.evaluation.panoptic_stats`) works on that small matrix. Images run on a thread
pool (the PNG decoder and NumPy release the GIL). The IoU sums are added in the official order, including its split
of the images into ``os.cpu_count()`` consecutive parts whose sums are added at the end, so that the results equal
the official script's to the last digit on the same machine.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from panoptic_st.errors import EvaluationInputError
from panoptic_st.evaluation.files import progress_bar, read_panoptic_rgb
from panoptic_st.evaluation.panoptic_input import (
    PanopticInputs,
    categories_of,
    check_areas,
    check_listed,
    check_present,
    file_name_of,
    read_panoptic_inputs,
    segments_of,
)
from panoptic_st.evaluation.panoptic_stats import (
    PanopticStats,
    pair_runs,
    panoptic_image_stats,
    summarize_panoptic,
)

__all__ = ["evaluate_panoptic"]


class _Workspace(threading.local):
    """Per-thread buffers reused from image to image (fresh multi-MB arrays cost page faults on every image)."""

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """The buffer ``name`` with this shape and dtype (contents undefined)."""
        buf = self.buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self.buffers[name] = np.empty(shape, dtype)
        return buf

    def read(self, name: str, path: Path) -> np.ndarray:
        """Decode a panoptic PNG into the buffer ``name`` (reallocated when the size differs)."""
        img = read_panoptic_rgb(path, self.buffers.get(name))
        self.buffers[name] = img
        return img


def _rgbx_view(img: np.ndarray, ws: _Workspace, name: str) -> np.ndarray:
    """HxW uint32 ``R + 2^8 G + 2^16 B + 2^24 * 255`` of an RGB(A) image (alpha replaced, as the official ignores
    it): the segment id in the low 24 bits."""
    rgbx = ws.get(name, img.shape[:2] + (4,), np.uint8)
    if img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_RGBA2RGB)
    cv2.cvtColor(img, cv2.COLOR_RGB2RGBA, dst=rgbx)
    return rgbx.view(np.uint32)[..., 0]


def _rgbx_to_id(values: np.ndarray) -> np.ndarray:
    """Segment id ``R + 256 G + 256^2 B`` of :func:`_rgbx_view` values."""
    return (values & 0xFFFFFF).astype(np.int64)


def _pair_runs(gt_img: np.ndarray, pred_img: np.ndarray, ws: _Workspace):
    """Runs of equal (GT id, predicted id) pairs of two decoded panoptic PNGs: (gt ids, pred ids, lengths)."""
    gt = _rgbx_view(gt_img, ws, "gt_rgbx")
    pred = _rgbx_view(pred_img, ws, "pred_rgbx")
    changed = ws.get("changed", gt.shape, bool)
    scratch = ws.get("scratch", (gt.shape[0], gt.shape[1] - 1), bool)
    gt_values, pred_values, lengths = pair_runs(gt, pred, changed, scratch)
    return _rgbx_to_id(gt_values), _rgbx_to_id(pred_values), lengths


def _index_of(ids: np.ndarray, segment_ids: np.ndarray, void: int, unknown: int) -> np.ndarray:
    """Position of each id in ``segment_ids``; ``void`` for 0, ``unknown`` for ids not listed."""
    if not len(segment_ids):
        return np.where(ids == 0, void, unknown)
    order = np.argsort(segment_ids, kind="stable")
    ordered = segment_ids[order]
    pos = np.clip(np.searchsorted(ordered, ids), 0, len(ordered) - 1)
    index = np.where(ordered[pos] == ids, order[pos], unknown)
    index[ids == 0] = void
    return index


def _read_pair(gt_ann: Mapping, pred_ann: Mapping, inputs: PanopticInputs, ws: _Workspace):
    """The decoded GT and predicted PNGs of one image (same size) and their paths."""
    gt_png = inputs.gt_dir / file_name_of(gt_ann, inputs.gt_json)
    pred_png = inputs.pred_dir / file_name_of(pred_ann, inputs.pred_json)
    gt_img, pred_img = ws.read("gt", gt_png), ws.read("pred", pred_png)
    if gt_img.shape[:2] != pred_img.shape[:2]:
        raise EvaluationInputError(
            f"{pred_png}: size {pred_img.shape[1]}x{pred_img.shape[0]} differs from the GT "
            f"{gt_img.shape[1]}x{gt_img.shape[0]} ({gt_png.name})"
        )
    return gt_img, pred_img, gt_png, pred_png


def _evaluate_pair(pair: tuple[Mapping, Mapping], inputs: PanopticInputs, cat_index: dict, ws: _Workspace):
    """The :class:`PanopticStats` of one image, its inputs checked as in the module docstring of ``panoptic_input``."""
    gt_ann, pred_ann = pair
    image_id = gt_ann.get("image_id")
    gt_segs = segments_of(gt_ann, inputs.gt_json, "GT")
    pred_segs = segments_of(pred_ann, inputs.pred_json, "predicted")
    gt_img, pred_img, gt_png, pred_png = _read_pair(gt_ann, pred_ann, inputs, ws)

    n_gt, n_pred = len(gt_segs), len(pred_segs)
    cols = n_pred + 2  # predicted segments, void, ids missing from the JSON
    gt_ids = np.array([s["id"] for s in gt_segs], np.int64)
    pred_ids = np.array([s["id"] for s in pred_segs], np.int64)
    gt_run, pred_run, lengths = _pair_runs(gt_img, pred_img, ws)
    gi = _index_of(gt_run, gt_ids, n_gt, n_gt + 1)
    pi = _index_of(pred_run, pred_ids, n_pred, n_pred + 1)
    check_listed(pred_run, pi, n_pred + 1, pred_png, inputs.pred_json, image_id)
    pred_cat = categories_of(pred_segs, cat_index, inputs.pred_json, image_id)
    joint = np.bincount(gi * cols + pi, weights=lengths, minlength=(n_gt + 2) * cols)
    joint = joint.astype(np.int64).reshape(n_gt + 2, cols)[:, : n_pred + 1]
    check_present(pred_ids, joint[:, :n_pred].sum(0), pred_png, inputs.pred_json, image_id)
    check_listed(gt_run, gi, n_gt + 1, gt_png, inputs.gt_json, image_id)
    gt_cat = categories_of(gt_segs, cat_index, inputs.gt_json, image_id)
    gt_crowd = np.array([s.get("iscrowd", 0) == 1 for s in gt_segs], bool)
    gt_area = joint[:n_gt].sum(1)
    check_areas(gt_segs, gt_area, inputs.gt_json, gt_png, image_id)
    return panoptic_image_stats(joint, gt_cat, gt_crowd, gt_area, pred_cat, len(cat_index), gt_order=gt_ids)


def _official_parts(n_images: int) -> list[int]:
    """Sizes of the consecutive parts the official script's process pool sums separately (one per CPU)."""
    return [len(part) for part in np.array_split(np.arange(n_images), os.cpu_count() or 1)]


def _sum_in_official_order(per_image, n_images: int, n_categories: int, bar) -> PanopticStats:
    """Sum of per-image stats: image by image within each official part, then the parts."""
    total = PanopticStats.zeros(n_categories)
    images = iter(per_image)
    for size in _official_parts(n_images):
        part = PanopticStats.zeros(n_categories)
        for _ in range(size):
            part += next(images)
            bar.update()
        total += part
    return total


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
    PQ+ entries. Images run on ``workers`` threads (default: as many as CPUs, at most 2, like the official pool of
    one process per CPU). Malformed input raises :class:`EvaluationInputError` (see ``panoptic_input``).
    """
    inputs = read_panoptic_inputs(Path(gt_json_file), Path(gt_folder), Path(pred_json_file), Path(pred_folder))
    cat_index = inputs.category_index
    ws = _Workspace()  # one set of buffers per worker thread, freed with this call
    n = len(inputs.pairs)
    n_workers = max(1, min(workers or min(2, os.cpu_count() or 1), n))
    with ThreadPoolExecutor(n_workers) as pool, progress_bar(n, progress, "panoptic") as bar:
        per_image = pool.map(lambda pair: _evaluate_pair(pair, inputs, cat_index, ws), inputs.pairs)
        total = _sum_in_official_order(per_image, n, len(cat_index), bar)
    cat_ids = list(inputs.categories)
    is_thing = [inputs.categories[c].get("isthing", 0) == 1 for c in cat_ids]
    results = summarize_panoptic(total, cat_ids, is_thing, pq_plus=pq_plus)
    if results_file is not None:
        with open(results_file, "w") as f:
            json.dump(results, f, sort_keys=True, indent=4)
    return results
