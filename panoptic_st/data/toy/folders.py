"""The staging folder of a toy being written, its install into the output folder, the removal of old
toys."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from panoptic_st.data.toy.formats import CITIES
from panoptic_st.data.toy.metadata import README_TITLE

DATASET_FOLDERS = ("synthia", "gta5", "cityscapes")
LABEL_FOLDERS = ("GT", "labels", "gtFine")  # SYNTHIA's, GTA5's, Cityscapes'
STAGING = ".make-toy-partial"
# Listed, with every image, while a toy is being written: `data check` rejects an unfinished dataset folder.
UNFINISHED_ENTRY = "make-toy-did-not-finish.png\n"


def refuse_foreign(out: Path) -> None:
    """Refuse an output folder whose synthia/gta5/cityscapes folders are not an earlier toy benchmark."""
    readme = out / "README.md"
    is_toy = readme.is_file() and readme.read_text().startswith(README_TITLE)
    if any((out / p).exists() for p in DATASET_FOLDERS) and not is_toy:
        raise FileExistsError(f"{out}: holds synthia/gta5/cityscapes folders that are not a toy benchmark; "
                              "choose an empty output directory")


def make_folders(out: Path) -> None:
    """The empty folder tree of the three datasets."""
    for d in ("RGB", "GT/LABELS", "GT/COLOR"):
        (out / "synthia" / d).mkdir(parents=True, exist_ok=True)
    for d in ("images", "labels"):
        (out / "gta5" / d).mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        for city in CITIES[split]:
            (out / "cityscapes" / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
            (out / "cityscapes" / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)


def remove_toy(folder: Path) -> None:
    """Delete a toy folder (or one dataset of it) labels first: no moment of the deletion leaves images with all
    their labels but not all of the split's images, a dataset `data check` would accept."""
    datasets = [folder, *(p for p in folder.iterdir() if p.is_dir())] if folder.is_dir() else []
    for dataset in datasets:
        for labels in LABEL_FOLDERS:
            shutil.rmtree(dataset / labels, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)


def install(staged: Path, out: Path) -> None:
    """Move the complete toy from `staged` into `out`, replacing an earlier one: the README first (so `out` stays
    recognisably a toy), then each dataset folder by one rename; the replaced folders are deleted last."""
    os.replace(staged / "README.md", out / "README.md")
    for name in DATASET_FOLDERS:
        if (out / name).exists():
            os.replace(out / name, staged / f"replaced-{name}")
        os.replace(staged / name, out / name)
    remove_toy(staged)
