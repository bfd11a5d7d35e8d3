"""Class tables and evaluation protocols, derived from `cityscapesscripts.helpers.labels`.

Everything here is computed from the official Cityscapes label table; nothing is hand-copied except the
Synthia class-id map, which has no official Python table.
"""

from __future__ import annotations

import numpy as np
from cityscapesscripts.helpers.labels import Label, id2label, labels

IGNORE_INDEX = 255
LABEL_DIVISOR = 1000

TRAIN_LABELS: tuple[Label, ...] = tuple(
    sorted((lab for lab in labels if 0 <= lab.trainId < IGNORE_INDEX), key=lambda lab: lab.trainId)
)
NUM_CLASSES = len(TRAIN_LABELS)
CLASS_NAMES: tuple[str, ...] = tuple(lab.name for lab in TRAIN_LABELS)
TRAIN_ID_TO_LABEL_ID: tuple[int, ...] = tuple(lab.id for lab in TRAIN_LABELS)

THING_TRAIN_IDS: tuple[int, ...] = tuple(lab.trainId for lab in TRAIN_LABELS if lab.hasInstances)
STUFF_TRAIN_IDS: tuple[int, ...] = tuple(lab.trainId for lab in TRAIN_LABELS if not lab.hasInstances)

PALETTE: np.ndarray = np.array([lab.color for lab in TRAIN_LABELS], dtype=np.uint8)
"""Cityscapes colour of each trainId, shape (19, 3), RGB."""


def train_id(name: str) -> int:
    """trainId of a Cityscapes class name."""
    return CLASS_NAMES.index(name)


PROTOCOLS: dict[int, tuple[int, ...]] = {
    19: tuple(range(NUM_CLASSES)),
    16: tuple(c for c in range(NUM_CLASSES) if CLASS_NAMES[c] not in ("terrain", "truck", "train")),
    13: tuple(
        c
        for c in range(NUM_CLASSES)
        if CLASS_NAMES[c] not in ("terrain", "truck", "train", "wall", "fence", "pole")
    ),
}
"""trainIds averaged under the 19-, 16- (Synthia) and 13-class protocols; the network stays 19-way."""

THING_CATEGORIES: dict[str, tuple[int, ...]] = {
    "auto": tuple(train_id(n) for n in ("car", "bus", "truck", "train")),
    "human": tuple(train_id(n) for n in ("person", "rider")),
    "bike": tuple(train_id(n) for n in ("bicycle", "motorcycle")),
}
"""Thing categories of the thesis's per-category instance workflows (BASE, CCM)."""

SYNTHIA_TO_TRAIN_ID: dict[int, int] = {
    3: train_id("road"),
    4: train_id("sidewalk"),
    2: train_id("building"),
    21: train_id("wall"),
    5: train_id("fence"),
    7: train_id("pole"),
    15: train_id("traffic light"),
    9: train_id("traffic sign"),
    6: train_id("vegetation"),
    16: train_id("terrain"),
    1: train_id("sky"),
    10: train_id("person"),
    17: train_id("rider"),
    8: train_id("car"),
    18: train_id("truck"),
    19: train_id("bus"),
    20: train_id("train"),
    12: train_id("motorcycle"),
    11: train_id("bicycle"),
}
"""SYNTHIA RAND_CITYSCAPES class id -> trainId; every other id (0 void, 13, 14, 22) maps to ignore."""

SYNTHIA_MAX_ID = 22
TRAIN_ID_TO_SYNTHIA: dict[int, int] = {t: s for s, t in SYNTHIA_TO_TRAIN_ID.items()}


def _lookup(mapping: dict[int, int], size: int) -> np.ndarray:
    table = np.full(size, IGNORE_INDEX, dtype=np.uint8)
    for src, dst in mapping.items():
        table[src] = dst
    return table


LABEL_ID_TO_TRAIN_ID: np.ndarray = _lookup(
    {lab.id: lab.trainId for lab in labels if 0 <= lab.trainId < IGNORE_INDEX}, 256
)
"""Lookup table uint8[256]: Cityscapes/GTA5 label id -> trainId (255 for void and unused ids)."""

SYNTHIA_ID_TO_TRAIN_ID: np.ndarray = _lookup(SYNTHIA_TO_TRAIN_ID, 65536)
"""Lookup table uint8[65536]: Synthia class id (16-bit) -> trainId."""

VALID_LABEL_IDS: frozenset[int] = frozenset(lab.id for lab in labels if lab.id >= 0)
VALID_SYNTHIA_IDS: frozenset[int] = frozenset(range(SYNTHIA_MAX_ID + 1))


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map a Cityscapes/GTA5 label-id map to trainIds (unknown ids become 255)."""
    return LABEL_ID_TO_TRAIN_ID[label_ids]


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """RGB image (H, W, 3) of a trainId map in the Cityscapes palette; ignore is black."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[:NUM_CLASSES] = PALETTE
    return table[train_ids]


def is_thing_label_id(label_id: int) -> bool:
    """Whether a Cityscapes label id is an evaluated thing class."""
    lab = id2label.get(label_id)
    return bool(lab is not None and lab.hasInstances and not lab.ignoreInEval)
