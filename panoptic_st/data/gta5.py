"""GTA5 reader: `images/NNNNN.png` with `labels/NNNNN.png` (Cityscapes label ids, 0 void); no instances."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from panoptic_st.data.dataset import (
    Problem, Sample, SegmentationDataset, Transform, check_known_ids, check_same_size, pair_files, read_indexed, read_split_file,
)
from panoptic_st.data.labels import VALID_LABEL_IDS, label_ids_to_train_ids

VALID_IDS = np.isin(np.arange(256), sorted(VALID_LABEL_IDS))


def find_samples(root: str | Path, split: str = "train") -> tuple[list[Sample], list[Problem]]:
    """Images listed in `{split}.txt` (when present, else all of `images/`) paired with `labels/`."""
    root = Path(root)
    split_file = root / f"{split}.txt"
    if split_file.is_file():
        images, labels = read_split_file(split_file, root), []
    else:
        images, labels = sorted((root / "images").glob("*.png")), sorted((root / "labels").glob("*.png"))
    pairs, problems = pair_files(
        images, labels, lambda p: root / "labels" / p.name, lambda p: root / "images" / p.name
    )
    return [Sample(img.stem, img, lab) for img, lab in pairs], problems


def read_train_ids(path: Path) -> np.ndarray:
    """trainIds of a GTA5 label file, validated."""
    label_ids = read_indexed(path)
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

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 max_items: int | None = None, samples: list[Sample] | None = None) -> None:
        found, problems = (samples, []) if samples is not None else find_samples(root, split)
        super().__init__(found, problems, f"gta5 {root} [{split}]", transform, max_items)

    read_labels = staticmethod(read_labels)
