"""The thesis's Mixed source: SYNTHIA plus the GTA5 images whose labels contain both truck and train.

SYNTHIA has no semantic truck/train labels, so the GTA5 images with both classes fill the gap. They are found by
scanning the GTA5 labels once; the result is cached as a split file (one image path per line) and reused.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from torch.utils.data import ConcatDataset
from tqdm import tqdm

from panoptic_st.data import gta5
from panoptic_st.data.dataset import DatasetError, Sample, Transform, read_split_file
from panoptic_st.data.gta5 import GTA5Dataset
from panoptic_st.data.labels import train_id
from panoptic_st.data.synthia import SynthiaDataset

REQUIRED_CLASSES = (train_id("truck"), train_id("train"))
SPLIT_NAME = "mixed_truck_train.txt"


def has_all_classes(semantic: np.ndarray, classes: tuple[int, ...] = REQUIRED_CLASSES) -> bool:
    """Whether every class of `classes` occurs in a trainId map."""
    present = np.bincount(semantic.ravel(), minlength=256)
    return all(present[c] > 0 for c in classes)


def default_cache_file(gta5_root: Path) -> Path:
    """`<gta5_root>/mixed_truck_train.txt`, unless that root is read-only (as shared dataset copies often are) and
    holds no such file: then a file named after the root under `$XDG_CACHE_HOME/panoptic_st` (~/.cache)."""
    beside = gta5_root / SPLIT_NAME
    if beside.is_file() or os.access(gta5_root, os.W_OK):
        return beside
    digest = hashlib.sha1(str(gta5_root.resolve()).encode()).hexdigest()[:12]
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache_home / "panoptic_st" / f"gta5_{digest}_{SPLIT_NAME}"


def gta5_truck_train_split(gta5_root: str | Path, cache_file: str | Path | None = None,
                           progress: bool = True) -> Path:
    """Split file of the GTA5 images containing truck and train, computed once and cached (`default_cache_file`)."""
    root = Path(gta5_root)
    cache = Path(cache_file) if cache_file else default_cache_file(root)
    if cache.is_file():
        return cache
    samples, problems = gta5.find_samples(root, "train")
    if problems:
        raise DatasetError(f"gta5 {root}: {problems[0]} (run `panoptic-st data check`)")
    selected = [
        s.image.relative_to(root).as_posix()
        for s in tqdm(samples, desc="scanning GTA5 labels for truck+train", disable=not progress)
        if has_all_classes(gta5.read_train_ids(s.label))
    ]
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text("".join(f"{line}\n" for line in selected))
    tmp.replace(cache)
    return cache


def build_mixed(synthia_root: str | Path, gta5_root: str | Path, transform: Transform | None = None,
                cache_file: str | Path | None = None, max_items: int | None = None) -> ConcatDataset:
    """SYNTHIA train + GTA5 truck-and-train images, each part returning the common item contract."""
    split = gta5_truck_train_split(gta5_root, cache_file)
    gta_root = Path(gta5_root)
    images = read_split_file(split, gta_root)
    if not images:
        raise DatasetError(f"{split}: no GTA5 image contains both truck and train")
    samples = [Sample(p.stem, p, gta_root / "labels" / p.name) for p in images]
    parts = [SynthiaDataset(synthia_root, "train", transform, max_items),
             GTA5Dataset(gta_root, "train", transform, max_items, samples=samples)]
    return ConcatDataset(parts)
