"""Shared machinery of the dataset readers: file pairing, decoding with clear errors, the item contract.

An item is a dict: `image` float tensor 3xHxW in [0, 1] (networks normalise internally), `semantic` long HxW in
trainIds (255 ignore), `instance` long HxW (0 = none, else a per-image id), `meta` (file names, domain).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from panoptic_st.errors import DatasetError

Transform = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Sample:
    """One image and the label files that belong to it."""

    name: str
    image: Path
    label: Path
    instance: Path | None = None


@dataclass(frozen=True)
class Problem:
    """One defect found in a dataset."""

    kind: str
    path: Path
    detail: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.path}: {self.detail}"


def read_rgb(path: Path) -> np.ndarray:
    """An 8-bit RGB image as HxWx3 uint8."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"{path}: unreadable or truncated image")
    return np.ascontiguousarray(img[..., ::-1])


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image, from its header."""
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except (OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"{path}: unreadable or truncated image ({err})") from None


def read_unchanged(path: Path) -> np.ndarray:
    """A PNG with its stored depth and channels (OpenCV; needed for 16-bit multi-channel labels)."""
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise DatasetError(f"{path}: unreadable or truncated label file")
    return arr


def read_indexed(path: Path) -> np.ndarray:
    """A single-channel or palette PNG as its stored indices (PIL; OpenCV would expand palettes to colour)."""
    try:
        with Image.open(path) as img:
            arr = np.array(img)
    except (OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"{path}: unreadable or truncated label file ({err})") from None
    return arr


def bit_depth(label: np.ndarray) -> int:
    """Bits per channel of a decoded label array (1 for a bilevel PNG)."""
    return 1 if label.dtype == np.bool_ else label.dtype.itemsize * 8


def check_label_format(label: np.ndarray, path: Path, what: str, depths: tuple[int, ...],
                       channels: tuple[int, ...] = (1,)) -> None:
    """Raise unless a decoded label PNG has one of the bit depths and channel counts its format stores."""
    found = 1 if label.ndim == 2 else label.shape[-1]
    if bit_depth(label) in depths and found in channels and label.dtype.kind in "uib":
        return
    raise DatasetError(f"{path}: {what} must be {'/'.join(map(str, depths))}-bit with {'/'.join(map(str, channels))} "
                       f"channel(s), got {bit_depth(label)}-bit with {found} channel(s)")


def check_same_size(image: np.ndarray, label: np.ndarray, label_path: Path, image_path: Path) -> None:
    """Raise if an image and its label map differ in size."""
    if image.shape[:2] != label.shape[:2]:
        raise DatasetError(
            f"{label_path}: size {label.shape[1]}x{label.shape[0]} does not match image "
            f"{image_path.name} {image.shape[1]}x{image.shape[0]}"
        )


def check_known_ids(ids: np.ndarray, valid: np.ndarray, path: Path) -> None:
    """Raise if a label map holds ids outside the boolean lookup `valid`."""
    bad = ids >= len(valid)
    if not bad.any():
        bad = ~valid[ids]
    if bad.any():
        unknown = np.unique(ids[bad])[:10].tolist()
        raise DatasetError(f"{path}: unknown label ids {unknown}")


def pair_files(
    images: list[Path], labels: list[Path], label_of: Callable[[Path], Path], image_of: Callable[[Path], Path]
) -> tuple[list[tuple[Path, Path]], list[Problem]]:
    """Match images with labels both ways; every unmatched file is a `missing` problem."""
    label_set, image_set = set(labels), set(images)
    pairs, problems = [], []
    for img in images:
        if not labels and not img.is_file():
            problems.append(Problem("missing", img, "image listed in the split file is missing"))
            continue
        lab = label_of(img)
        if lab in label_set or (not labels and lab.is_file()):
            pairs.append((img, lab))
        else:
            problems.append(Problem("missing", lab, f"label file for image {img.name} is missing"))
    for lab in labels:
        img = image_of(lab)
        if img not in image_set:
            problems.append(Problem("missing", img, f"image for label file {lab.name} is missing"))
    return pairs, problems


def read_split_file(path: Path, root: Path) -> list[Path]:
    """Image paths listed one per line (relative to the dataset root), as the public code's split files; a path
    outside the root or text that is not UTF-8 is refused."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    inside = os.path.abspath(root)
    images = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name = line.split()[0]
        if os.path.commonpath([inside, os.path.abspath(root / name)]) != inside:
            raise DatasetError(f"{path}: line {number} names {name}, outside the dataset root {root}")
        images.append(root / name)
    return images


def split_images(root: Path, split: str, scan: Callable[[], tuple[list[Path], list[Path]]]
                 ) -> tuple[list[Path], list[Path]]:
    """(images, labels) of a split: from `{split}.txt` when present (labels then found per image), else `scan()`."""
    split_file = root / f"{split}.txt"
    if split_file.is_file():
        return read_split_file(split_file, root), []
    return scan()


def find_flat_samples(root: str | Path, split: str, image_dir: str, label_dir: str
                      ) -> tuple[list[Sample], list[Problem]]:
    """Samples of a dataset whose images and labels share file names in two folders (GTA5, SYNTHIA)."""
    root = Path(root)
    images, labels = split_images(root, split, lambda: (sorted((root / image_dir).glob("*.png")),
                                                        sorted((root / label_dir).glob("*.png"))))
    pairs, problems = pair_files(images, labels, lambda p: root / label_dir / p.name, lambda p: root / image_dir / p.name)
    return [Sample(img.stem, img, lab) for img, lab in pairs], problems


def to_item(image: np.ndarray, semantic: np.ndarray, instance: np.ndarray, meta: dict) -> dict:
    """Numpy arrays -> the item contract."""
    return {
        "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0),
        "semantic": torch.from_numpy(np.ascontiguousarray(semantic)).long(),
        "instance": torch.from_numpy(np.ascontiguousarray(instance)).long(),
        "meta": meta,
    }


class SegmentationDataset(Dataset):
    """Base reader: subclasses set `domain`, `has_instances`, `find_samples` and `read_labels`."""

    domain: str = ""
    has_instances: bool = True

    def __init__(self, root: str | Path, split: str = "train", transform: Transform | None = None,
                 max_items: int | None = None, samples: list[Sample] | None = None) -> None:
        problems: list[Problem] = []
        if samples is None:
            samples, problems = self.find_samples(root, split)
        source = f"{self.domain} {root} [{split}]"
        if problems:
            listed = "; ".join(str(p) for p in problems[:3])
            more = f" (and {len(problems) - 3} more; run `panoptic-st data check`)" if len(problems) > 3 else ""
            raise DatasetError(f"{source}: {len(problems)} problem(s): {listed}{more}")
        if not samples:
            raise DatasetError(f"{source}: no images found (empty split)")
        self.samples = samples[:max_items] if max_items else samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def names(self) -> list[str]:
        """Each item's `meta.name`, in order."""
        return [sample.name for sample in self.samples]

    @staticmethod
    def find_samples(root: str | Path, split: str) -> tuple[list[Sample], list[Problem]]:
        """Samples of a split and every pairing problem found."""
        raise NotImplementedError

    @staticmethod
    def read_labels(sample: Sample, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Semantic trainIds (uint8) and instance ids (int32) of a sample, validated against the image."""
        raise NotImplementedError

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decoded image, semantic and instance maps of one sample, before any transform."""
        sample = self.samples[index]
        image = read_rgb(sample.image)
        semantic, instance = self.read_labels(sample, image)
        return image, semantic, instance

    def __getitem__(self, index: int) -> dict:
        image, semantic, instance = self.load(index)
        if self.transform is not None:
            image, semantic, instance = self.transform(image, semantic, instance)
        sample = self.samples[index]
        meta = {"name": sample.name, "image_path": str(sample.image), "domain": self.domain}
        return to_item(image, semantic, instance, meta)


def channel_statistics(dataset: Dataset, max_images: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of the [0, 1] images of up to `max_images` evenly spaced items."""
    step = max(1, len(dataset) // max_images)
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    count = 0
    for index in range(0, len(dataset), step)[:max_images]:
        image = dataset[index]["image"].double().flatten(1)
        total += image.sum(1)
        squares += (image**2).sum(1)
        count += image.shape[1]
    mean = total / count
    return mean.float(), (squares / count - mean**2).clamp_min(1e-12).sqrt().float()
