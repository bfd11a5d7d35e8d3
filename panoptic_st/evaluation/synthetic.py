"""Synthetic Cityscapes-format scenes: ground truth and predictions for the evaluation tests and benchmarks.

`make_eval_fixture(root)` writes, in the official layouts:

- ground truth: ``gtFine/val/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png`` (uint8 label ids),
  ``..._gtFine_instanceIds.png`` (16-bit; things ``labelId*1000 + k`` with k from 0, crowd groups ``labelId``) and
  the panoptic GT made by the official ``createPanopticImgs.convert2panoptic``
  (``gtFine/cityscapes_panoptic_val.json`` + ``gtFine/cityscapes_panoptic_val/``);
- predictions (written here directly with PIL, independent of ``panoptic_st.evaluation.export``):
  ``results/semantic/{prefix}_pred.png`` (label ids), ``results/instance/{prefix}_pred.txt`` + mask PNGs,
  ``results/panoptic.json`` + ``results/panoptic/{prefix}_panoptic.png`` (id = R + 256 G + 256^2 B).

The scenes are random but cover the rules that matter: void and ignore-in-eval regions (including caravan and
trailer instances), crowd groups, tiny instances (< 100 px) and segments, classes that are in the GT but never
predicted (truck), predicted but never in the GT (train), in neither (terrain), overlapping and duplicate instance
masks, masks on void/groups, empty masks, non-thing and ignored labels in instance files, RGB mask files, tied
confidences, panoptic segment ids above 2^16, several segments of one stuff class, void (0) predictions.
Everything scales with the image size so the benchmarks can use the same generator at 2048x1024; ``things`` sets
how many thing segments each GT image gets. The official evaluators to compare with are in ``official``.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from panoptic_st.data.labels import LABEL_DIVISOR, LABEL_ID_TO_TRAIN_ID, label_ids_to_train_ids

__all__ = ["EvalFixture", "FixtureImage", "contract_panoptic", "make_eval_fixture", "to_contract", "write_panoptic_gt"]

CITIES = ("aachen", "bremen", "zurich")
STUFF_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 23)  # terrain (22) never appears anywhere
IGNORED_STUFF_IDS = (0, 1, 4, 5, 9, 10, 14, 15, 16, 18)
GT_THING_IDS = (24, 25, 26, 27, 28, 32, 33)  # train (31) never in the GT
IGNORED_THING_IDS = (29, 30)  # caravan, trailer: instances but ignored in evaluation
PRED_THING_IDS = (24, 25, 26, 28, 31, 32, 33)  # truck (27) never predicted, train (31) only predicted
EVAL_LABEL_IDS = frozenset(STUFF_IDS + (22,) + GT_THING_IDS + (31,))


@dataclass
class FixtureImage:
    """One generated image: its GT and predictions as arrays (the files hold the same)."""

    prefix: str
    city: str
    label_ids: np.ndarray  # GT, uint8 label ids
    instance_ids: np.ndarray  # GT, uint16 Cityscapes instanceIds
    pred_label_ids: np.ndarray  # predicted semantic label ids (may contain void ids)
    pred_panoptic: np.ndarray  # predicted panoptic segment ids (0 = void), int64
    pred_segments: dict[int, int]  # segment id -> label id
    pred_masks: list[np.ndarray] = field(default_factory=list)  # instance masks (bool HxW)
    pred_mask_labels: list[int] = field(default_factory=list)  # label id per mask
    pred_mask_scores: list[float] = field(default_factory=list)


@dataclass
class EvalFixture:
    """Where a generated fixture's files are, and its images."""

    root: Path
    gt_dir: Path
    panoptic_gt_json: Path
    panoptic_gt_dir: Path
    semantic_pred_dir: Path
    instance_pred_dir: Path
    panoptic_pred_json: Path
    panoptic_pred_dir: Path
    images: list[FixtureImage]


# --------------------------------------------------------------------------------------------------------------
# drawing helpers


def _rect(shape, rng, min_frac, max_frac):
    h, w = shape
    rh = max(1, int(h * rng.uniform(min_frac, max_frac)))
    rw = max(1, int(w * rng.uniform(min_frac, max_frac)))
    y0 = int(rng.integers(0, max(1, h - rh)))
    x0 = int(rng.integers(0, max(1, w - rw)))
    mask = np.zeros(shape, bool)
    mask[y0 : y0 + rh, x0 : x0 + rw] = True
    return mask


def _ellipse(shape, rng, min_frac, max_frac):
    h, w = shape
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry = max(1.0, h * rng.uniform(min_frac, max_frac) / 2)
    rx = max(1.0, w * rng.uniform(min_frac, max_frac) / 2)
    yy, xx = np.ogrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _blob(shape, rng, min_frac, max_frac):
    return (_rect if rng.random() < 0.5 else _ellipse)(shape, rng, min_frac, max_frac)


def _tiny(shape, rng, side_max=9):
    h, w = shape
    s0, s1 = int(rng.integers(2, side_max + 1)), int(rng.integers(2, side_max + 1))
    y0, x0 = int(rng.integers(0, h - s0)), int(rng.integers(0, w - s1))
    mask = np.zeros(shape, bool)
    mask[y0 : y0 + s0, x0 : x0 + s1] = True
    return mask


def _shift(a, rng, max_frac=0.03):
    h, w = a.shape[:2]
    dy = int(rng.integers(-max(1, int(h * max_frac)), max(1, int(h * max_frac)) + 1))
    dx = int(rng.integers(-max(1, int(w * max_frac)), max(1, int(w * max_frac)) + 1))
    return np.roll(a, (dy, dx), axis=(0, 1))


def _dilate(mask, r=1):
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)).astype(bool)


# --------------------------------------------------------------------------------------------------------------
# scenes


def _make_gt(shape, rng, things=(3, 12)):
    h, w = shape
    label = np.full(shape, 23, np.int64)  # sky
    label[int(h * 0.25) :] = 11  # building
    label[int(h * 0.6) :] = 7  # road
    label[int(h * 0.6) : int(h * 0.7), : int(w * rng.uniform(0.2, 0.6))] = 8  # sidewalk
    for _ in range(int(rng.integers(2, 6))):
        label[_blob(shape, rng, 0.05, 0.3)] = rng.choice(STUFF_IDS)
    for _ in range(int(rng.integers(1, 4))):  # poles: thin vertical stuff
        x = int(rng.integers(0, w - 2))
        label[int(h * rng.uniform(0.1, 0.4)) : int(h * 0.8), x : x + max(1, w // 128)] = 17
    for _ in range(int(rng.integers(1, 4))):  # void and ignore-in-eval regions
        label[_blob(shape, rng, 0.03, 0.2)] = rng.choice(IGNORED_STUFF_IDS)
    if rng.random() < 0.5:  # ego vehicle strip
        label[int(h * 0.92) :] = 1
    for _ in range(int(rng.integers(0, 3))):  # tiny stuff segments
        label[_tiny(shape, rng)] = rng.choice(STUFF_IDS)
    inst = label.copy()

    counts: dict[int, int] = {}
    n_things = int(rng.integers(*things))
    for _ in range(n_things):
        r = rng.random()
        if r < 0.1:
            lab = int(rng.choice(IGNORED_THING_IDS))
        else:
            lab = int(rng.choice(GT_THING_IDS))
        mask = _tiny(shape, rng) if rng.random() < 0.15 else _blob(shape, rng, 0.04, 0.22)
        if rng.random() < 0.12:  # crowd group: instanceIds = labelId
            inst[mask] = lab
        else:
            k = counts.get(lab, 0)
            counts[lab] = k + 1
            inst[mask] = lab * 1000 + k
        label[mask] = lab
    return label.astype(np.uint8), inst.astype(np.uint16)


def _make_predictions(label, inst, rng):
    shape = label.shape
    h = shape[0]
    # ---- semantic: shifted GT, truck -> car, random blobs (incl. train), some void predictions
    sem = _shift(label.astype(np.int64), rng)
    sem[sem == 27] = 26
    for _ in range(int(rng.integers(1, 5))):
        sem[_blob(shape, rng, 0.03, 0.2)] = rng.choice(STUFF_IDS + PRED_THING_IDS)
    for _ in range(int(rng.integers(0, 3))):
        sem[_blob(shape, rng, 0.02, 0.1)] = rng.choice((0, 9, 4))

    # ---- panoptic: start from shifted GT segments
    pan = _shift(inst.astype(np.int64), rng)
    seg_label = {}
    out = np.zeros(shape, np.int64)
    used: set[int] = {0}

    def new_id():
        while True:
            sid = int(rng.integers(1, 1 << 24)) if rng.random() < 0.5 else int(rng.integers(1, 1 << 16))
            if sid not in used:
                used.add(sid)
                return sid

    for gid in np.unique(pan):
        lab = int(gid) if gid < 1000 else int(gid) // 1000
        mask = pan == gid
        if lab == 27:
            lab = 26  # truck predicted as car
        if lab not in EVAL_LABEL_IDS:
            if rng.random() < 0.3:  # predict something on void
                lab = int(rng.choice(STUFF_IDS))
            else:
                continue  # void prediction
        r = rng.random()
        if lab in STUFF_IDS and r < 0.15 and mask.sum() > 20:  # split a stuff region into two segments
            ys = np.nonzero(mask.any(1))[0]
            cut = ys[len(ys) // 2]
            top = mask.copy()
            top[cut:] = False
            for part in (top, mask & ~top):
                if part.any():
                    sid = new_id()
                    out[part] = sid
                    seg_label[sid] = lab
            continue
        if lab in GT_THING_IDS + (31,):
            if r < 0.1:
                continue  # missed instance
            if r < 0.25:
                mask = _dilate(mask, max(1, h // 32))  # too large
            elif r < 0.35:
                mask = mask & _blob(shape, rng, 0.3, 0.9)  # partial
        sid = new_id()
        out[mask] = sid
        seg_label[sid] = lab
    for _ in range(int(rng.integers(0, 4))):  # extra segments, some tiny, some train
        lab = int(rng.choice(PRED_THING_IDS + STUFF_IDS))
        mask = _tiny(shape, rng) if rng.random() < 0.4 else _blob(shape, rng, 0.03, 0.15)
        sid = new_id()
        out[mask] = sid
        seg_label[sid] = lab
    if rng.random() < 0.5:  # some void prediction
        out[_blob(shape, rng, 0.02, 0.1)] = 0
    present = set(np.unique(out).tolist()) - {0}
    seg_label = {k: v for k, v in seg_label.items() if k in present}

    # ---- instance masks: thing segments of the panoptic prediction plus duplicates and oddities
    masks, labels, scores = [], [], []
    for sid, lab in seg_label.items():
        if lab in PRED_THING_IDS:
            masks.append(out == sid)
            labels.append(lab)
            scores.append(float(rng.choice([round(rng.random(), 1), rng.random()])))
    for _ in range(int(rng.integers(0, 3))):  # duplicates of GT instances (lower score, overlapping)
        ids = [int(i) for i in np.unique(inst) if i >= 1000 and i // 1000 in GT_THING_IDS]
        if ids:
            gid = int(rng.choice(ids))
            masks.append(_dilate(inst == gid, 1))
            labels.append(gid // 1000 if gid // 1000 != 27 else 26)
            scores.append(float(rng.random() * 0.5))
    groups = [int(i) for i in np.unique(inst) if i < 1000 and i in GT_THING_IDS]
    if groups:  # a mask on a crowd group
        g = int(rng.choice(groups))
        masks.append(inst == g)
        labels.append(
            g if g != 27 else 26
        )  # (a lone truck prediction on a truck group crashes the official AP)
        scores.append(float(rng.random()))
    void = np.isin(label, IGNORED_STUFF_IDS)
    if void.any():  # a mask mostly on void
        masks.append(void & _blob(shape, rng, 0.2, 0.6))
        labels.append(int(rng.choice(PRED_THING_IDS)))
        scores.append(float(rng.random()))
    masks.append(np.zeros(shape, bool))  # empty mask: skipped
    labels.append(26)
    scores.append(0.9)
    masks.append(_blob(shape, rng, 0.05, 0.2))  # stuff label: skipped
    labels.append(7)
    scores.append(0.8)
    masks.append(_blob(shape, rng, 0.05, 0.2))  # ignored instance class (caravan): skipped
    labels.append(29)
    scores.append(0.7)
    return sem.astype(np.uint8), out, seg_label, masks, labels, scores


# --------------------------------------------------------------------------------------------------------------
# writers


def _save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_panoptic_gt(gtfine_dir: Path) -> tuple[Path, Path]:
    """Run the official convert2panoptic on ``gtfine_dir/val`` (quietly); returns (json, png folder)."""
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    with contextlib.redirect_stdout(io.StringIO()):
        convert2panoptic(cityscapesPath=str(gtfine_dir), outputFolder=str(gtfine_dir), setNames=["val"])
    return gtfine_dir / "cityscapes_panoptic_val.json", gtfine_dir / "cityscapes_panoptic_val"


def make_eval_fixture(
    root: Path | str,
    n_images: int = 24,
    shape: tuple[int, int] = (64, 128),
    seed: int = 0,
    things: tuple[int, int] = (3, 12),
) -> EvalFixture:
    """Write ``n_images`` GT/prediction pairs under ``root`` (see the module docstring); each GT image gets
    ``things[0] <= n < things[1]`` thing segments."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    gt_dir = root / "gtFine" / "val"
    res = root / "results"
    sem_dir, inst_dir, pan_dir = res / "semantic", res / "instance", res / "panoptic"
    images: list[FixtureImage] = []
    annotations = []
    for i in range(n_images):
        city = CITIES[i % len(CITIES)]
        prefix = f"{city}_{i:06d}_{(7 * i + 19) % 1000000:06d}"
        label, inst = _make_gt(shape, rng, things)
        sem, pan, seg_label, masks, mlabels, mscores = _make_predictions(label, inst, rng)
        _save_png(gt_dir / city / f"{prefix}_gtFine_labelIds.png", label)
        _save_png(gt_dir / city / f"{prefix}_gtFine_instanceIds.png", inst)
        _save_png(sem_dir / city / f"{prefix}_pred.png", sem)

        rgb = np.stack([pan % 256, (pan // 256) % 256, pan // 65536], axis=-1).astype(np.uint8)
        _save_png(pan_dir / f"{prefix}_panoptic.png", rgb)
        annotations.append(
            {
                "image_id": prefix,
                "file_name": f"{prefix}_panoptic.png",
                "segments_info": [
                    {"id": int(sid), "category_id": int(lab), "iscrowd": 0} for sid, lab in seg_label.items()
                ],
            }
        )

        lines = []
        for k, (mask, lab, score) in enumerate(zip(masks, mlabels, mscores)):
            rel = f"masks/{prefix}_{k:03d}.png"
            m = mask.astype(np.uint8) * 255
            if k % 5 == 3:  # some masks as RGB, with dim pixels that PIL's "L" conversion turns to 0
                m = np.stack([m, m, m], axis=-1)
                m[_blob(shape, rng, 0.05, 0.3) & ~mask] = (1, 0, 0)
            _save_png(inst_dir / city / rel, m)
            lines.append(f"{rel} {lab} {score!r}\n")
        (inst_dir / city).mkdir(parents=True, exist_ok=True)
        (inst_dir / city / f"{prefix}_pred.txt").write_text("".join(lines))
        images.append(FixtureImage(prefix, city, label, inst, sem, pan, seg_label, masks, mlabels, mscores))

    pan_json = res / "panoptic.json"
    pan_json.write_text(json.dumps({"annotations": annotations}))
    gt_json, gt_pan_dir = write_panoptic_gt(root / "gtFine")
    return EvalFixture(root, gt_dir, gt_json, gt_pan_dir, sem_dir, inst_dir, pan_json, pan_dir, images)


# --------------------------------------------------------------------------------------------------------------
# the same data in the project's tensor contract


def contract_panoptic(im: FixtureImage) -> np.ndarray:
    """The predicted panoptic map of one fixture image in the project's contract (``trainId * 1000 + k``, k from 0
    per class, -1 void)."""
    pan = np.full(im.pred_panoptic.shape, -1, np.int64)
    count: dict[int, int] = {}
    for sid, lab in im.pred_segments.items():
        t = int(LABEL_ID_TO_TRAIN_ID[lab])
        k = count.get(t, 0)
        count[t] = k + 1
        pan[im.pred_panoptic == sid] = t * LABEL_DIVISOR + k
    return pan


def to_contract(im: FixtureImage) -> dict:
    """GT and predictions of one fixture image as the project's tensors (trainIds, ``class * 1000 + instance``).

    GT instance ids are ``k + 1`` for Cityscapes instance ``labelId * 1000 + k`` (0 = none or crowd group)."""
    import torch

    from panoptic_st.evaluation.panoptic import panoptic_from_semantic_instance

    ids = im.instance_ids.astype(np.int64)
    gt_label = np.where(ids < 1000, ids, ids // 1000)
    sem = torch.from_numpy(label_ids_to_train_ids(gt_label).astype(np.int64))
    inst = torch.from_numpy(np.where(ids >= 1000, ids % 1000 + 1, 0))
    return {
        "semantic": sem,
        "instance": inst,
        "panoptic": panoptic_from_semantic_instance(sem, inst),
        "pred_semantic": torch.from_numpy(label_ids_to_train_ids(im.pred_label_ids).astype(np.int64)),
        "pred_panoptic": torch.from_numpy(contract_panoptic(im)),
        "pred_masks": torch.from_numpy(np.stack(im.pred_masks)),
        "pred_labels": torch.from_numpy(LABEL_ID_TO_TRAIN_ID[np.array(im.pred_mask_labels)].astype(np.int64)),
        "pred_scores": torch.tensor(im.pred_mask_scores, dtype=torch.float64),
    }
