"""Writers of the real on-disk formats: SYNTHIA RAND_CITYSCAPES, GTA5 and Cityscapes gtFine."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from cityscapesscripts.helpers.labels import labels as CS_LABELS
from PIL import Image

from panoptic_st.data.labels import (
    LABEL_DIVISOR,
    NUM_CLASSES,
    TRAIN_ID_TO_LABEL_ID,
    TRAIN_ID_TO_SYNTHIA,
    colorize,
    is_thing_label_id,
)
from panoptic_st.data.toy.scene import STATIC, TERRAIN, TRAIN, TRUCK, Scene

STATIC_LABEL_ID = 4
CITIES = {"train": ("aachen", "bremen", "zurich"), "val": ("frankfurt", "lindau", "munster")}


def _label_id_lut() -> np.ndarray:
    """Scene class -> Cityscapes label id."""
    lut = np.zeros(NUM_CLASSES + 1, np.uint8)
    lut[:NUM_CLASSES] = TRAIN_ID_TO_LABEL_ID
    lut[STATIC] = STATIC_LABEL_ID
    return lut


def _synthia_lut() -> np.ndarray:
    """Scene class -> Synthia class id, with the real quirk: terrain, truck and train are void (0)."""
    lut = np.array([TRAIN_ID_TO_SYNTHIA[c] for c in range(NUM_CLASSES)] + [0], np.uint16)
    lut[[TERRAIN, TRUCK, TRAIN]] = 0
    return lut


LABEL_ID_LUT = _label_id_lut()
SYNTHIA_LUT = _synthia_lut()


def _label_colours() -> np.ndarray:
    """Cityscapes colour of every label id, (256, 3) RGB (also the GTA5 label palette)."""
    table = np.zeros((256, 3), np.uint8)
    for lab in CS_LABELS:
        if lab.id >= 0:
            table[lab.id] = lab.color
    return table


LABEL_COLOURS = _label_colours()
LABEL_NAMES = {lab.id: lab.name for lab in CS_LABELS if lab.id >= 0}


def _imwrite(path: Path, img: np.ndarray) -> None:
    """cv2.imwrite that raises when the file is not written."""
    if not cv2.imwrite(str(path), img):
        raise OSError(f"{path}: could not write image")


def write_synthia(root: Path, index: int, scene: Scene, rgb: np.ndarray) -> None:
    """One SYNTHIA image: RGB, 16-bit label (class, instance) and colour label."""
    name = f"{index:07d}.png"
    label = np.zeros(scene.sem.shape + (3,), np.uint16)
    label[..., 2] = SYNTHIA_LUT[scene.sem]
    label[..., 1] = scene.inst
    train_ids = np.where(label[..., 2] > 0, scene.sem, 255).astype(np.uint8)
    _imwrite(root / "RGB" / name, rgb[..., ::-1])
    _imwrite(root / "GT" / "LABELS" / name, label)
    _imwrite(root / "GT" / "COLOR" / name, colorize(train_ids)[..., ::-1])


def write_gta(root: Path, index: int, scene: Scene, rgb: np.ndarray) -> None:
    """One GTA5 image and its palette label of Cityscapes label ids."""
    name = f"{index + 1:05d}.png"
    _imwrite(root / "images" / name, rgb[..., ::-1])
    label = Image.fromarray(LABEL_ID_LUT[scene.sem])
    label.putpalette(LABEL_COLOURS.ravel().tolist())
    label.save(root / "labels" / name)


def cityscapes_stem(split: str, index: int) -> tuple[str, str]:
    """(city, file stem) of toy Cityscapes image `index` of a split."""
    cities = CITIES[split]
    city = cities[index % len(cities)]
    return city, f"{city}_{index // len(cities):06d}_000019"


def _instance_ids(scene: Scene, label_ids: np.ndarray) -> np.ndarray:
    """Cityscapes instanceIds: labelId * 1000 + k per thing (k from 0 per class), labelId for stuff and crowd."""
    value = np.zeros(len(scene.things) + 1, np.int64)
    counts: dict[int, int] = {}
    for i, (cls, crowd) in enumerate(scene.things, start=1):
        if not crowd:
            lid = int(TRAIN_ID_TO_LABEL_ID[cls])
            value[i] = lid * LABEL_DIVISOR + counts.get(lid, 0)
            counts[lid] = counts.get(lid, 0) + 1
    per_pixel = value[scene.inst]
    return np.where(per_pixel > 0, per_pixel, label_ids).astype(np.uint16)


def _polygons(label_ids: np.ndarray, instance_ids: np.ndarray) -> dict:
    """Minimal gtFine polygons: one object per outer contour of every stuff region and thing instance."""
    objects = []
    for seg in np.unique(instance_ids):
        lid = int(seg) // LABEL_DIVISOR if seg >= LABEL_DIVISOR else int(seg)
        name = LABEL_NAMES[lid] + ("group" if seg < LABEL_DIVISOR and is_thing_label_id(lid) else "")
        contours, _ = cv2.findContours((instance_ids == seg).astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        objects += [{"label": name, "polygon": c.reshape(-1, 2).tolist()} for c in contours if len(c) >= 3]
    h, w = label_ids.shape
    return {"imgHeight": h, "imgWidth": w, "objects": objects}


def write_cityscapes(root: Path, split: str, index: int, scene: Scene, rgb: np.ndarray) -> None:
    """One Cityscapes image and its gtFine labelIds, instanceIds, colour and polygons."""
    city, stem = cityscapes_stem(split, index)
    gt = root / "gtFine" / split / city / stem
    label_ids = LABEL_ID_LUT[scene.sem]
    instance_ids = _instance_ids(scene, label_ids)
    colour = np.concatenate([LABEL_COLOURS[label_ids][..., ::-1], np.full(label_ids.shape + (1,), 255, np.uint8)],
                            axis=-1)
    _imwrite(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", rgb[..., ::-1])
    _imwrite(gt.with_name(f"{stem}_gtFine_labelIds.png"), label_ids)
    _imwrite(gt.with_name(f"{stem}_gtFine_instanceIds.png"), instance_ids)
    _imwrite(gt.with_name(f"{stem}_gtFine_color.png"), colour)
    gt.with_name(f"{stem}_gtFine_polygons.json").write_text(json.dumps(_polygons(label_ids, instance_ids)))
