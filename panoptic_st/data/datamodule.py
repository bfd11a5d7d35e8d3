"""One LightningDataModule for every stage: source(s), target, source-mixing ratio, validation on the target."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from panoptic_st.config import DATASET_NAMES, ConfigError, DataConfig
from panoptic_st.data.check import check_or_raise
from panoptic_st.data.cityscapes import CityscapesDataset
from panoptic_st.data.dataset import DatasetError, Transform, image_size
from panoptic_st.data.gta5 import GTA5Dataset
from panoptic_st.data.mixed import build_mixed
from panoptic_st.data.sampling import SeededSamples, StepBatchSampler
from panoptic_st.data.synthia import SynthiaDataset
from panoptic_st.data.transforms import (
    Pipeline,
    eval_transform,
    source_train_transform,
    target_train_transform,
)

Mode = Literal["source", "adapt", "target"]


DATA_ROOT_VARIABLE = "PANOPTIC_ST_DATA"


def check_root(cfg: DataConfig, name: str) -> None:
    """A dataset root that is not a folder fails with the override that sets it."""
    root = getattr(cfg, f"{name}_root")
    if not Path(root).is_dir():
        raise DatasetError(f"{name} root {root} is not a folder; set data.{name}_root=DIR (or data.root=DIR "
                           f"holding every dataset; the real configs default to ${DATA_ROOT_VARIABLE}, else /datasets)")


def check_roots(cfg: DataConfig, names: list[str]) -> None:
    """Every named dataset's root (both SYNTHIA and GTA5 for `mixed`) must be a folder."""
    for name in names:
        for part in ("synthia", "gta5") if name == "mixed" else (name,):
            if hasattr(cfg, f"{part}_root"):
                check_root(cfg, part)


def build_dataset(name: str, cfg: DataConfig, split: str, transform: Transform | None) -> Dataset:
    """A dataset by name with its root from the config."""
    check_roots(cfg, [name])
    if name == "synthia":
        return SynthiaDataset(cfg.synthia_root, split, transform, cfg.max_items)
    if name == "gta5":
        return GTA5Dataset(cfg.gta5_root, split, transform, cfg.max_items)
    if name == "mixed":
        return build_mixed(cfg.synthia_root, cfg.gta5_root, transform, max_items=cfg.max_items)
    if name == "cityscapes":
        return CityscapesDataset(cfg.cityscapes_root, split, transform, cfg.max_items)
    raise DatasetError(f"unknown dataset '{name}'; expected one of {', '.join(DATASET_NAMES)}")


def has_instances(dataset: Dataset) -> bool:
    """Whether every part of a (concatenated) dataset carries instance labels."""
    if isinstance(dataset, ConcatDataset):
        return all(has_instances(d) for d in dataset.datasets)
    return bool(getattr(dataset, "has_instances", False))


def _parts(dataset: Dataset) -> list[Dataset]:
    if isinstance(dataset, ConcatDataset):
        return [p for d in dataset.datasets for p in _parts(d)]
    return [dataset]


def _instance_parts(dataset: Dataset) -> list[Dataset]:
    return [p for p in _parts(dataset) if has_instances(p)]


def check_crop(crop: tuple[int, int], size: tuple[int, int], scale: float, images: str) -> None:
    """Refuse a training crop larger than the images it is cut from, at their largest scale."""
    height, width = (int(side * scale) for side in size)
    if crop[0] > height or crop[1] > width:
        raise ConfigError(f"data.crop={list(crop)} is larger than the {images} images ({height}x{width} at scale "
                          f"{scale:g}); use a crop of at most that size")


def batch_split(cfg: DataConfig) -> tuple[int, int]:
    """(source, target) samples per training batch; `source_mix` sets the source share of `batch_size`."""
    if cfg.source_mix is None:
        return cfg.batch_size, cfg.target_batch_size
    if not 0.0 <= cfg.source_mix <= 1.0:
        raise ValueError(f"data.source_mix must lie in [0, 1], got {cfg.source_mix}")
    n_source = round(cfg.source_mix * cfg.batch_size)
    return n_source, cfg.batch_size - n_source


def _roots(cfg: DataConfig, name: str) -> list[tuple[str, str, tuple[str, ...]]]:
    if name == "mixed":
        return [(cfg.synthia_root, "synthia", ("train",)), (cfg.gta5_root, "gta5", ("train",))]
    root = {"synthia": cfg.synthia_root, "gta5": cfg.gta5_root, "cityscapes": cfg.cityscapes_root}[name]
    splits = (cfg.train_split, cfg.val_split) if name == "cityscapes" else ("train",)
    return [(root, name, splits)]


class PanopticDataModule(L.LightningDataModule):
    """Training batches by mode: `source` (labelled sources), `adapt` ({"source", "target"}) or `target` only.

    With `require_instances`, only the sources that carry instance labels are used (GTA5 has none).
    Target images are loaded with their labels for monitoring and validation; training code must not use them.
    Training batches are endless and a pure function of (`seed`, step) (see `panoptic_st.data.sampling`), so a
    resumed run continues the exact batch sequence; under DDP each process takes its share of every batch and
    validates its own slice of the split.
    """

    def __init__(self, cfg: DataConfig, mode: Mode = "source", require_instances: bool = False,
                 seed: int = 0) -> None:
        super().__init__()
        self.cfg, self.mode, self.require_instances, self.seed = cfg, mode, require_instances, seed
        self.source: Dataset | None = None
        self.target: Dataset | None = None
        self.val: Dataset | None = None
        self.pipelines: dict[str, Pipeline] = {}
        self.target_class_probabilities: torch.Tensor | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.val is not None:
            return
        cfg = self.cfg
        if cfg.check_on_setup:
            self.check()
        crop = tuple(cfg.crop)
        n_source, n_target = batch_split(cfg)
        if self.mode in ("source", "adapt") and n_source > 0:
            self.pipelines["source"] = source_train_transform(crop, tuple(cfg.source_scale), cfg.flip)
            self.source = self._sources(self.pipelines["source"])
            for part in _parts(self.source):
                check_crop(crop, image_size(part.samples[0].image), cfg.source_scale[1], part.domain)
        if self.mode in ("adapt", "target") and n_target > 0:
            check_crop(crop, tuple(cfg.target_size), cfg.target_scale[1], f"{cfg.target} (data.target_size)")
            self.pipelines["target"] = target_train_transform(tuple(cfg.target_size), crop,
                                                              tuple(cfg.target_scale), cfg.flip)
            self.target = build_dataset(cfg.target, cfg, cfg.train_split, self.pipelines["target"])
        self.val = build_dataset(cfg.target, cfg, cfg.val_split, eval_transform(None))

    def check(self) -> None:
        """Full check of every dataset this module will read; raises a DatasetError naming the bad files."""
        names = set(self.cfg.sources if self.mode != "target" else []) | {self.cfg.target}
        for name in sorted(names):
            for root, fmt, splits in _roots(self.cfg, name):
                check_or_raise(root, fmt, splits)

    def _sources(self, transform: Transform) -> Dataset:
        parts = [build_dataset(n, self.cfg, self.cfg.train_split, transform) for n in self.cfg.sources]
        if self.require_instances:
            parts = [p for d in parts for p in _instance_parts(d)]
            if not parts:
                raise DatasetError(f"none of the sources {self.cfg.sources} carries instance labels")
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)

    def _process(self) -> tuple[int, int]:
        """(rank, world size) of this process when attached to a trainer, else (0, 1)."""
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _batches_done(self) -> int:
        """Training batches this process has already consumed (non-zero when resuming)."""
        if self.trainer is None:
            return 0
        return self.trainer.global_step * self.trainer.accumulate_grad_batches

    def _seeded_loader(self, stream: str, dataset: Dataset, batch_size: int, start_batch: int = 0,
                       num_batches: int | None = None) -> DataLoader:
        seed = self.seed * 2 + (stream == "target")
        rank, world = self._process() if num_batches is None else (0, 1)
        weights = self.target_class_probabilities if stream == "target" and num_batches is None else None
        sampler = StepBatchSampler(len(dataset), batch_size, seed, start_batch, rank, world, num_batches, weights)
        workers = self.cfg.num_workers
        return DataLoader(SeededSamples(dataset, self.pipelines[stream]), batch_sampler=sampler,
                          num_workers=workers, persistent_workers=workers > 0, pin_memory=False,
                          generator=torch.Generator().manual_seed(seed))

    def _loader(self, dataset: Dataset, batch_size: int) -> DataLoader:
        workers = self.cfg.num_workers
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                          persistent_workers=workers > 0, pin_memory=False)

    def train_dataloader(self) -> DataLoader | CombinedLoader:
        sizes = dict(zip(("source", "target"), batch_split(self.cfg)))
        datasets = {"source": self.source, "target": self.target}
        start = self._batches_done()
        loaders = {name: self._seeded_loader(name, data, sizes[name], start)
                   for name, data in datasets.items() if data is not None}
        if self.mode == "source":
            return loaders["source"]
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self) -> DataLoader:
        rank, world = self._process()
        val = self.val if world == 1 else Subset(self.val, range(rank, len(self.val), world))
        return self._loader(val, self.cfg.val_batch_size)

    def target_stats_dataloader(self, max_batches: int | None = None) -> DataLoader:
        """One shuffled, augmented pass over the target train images, at most `max_batches` batches of it (for
        BatchNorm re-estimation)."""
        if self.target is None:
            raise DatasetError("no target training data: build the data module in 'adapt' or 'target' mode")
        batch = self.cfg.val_batch_size
        batches = math.ceil(len(self.target) / batch)
        return self._seeded_loader("target", self.target, batch,
                                   num_batches=batches if max_batches is None else min(batches, max_batches))

    def target_plain_dataloader(self) -> DataLoader:
        """Target train images at `data.target_size`, without augmentation, in order (e.g. for importance sampling)."""
        cfg = self.cfg
        plain = build_dataset(cfg.target, cfg, cfg.train_split, eval_transform(tuple(cfg.target_size)))
        return self._loader(plain, cfg.val_batch_size)

    def state_dict(self) -> dict:
        """Saved in checkpoints, so that a resumed run samples the target as the interrupted one did."""
        if self.target_class_probabilities is None:
            return {}
        return {"target_class_probabilities": self.target_class_probabilities}

    def load_state_dict(self, state: dict) -> None:
        self.target_class_probabilities = state.get("target_class_probabilities")

    def predict_dataloader(self) -> DataLoader:
        return self.val_dataloader()
