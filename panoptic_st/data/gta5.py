"""GTA5 reader: `images/NNNNN.png` with `labels/NNNNN.png` (Cityscapes label ids, 0 void); no instances."""

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
    read_indexed,
)
from panoptic_st.data.labels import VALID_LABEL_IDS, label_ids_to_train_ids

VALID_IDS = np.isin(np.arange(256), sorted(VALID_LABEL_IDS))


def find_samples(root: str | Path, split: str = "train") -> tuple[list[Sample], list[Problem]]:
    """Images listed in `{split}.txt` (when present, else all of `images/`) paired with `labels/`."""
    return find_flat_samples(root, split, "images", "labels")


def read_train_ids(path: Path) -> np.ndarray:
    """trainIds of a GTA5 label file, validated."""
    label_ids = read_indexed(path)
    check_label_format(label_ids, path, "a GTA5 label file", (8,))
    check_known_ids(label_ids, VALID_IDS, path)
    return label_ids_to_train_ids(label_ids)


def read_labels(sample: Sample, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """trainIds of the label file and an all-zero instance map."""
    semantic = read_train_ids(sample.label)
    check_same_size(image, semantic, sample.label, sample.image)
    return semantic, np.zeros(semantic.shape, dtype=np.int32)


class GTA5Dataset(SegmentationDataset):
    """GTA5 semantic labels mapped to trainIds; the instance map is all zeros."""

    domain = "gta5"
    has_instances = False

    find_samples = staticmethod(find_samples)
    read_labels = staticmethod(read_labels)
