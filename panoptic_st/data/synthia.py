"""SYNTHIA RAND_CITYSCAPES reader: `RGB/` with 16-bit multi-channel `GT/LABELS/` (class in R, instance in G)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from panoptic_st.data.dataset import (
    Problem,
    Sample,
    SegmentationDataset,
    check_known_ids,
    check_label_format,
    check_same_size,
    find_flat_samples,
    read_unchanged,
)
from panoptic_st.data.labels import SYNTHIA_ID_TO_TRAIN_ID, VALID_SYNTHIA_IDS

VALID_IDS = np.isin(np.arange(max(VALID_SYNTHIA_IDS) + 1), sorted(VALID_SYNTHIA_IDS))


def find_samples(root: str | Path, split: str = "train") -> tuple[list[Sample], list[Problem]]:
    """Images listed in `{split}.txt` (when present, else all of `RGB/`) paired with `GT/LABELS/`."""
    return find_flat_samples(root, split, "RGB", "GT/LABELS")


def decode_synthia_label(label: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(trainIds, instance ids) of a label array as OpenCV reads it: [B, G, R] = [-, instance, class]."""
    check_label_format(label, path, "a SYNTHIA label file", (16,), (3, 4))
    class_ids = label[..., 2]
    check_known_ids(class_ids, VALID_IDS, path)
    return SYNTHIA_ID_TO_TRAIN_ID[class_ids], label[..., 1].astype(np.int32)


def read_labels(sample: Sample, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """trainIds and instance ids of a 16-bit multi-channel SYNTHIA label file."""
    label = read_unchanged(sample.label)
    check_same_size(image, label, sample.label, sample.image)
    return decode_synthia_label(label, sample.label)


class SynthiaDataset(SegmentationDataset):
    """SYNTHIA: class ids mapped to trainIds; instance ids kept (truck/train carry ids but no class)."""

    domain = "synthia"
    has_instances = True

    find_samples = staticmethod(find_samples)
    read_labels = staticmethod(read_labels)
