"""Cityscapes reader: `leftImg8bit/{split}/{city}/*_leftImg8bit.png` with `gtFine` labelIds and instanceIds."""

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
    pair_files,
    read_indexed,
    read_unchanged,
    split_images,
)
from panoptic_st.data.labels import LABEL_DIVISOR, VALID_LABEL_IDS, label_ids_to_train_ids

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
VALID_IDS = np.isin(np.arange(256), sorted(VALID_LABEL_IDS))


def frame_name(image: Path) -> str:
    """`{city}_{seq}_{frame}` of a Cityscapes file."""
    return image.name[: -len(IMAGE_SUFFIX)]


def label_path(root: Path, image: Path, suffix: str = LABEL_SUFFIX) -> Path:
    """gtFine file of an image: same split and city folder, `_gtFine_*` suffix."""
    rel = image.relative_to(root / "leftImg8bit")
    return root / "gtFine" / rel.parent / f"{frame_name(image)}{suffix}"


def image_path(root: Path, label: Path) -> Path:
    """leftImg8bit image of a gtFine label file."""
    rel = label.relative_to(root / "gtFine")
    return root / "leftImg8bit" / rel.parent / (label.name[: -len(LABEL_SUFFIX)] + IMAGE_SUFFIX)


def find_samples(root: str | Path, split: str) -> tuple[list[Sample], list[Problem]]:
    """Images of a split (from `{split}.txt` when present, else the city folders) paired with their labels."""
    root = Path(root)
    images, labels = split_images(root, split, lambda: (
        sorted((root / "leftImg8bit" / split).glob(f"*/*{IMAGE_SUFFIX}")),
        sorted((root / "gtFine" / split).glob(f"*/*{LABEL_SUFFIX}"))))
    misplaced = [img for img in images if not img.is_relative_to(root / "leftImg8bit")]
    images = [img for img in images if img not in misplaced]
    pairs, problems = pair_files(images, labels, lambda p: label_path(root, p), lambda p: image_path(root, p))
    problems += [Problem("invalid", img, f"listed in {split}.txt but not under {root / 'leftImg8bit'}")
                 for img in misplaced]
    samples = []
    for img, lab in pairs:
        inst = label_path(root, img, INSTANCE_SUFFIX)
        if not inst.is_file():
            problems.append(Problem("missing", inst, f"instance file for image {img.name} is missing"))
            continue
        samples.append(Sample(frame_name(img), img, lab, inst))
    return samples, problems


def read_labels(sample: Sample, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """trainIds from labelIds; instance ids 1..N from instanceIds (stuff and crowd groups become 0)."""
    label_ids = read_indexed(sample.label)
    check_label_format(label_ids, sample.label, "a Cityscapes labelIds file", (8,))
    check_same_size(image, label_ids, sample.label, sample.image)
    check_known_ids(label_ids, VALID_IDS, sample.label)
    instance_ids = read_unchanged(sample.instance)
    check_label_format(instance_ids, sample.instance, "a Cityscapes instanceIds file", (16, 32))
    check_same_size(image, instance_ids, sample.instance, sample.image)
    return label_ids_to_train_ids(label_ids), consecutive_instances(instance_ids.astype(np.int32))


def consecutive_instances(instance_ids: np.ndarray) -> np.ndarray:
    """Per-image instance ids 1..N for the `labelId * 1000 + k` segments; stuff and crowd groups become 0."""
    things = instance_ids >= LABEL_DIVISOR
    instance = np.zeros(instance_ids.shape, dtype=np.int32)
    if things.any():
        instance[things] = np.unique(instance_ids[things], return_inverse=True)[1].ravel() + 1
    return instance


class CityscapesDataset(SegmentationDataset):
    """Cityscapes fine annotations: trainIds from labelIds, instances 1..N from instanceIds (crowd -> 0)."""

    domain = "cityscapes"
    has_instances = True

    find_samples = staticmethod(find_samples)
    read_labels = staticmethod(read_labels)
