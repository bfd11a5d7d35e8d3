"""Reading and checking the inputs of the file-based panoptic evaluator (COCO panoptic JSON + PNG folders).

Malformed input raises :class:`EvaluationInputError` with the official script's message where it has one
(``KeyError``/``Exception`` there); where the official script trusts its input (GT areas, GT categories, GT PNG ids
missing from the GT JSON) it is checked here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from panoptic_st.errors import EvaluationInputError
from panoptic_st.evaluation.files import read_json

__all__ = ["PanopticInputs", "read_panoptic_inputs"]


@dataclass
class PanopticInputs:
    """The checked JSON side of an evaluation: categories (in GT order) and the (GT, prediction) annotation pairs."""

    gt_json: Path
    pred_json: Path
    gt_dir: Path
    pred_dir: Path
    categories: dict
    pairs: list[tuple[Mapping, Mapping]]

    @property
    def category_index(self) -> dict:
        """Category id -> index in the GT order."""
        return {cid: k for k, cid in enumerate(self.categories)}


def read_panoptic_inputs(gt_json: Path, gt_dir: Path, pred_json: Path, pred_dir: Path) -> PanopticInputs:
    """Both JSON files read and checked, the folders checked, each GT annotation paired with its prediction."""
    gt, pred = read_json(gt_json), read_json(pred_json)
    for path, data in ((gt_json, gt), (pred_json, pred)):
        _check_annotation_list(path, data)
    if not isinstance(gt.get("categories"), list) or not all(
        isinstance(c, Mapping) and isinstance(c.get("id"), int) for c in gt["categories"]
    ):
        raise EvaluationInputError(f"{gt_json}: no 'categories' list of objects with an integer 'id'")
    for folder, what in ((gt_dir, "ground truth"), (pred_dir, "predicted")):
        if not folder.is_dir():
            raise EvaluationInputError(f"Folder {folder} with {what} segmentations doesn't exist")
    categories = {c["id"]: c for c in gt["categories"]}
    return PanopticInputs(gt_json, pred_json, gt_dir, pred_dir, categories, _pair_annotations(gt, pred, pred_json))


def _check_annotation_list(path: Path, data: dict) -> None:
    if not isinstance(data.get("annotations"), list):
        raise EvaluationInputError(f"{path}: no 'annotations' list")
    if not all(isinstance(ann, Mapping) for ann in data["annotations"]):
        raise EvaluationInputError(f"{path}: every entry of 'annotations' must be an object")


def _pair_annotations(gt: dict, pred: dict, pred_json: Path) -> list[tuple[Mapping, Mapping]]:
    """(GT annotation, predicted annotation) per GT image, in the GT order."""
    pred_by_image: dict = {}
    for ann in pred["annotations"]:
        image_id = ann.get("image_id")
        if image_id in pred_by_image:
            raise EvaluationInputError(f"{pred_json}: duplicate annotation for image {image_id!r}")
        pred_by_image[image_id] = ann
    pairs = []
    for gt_ann in gt["annotations"]:
        if gt_ann.get("image_id") not in pred_by_image:
            raise EvaluationInputError(f"{pred_json}: no prediction for the image with id: {gt_ann.get('image_id')}")
        pairs.append((gt_ann, pred_by_image[gt_ann["image_id"]]))
    return pairs


def segments_of(ann: Mapping, json_path: Path, what: str) -> list[Mapping]:
    """The ``segments_info`` of an annotation, with valid (1..2^24-1) and unique segment ids."""
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
        raise EvaluationInputError(f"{json_path}: image {ann.get('image_id')!r} has duplicate {what} segment ids {dup}")
    return segs


def file_name_of(ann: Mapping, json_path: Path) -> str:
    """The PNG file name of an annotation."""
    name = ann.get("file_name")
    if not isinstance(name, str) or not name:
        raise EvaluationInputError(f"{json_path}: image {ann.get('image_id')!r} has no file_name")
    return name


def categories_of(segs: list[Mapping], cat_index: Mapping, json_path: Path, image_id) -> np.ndarray:
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


def check_listed(run: np.ndarray, index: np.ndarray, unlisted: int, png: Path, json_path: Path, image_id) -> None:
    """Raise if a PNG holds a segment id its JSON does not list (the official script raises it for predictions
    and counts such GT pixels as neither void nor segment)."""
    if (index == unlisted).any():
        sid = int(run[index == unlisted][0])
        raise EvaluationInputError(
            f"{png}: In the image with ID {image_id} segment with ID {sid} is presented in PNG and not presented "
            f"in JSON ({json_path})"
        )


def check_present(pred_ids: np.ndarray, pred_area: np.ndarray, png: Path, json_path: Path, image_id) -> None:
    """Raise if a predicted segment listed in the JSON has no pixel in its PNG (as the official script does)."""
    if (pred_area == 0).any():
        missing = pred_ids[pred_area == 0][:5].tolist()
        raise EvaluationInputError(
            f"{json_path}: In the image with ID {image_id} the following segment IDs {missing} are presented in "
            f"JSON and not presented in PNG ({png.name})"
        )


def check_areas(segs: list[Mapping], counted: np.ndarray, json_path: Path, png: Path, image_id) -> None:
    """Raise if a GT segment's ``area`` differs from its pixel count in the PNG (the official script trusts it)."""
    for s, n in zip(segs, counted.tolist()):
        area = s.get("area", n)
        if area != n:
            raise EvaluationInputError(
                f"{json_path}: In the image with ID {image_id} segment with ID {s['id']} has area {area!r} but "
                f"{n} pixels in {png.name}"
            )
