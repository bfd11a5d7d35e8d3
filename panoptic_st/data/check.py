"""`panoptic-st data check`: every defect of a dataset on disk, each with its path, and class statistics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from panoptic_st.data import cityscapes, gta5, synthia
from panoptic_st.data.dataset import DatasetError, Problem, Sample, read_rgb
from panoptic_st.data.labels import CLASS_NAMES, NUM_CLASSES

FinderFn = Callable[[Path, str], tuple[list[Sample], list[Problem]]]
ReaderFn = Callable[[Sample, np.ndarray], tuple[np.ndarray, np.ndarray]]

FORMATS: dict[str, tuple[FinderFn, ReaderFn, tuple[str, ...]]] = {
    "cityscapes": (cityscapes.find_samples, cityscapes.read_labels, ("train", "val")),
    "gta5": (gta5.find_samples, gta5.read_labels, ("train",)),
    "synthia": (synthia.find_samples, synthia.read_labels, ("train",)),
}


@dataclass
class CheckReport:
    """Problems found and per-class pixel statistics of the readable items."""

    root: Path
    fmt: str
    problems: list[Problem] = field(default_factory=list)
    items: int = 0
    class_pixels: np.ndarray = field(default_factory=lambda: np.zeros(NUM_CLASSES + 1, dtype=np.int64))
    class_images: np.ndarray = field(default_factory=lambda: np.zeros(NUM_CLASSES + 1, dtype=np.int64))

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """Problems first, then the statistics."""
        return "\n".join([*(str(p) for p in self.problems), self.statistics()])

    def statistics(self) -> str:
        """Counts and a per-class pixel-frequency table."""
        total = max(int(self.class_pixels.sum()), 1)
        lines = [f"{self.fmt} {self.root}: {self.items} items, {len(self.problems)} problem(s)"]
        lines.append(f"{'class':<16}{'pixels %':>10}{'images':>8}")
        for c, name in enumerate((*CLASS_NAMES, "ignore")):
            lines.append(f"{name:<16}{100.0 * self.class_pixels[c] / total:>10.3f}{self.class_images[c]:>8d}")
        return "\n".join(lines)


def _split_dir(root: Path, fmt: str, split: str) -> Path:
    return root / "leftImg8bit" / split if fmt == "cityscapes" else root


def check_dataset(root: str | Path, fmt: str, splits: tuple[str, ...] | None = None,
                  progress: bool = False) -> CheckReport:
    """Read every item of every split of a dataset and collect all defects."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format '{fmt}'; expected one of {sorted(FORMATS)}")
    root = Path(root)
    find, read_labels, default_splits = FORMATS[fmt]
    report = CheckReport(root, fmt)
    if not root.is_dir():
        report.problems.append(Problem("missing", root, "dataset root does not exist"))
        return report
    for split in splits or default_splits:
        samples, problems = find(root, split)
        report.problems.extend(problems)
        if not samples:
            report.problems.append(Problem("empty", _split_dir(root, fmt, split), f"split '{split}' has no images"))
        for sample in tqdm(samples, desc=f"checking {fmt} {split}", disable=not progress):
            _check_item(sample, read_labels, report)
    return report


def _check_item(sample: Sample, read_labels: ReaderFn, report: CheckReport) -> None:
    try:
        image = read_rgb(sample.image)
        semantic, _ = read_labels(sample, image)
    except DatasetError as err:
        path, _, detail = str(err).partition(": ")
        report.problems.append(Problem(_kind(detail), Path(path), detail))
        return
    counts = np.bincount(np.minimum(semantic, NUM_CLASSES).ravel(), minlength=NUM_CLASSES + 1)
    report.class_pixels += counts
    report.class_images += counts > 0
    report.items += 1


def _kind(detail: str) -> str:
    for key, kind in (("unreadable", "unreadable"), ("size", "size"), ("unknown label", "unknown-id"),
                      ("-bit with", "format")):
        if key in detail:
            return kind
    return "invalid"


def check_or_raise(root: str | Path, fmt: str, splits: tuple[str, ...]) -> CheckReport:
    """Full check before training; raises one clear DatasetError listing the first defects."""
    report = check_dataset(root, fmt, splits)
    if not report.ok:
        listed = "; ".join(str(p) for p in report.problems[:3])
        raise DatasetError(f"{fmt} {root}: {len(report.problems)} problem(s): {listed} "
                           f"(run `panoptic-st data check {root} --format {fmt}`)")
    return report
