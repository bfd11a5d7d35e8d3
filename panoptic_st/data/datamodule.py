"""One LightningDataModule for every stage: source(s), target, source-mixing ratio, validation on the target."""

from __future__ import annotations

from typing import Literal

import lightning as L
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from panoptic_st.config import DataConfig
from panoptic_st.data.check import check_or_raise
from panoptic_st.data.cityscapes import CityscapesDataset
from panoptic_st.data.dataset import DatasetError, Transform
from panoptic_st.data.gta5 import GTA5Dataset
from panoptic_st.data.mixed import build_mixed
from panoptic_st.data.synthia import SynthiaDataset
from panoptic_st.data.transforms import eval_transform, source_train_transform, target_train_transform

Mode = Literal["source", "adapt", "target"]
DATASET_NAMES = ("synthia", "gta5", "mixed", "cityscapes")


def build_dataset(name: str, cfg: DataConfig, split: str, transform: Transform | None) -> Dataset:
    """A dataset by name with its root from the config."""
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


def _instance_parts(dataset: Dataset) -> list[Dataset]:
    if isinstance(dataset, ConcatDataset):
        return [p for d in dataset.datasets for p in _instance_parts(d)]
    return [dataset] if has_instances(dataset) else []


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
    """

    def __init__(self, cfg: DataConfig, mode: Mode = "source", require_instances: bool = False) -> None:
        super().__init__()
        self.cfg, self.mode, self.require_instances = cfg, mode, require_instances
        self.source: Dataset | None = None
        self.target: Dataset | None = None
        self.val: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.val is not None:
            return
        cfg = self.cfg
        if cfg.check_on_setup:
            self.check()
        crop = tuple(cfg.crop)
        n_source, n_target = batch_split(cfg)
        if self.mode in ("source", "adapt") and n_source > 0:
            src_tf = source_train_transform(crop, tuple(cfg.source_scale), cfg.flip)
            self.source = self._sources(src_tf)
        if self.mode in ("adapt", "target") and n_target > 0:
            tgt_tf = target_train_transform(tuple(cfg.target_size), crop, tuple(cfg.target_scale), cfg.flip)
            self.target = build_dataset(cfg.target, cfg, cfg.train_split, tgt_tf)
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

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool, drop_last: bool) -> DataLoader:
        workers = self.cfg.num_workers
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                          num_workers=workers, persistent_workers=workers > 0, pin_memory=False)

    def train_dataloader(self) -> DataLoader | CombinedLoader:
        n_source, n_target = batch_split(self.cfg)
        if self.mode == "source":
            return self._loader(self.source, n_source, shuffle=True, drop_last=True)
        loaders = {}
        if self.source is not None:
            loaders["source"] = self._loader(self.source, n_source, shuffle=True, drop_last=True)
        if self.target is not None:
            loaders["target"] = self._loader(self.target, n_target, shuffle=True, drop_last=True)
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val, self.cfg.val_batch_size, shuffle=False, drop_last=False)

    def target_stats_dataloader(self) -> DataLoader:
        """Shuffled target train images (for BatchNorm re-estimation); needs mode `adapt` or `target`."""
        if self.target is None:
            raise DatasetError("no target training data: build the data module in 'adapt' or 'target' mode")
        return self._loader(self.target, self.cfg.val_batch_size, shuffle=True, drop_last=False)

    def predict_dataloader(self) -> DataLoader:
        return self.val_dataloader()
