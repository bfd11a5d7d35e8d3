"""Cityscapes result file formats: writers from the project's prediction contract (the readers are in ``files``).

Formats (the ones the official ``cityscapesscripts`` evaluators read):

- semantic: one single-channel PNG of Cityscapes *label ids* per image, named ``{city}_{seq}_{frame}*.png``;
- instance: one ``{city}_{seq}_{frame}*.txt`` per image whose lines are ``relative/mask.png labelId confidence``;
  every mask is a PNG in which any non-zero pixel belongs to the instance (the writer makes 1-bit PNGs);
- panoptic: a COCO panoptic JSON (``annotations`` with ``image_id``, ``file_name`` and ``segments_info`` entries
  ``id``, ``category_id`` (label id), ``area``, ``bbox`` [x, y, w, h], ``iscrowd``) plus one RGB PNG per image whose
  segment id is ``R + 256 G + 256^2 B`` (0 = void).

The writers take the project's prediction contract (``docs/design.md``): ``semantic`` HxW trainIds (255 ignore),
``instances`` HxW ids (0 = none, instance ``k`` is row ``k-1`` of ``segments``: ``class``, ``score``), ``panoptic``
HxW ``trainId * 1000 + instance`` (negative ids or classes outside the 19 train classes are void).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import torch
from cityscapesscripts.helpers.labels import labels as cs_labels

from panoptic_st.data.labels import IGNORE_INDEX, LABEL_DIVISOR, NUM_CLASSES, TRAIN_ID_TO_LABEL_ID
from panoptic_st.errors import EvaluationInputError
from panoptic_st.evaluation.files import (
    cityscapes_prefix,
    find_ground_truth,
    id_to_rgb,
    match_prediction_files,
    output_stem,
    read_panoptic_ids,
    read_panoptic_rgb,
    rgb_to_id,
)  # importable from here too, as before the readers moved to ``files``

__all__ = [
    "CityscapesExporter",
    "EvaluationInputError",
    "PanopticJsonWriter",
    "cityscapes_prefix",
    "find_ground_truth",
    "id_to_rgb",
    "match_prediction_files",
    "output_stem",
    "panoptic_categories",
    "read_panoptic_ids",
    "read_panoptic_rgb",
    "rgb_to_id",
    "write_instance_prediction",
    "write_panoptic_json",
    "write_panoptic_prediction",
    "write_semantic_prediction",
]


def panoptic_categories() -> list[dict]:
    """The ``categories`` of the official panoptic GT (label ids of the evaluated classes)."""
    return [
        {
            "id": int(lab.id),
            "name": lab.name,
            "color": list(lab.color),
            "supercategory": lab.category,
            "isthing": 1 if lab.hasInstances else 0,
        }
        for lab in cs_labels
        if not lab.ignoreInEval
    ]


# ----------------------------------------------------------------------------------------------------------------
# writers


def to_numpy(x) -> np.ndarray:
    """A tensor (bfloat16 / float16 as float32, which NumPy cannot hold) or array-like as a NumPy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        return (x.float() if x.dtype in (torch.bfloat16, torch.float16) else x).cpu().numpy()
    return np.asarray(x)


_FAST_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]
if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # unfiltered rows decode faster (OpenCV >= 4.10)
    _FAST_PNG += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
"""PNG writer settings: fast to write and, above all, fast to decode for every evaluator."""
_MASK_PNG = _FAST_PNG + [cv2.IMWRITE_PNG_BILEVEL, 1]
"""Instance masks as 1-bit PNGs (0/1 in, read back as 0/255 by PIL's ``L`` conversion): an eighth of the data."""

_TRAIN_TO_LABEL = np.zeros(256, np.uint8)
_TRAIN_TO_LABEL[:NUM_CLASSES] = TRAIN_ID_TO_LABEL_ID


def write_semantic_prediction(out_dir: str | os.PathLike, image_name: str, semantic) -> Path:
    """Write a trainId map (HxW, 255 = ignore -> label id 0) as ``{out_dir}/{prefix}_pred_labelIds.png``."""
    sem = to_numpy(semantic).astype(np.int64)
    if sem.ndim != 2:
        raise ValueError(f"semantic prediction of {image_name} must be HxW, got shape {sem.shape}")
    sem = np.where((sem >= 0) & (sem < NUM_CLASSES), sem, IGNORE_INDEX)
    out = Path(out_dir) / f"{output_stem(image_name)}_pred_labelIds.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), _TRAIN_TO_LABEL[sem], _FAST_PNG)
    return out


def _instance_masks(instances, num: int | None = None) -> np.ndarray:
    arr = to_numpy(instances)
    if arr.ndim == 3:
        return arr.astype(bool)
    if arr.ndim != 2:
        raise ValueError(f"instances must be an HxW id map or NxHxW masks, got shape {arr.shape}")
    n = int(arr.max()) if num is None else num
    return np.stack([arr == k for k in range(1, n + 1)]) if n > 0 else np.zeros((0,) + arr.shape, bool)


def write_instance_prediction(out_dir: str | os.PathLike, image_name: str, instances, labels, scores) -> Path:
    """Write ``{out_dir}/{prefix}_pred.txt`` and one mask PNG per instance under ``{out_dir}/masks/``.

    ``instances``: HxW id map (instance ``k`` >= 1 owns ``labels[k-1]`` and ``scores[k-1]``) or NxHxW bool masks;
    ``labels``: trainIds; ``scores``: confidences, written with full precision (``repr``).
    """
    lab = to_numpy(labels).astype(np.int64).reshape(-1)
    sc = to_numpy(scores).astype(np.float64).reshape(-1)
    if lab.shape != sc.shape:
        raise ValueError(f"{image_name}: {lab.size} labels but {sc.size} scores")
    masks = _instance_masks(instances, num=lab.size)
    if len(masks) != lab.size:
        raise ValueError(f"{image_name}: {len(masks)} masks but {lab.size} labels")
    stem = output_stem(image_name)
    out_dir = Path(out_dir)
    txt = out_dir / f"{stem}_pred.txt"
    mask_stem = out_dir / "masks" / stem
    mask_stem.parent.mkdir(parents=True, exist_ok=True)
    txt.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for k, (mask, t, s) in enumerate(zip(masks, lab, sc)):
        if not 0 <= t < NUM_CLASSES:
            continue
        path = Path(f"{mask_stem}_{k:04d}.png")
        cv2.imwrite(str(path), mask.astype(np.uint8), _MASK_PNG)
        rel = os.path.relpath(path, txt.parent).replace(os.sep, "/")
        lines.append(f"{rel} {int(TRAIN_ID_TO_LABEL_ID[t])} {float(s)!r}\n")
    txt.write_text("".join(lines))
    return txt


def write_panoptic_prediction(png_dir: str | os.PathLike, image_name: str, panoptic) -> tuple[dict, dict]:
    """Write one panoptic PNG (``{png_dir}/{stem}_panoptic.png``); returns its ``images`` and ``annotations``
    entries for the JSON.

    Segment ids are ``labelId * 1000 + instance`` (Cityscapes style, never 0, < 2^16); thing segments are written
    with ``iscrowd`` 0.
    """
    pan = to_numpy(panoptic).astype(np.int64)
    if pan.ndim != 2:
        raise ValueError(f"panoptic prediction of {image_name} must be HxW, got shape {pan.shape}")
    cls = np.floor_divide(pan, LABEL_DIVISOR)
    inst = pan - cls * LABEL_DIVISOR
    valid = (pan >= 0) & (cls < NUM_CLASSES)
    seg = np.where(valid, _TRAIN_TO_LABEL[np.clip(cls, 0, 255)].astype(np.int64) * LABEL_DIVISOR + inst, 0)
    stem = output_stem(image_name)
    file_name = f"{stem}_panoptic.png"
    path = Path(png_dir) / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(id_to_rgb(seg), cv2.COLOR_RGB2BGR), _FAST_PNG)
    image = {"id": stem, "file_name": f"{stem}_leftImg8bit.png", "height": seg.shape[0], "width": seg.shape[1]}
    return image, {"image_id": stem, "file_name": file_name, "segments_info": _segments_info(seg)}


def _segments_info(seg: np.ndarray) -> list[dict]:
    """COCO ``segments_info`` (id, category, area, bbox, iscrowd 0) of an HxW segment-id map (0 = void)."""
    ids, inverse = np.unique(seg, return_inverse=True)
    inverse = inverse.reshape(seg.shape)
    n = len(ids)
    height, width = seg.shape
    counts = np.bincount(inverse.ravel(), minlength=n)
    # per segment: which columns / rows it touches (one bincount each), then first and last of them
    cols = np.bincount((inverse * width + np.arange(width)).ravel(), minlength=n * width).reshape(n, width) > 0
    rows = np.bincount((inverse * height + np.arange(height)[:, None]).ravel(),
                       minlength=n * height).reshape(n, height) > 0
    x0, x1 = cols.argmax(1), width - 1 - cols[:, ::-1].argmax(1)
    y0, y1 = rows.argmax(1), height - 1 - rows[:, ::-1].argmax(1)
    return [{"id": int(sid), "category_id": int(sid // LABEL_DIVISOR), "area": int(counts[i]),
             "bbox": [int(x0[i]), int(y0[i]), int(x1[i] - x0[i] + 1), int(y1[i] - y0[i] + 1)], "iscrowd": 0}
            for i, sid in enumerate(ids.tolist()) if sid != 0]


def write_panoptic_json(json_path: str | os.PathLike, images: list[dict], annotations: list[dict]) -> Path:
    """The COCO panoptic JSON of the PNGs written by `write_panoptic_prediction`, with the official categories."""
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    with open(json_path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": panoptic_categories()}, f)
    return json_path


class PanopticJsonWriter:
    """Collects panoptic predictions into the official format: ``add()`` writes one PNG, ``close()`` the JSON.
    Use as a context manager or call ``close()``."""

    def __init__(self, json_path: str | os.PathLike, png_dir: str | os.PathLike | None = None) -> None:
        self.json_path = Path(json_path)
        self.png_dir = Path(png_dir) if png_dir is not None else self.json_path.with_suffix("")
        self.png_dir.mkdir(parents=True, exist_ok=True)
        self.annotations: list[dict] = []
        self.images: list[dict] = []

    def add(self, image_name: str, panoptic) -> Path:
        image, annotation = write_panoptic_prediction(self.png_dir, image_name, panoptic)
        self.images.append(image)
        self.annotations.append(annotation)
        return self.png_dir / annotation["file_name"]

    def close(self) -> Path:
        return write_panoptic_json(self.json_path, self.images, self.annotations)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CityscapesExporter:
    """Writes prediction-contract dicts into every official format they allow, under ``out_root``:
    ``semantic/`` (``semantic``), ``instance/`` (``instances`` + ``segments``) and ``panoptic.json`` +
    ``panoptic/`` (``panoptic``)."""

    def __init__(self, out_root: str | os.PathLike) -> None:
        self.out_root = Path(out_root)
        self.semantic_dir = self.out_root / "semantic"
        self.instance_dir = self.out_root / "instance"
        self.panoptic_dir = self.out_root / "panoptic"
        self.panoptic_json = self.out_root / "panoptic.json"
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def write(self, image_name: str, prediction: Mapping) -> tuple[dict, dict] | None:
        """Write one image's files; returns its panoptic JSON entries (image, annotation), if it has a panoptic map."""
        write_semantic_prediction(self.semantic_dir, image_name, prediction["semantic"])
        if "instances" in prediction:
            segments = prediction["segments"]
            write_instance_prediction(self.instance_dir, image_name, prediction["instances"], segments["class"],
                                      segments["score"])
        if "panoptic" in prediction:
            return write_panoptic_prediction(self.panoptic_dir, image_name, prediction["panoptic"])
        return None

    def add(self, image_name: str, prediction: Mapping) -> None:
        """Write one image's files and keep its panoptic entries for ``close()``."""
        entries = self.write(image_name, prediction)
        if entries is not None:
            self.images.append(entries[0])
            self.annotations.append(entries[1])

    def close(self) -> None:
        if self.annotations:
            write_panoptic_json(self.panoptic_json, self.images, self.annotations)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
