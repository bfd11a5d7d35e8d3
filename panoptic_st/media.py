"""Media logging: prediction overlays, pseudo-label panels and embedding PCA images every `logger.image_interval`
training steps, and a per-class table after each validation.

W&B runs get images and tables, TensorBoard runs images and a markdown table; any other logger (CSV) gets PNG
files and a CSV table under `<run dir>/media/`. Only rank 0 logs; an interval of 0 disables media.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from PIL import Image

from panoptic_st.data.labels import colorize
from panoptic_st.viz import embedding_rgb, instance_colors, overlay

TABLE_KEY = "media/per_class"


def to_rgb(image: torch.Tensor) -> np.ndarray:
    """uint8 (H, W, 3) array of a [3, H, W] image tensor in [0, 1]."""
    return (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A tensor as a CPU numpy array."""
    return tensor.detach().cpu().numpy()


@torch.no_grad()
def predict_train_ids(module: L.LightningModule, image: torch.Tensor) -> np.ndarray:
    """trainId map (H, W) of one image [3, H, W]: a no-grad forward in eval mode, training flags restored after."""
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        logits = module(image[None].to(module.device))
    finally:
        for m, mode in modes.items():
            m.training = mode
    return to_numpy(logits[0].argmax(dim=0))


def semantic_media(trainer: L.Trainer, module: L.LightningModule) -> dict[str, np.ndarray]:
    """Prediction overlay on the first target validation image; in self-training, the last pseudo-label panel
    (target view | fused pseudo-labels, ignored pixels black | student prediction)."""
    media = {}
    val = getattr(trainer.datamodule, "val", None)
    if val is not None and len(val):
        image = val[0]["image"]
        media["media/overlay"] = overlay(to_rgb(image), colorize(predict_train_ids(module, image)))
    sample = module.media_sample
    if sample:
        media["media/pseudo_labels"] = np.concatenate(
            [to_rgb(sample["image"]), colorize(to_numpy(sample["pseudo_labels"])),
             colorize(to_numpy(sample["prediction"]))], axis=1)
    return media


def instance_media(trainer: L.Trainer, module: L.LightningModule) -> dict[str, np.ndarray]:
    """The last training image | its (pseudo-)instance labels | the PCA of the student's embeddings."""
    sample = module.media_sample
    if not sample:
        return {}
    return {"media/embeddings": np.concatenate(
        [to_rgb(sample["image"]), instance_colors(to_numpy(sample["labels"])),
         embedding_rgb(to_numpy(sample["embeddings"]))], axis=1)}


STAGE_MEDIA: dict[str, Callable[[L.Trainer, L.LightningModule], dict[str, np.ndarray]]] = {
    "semantic": semantic_media, "instance": instance_media}


def per_class_table(metrics: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) of the logged per-class validation metrics `val/<metric>/<class>`: one row per class."""
    values: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "val":
            values.setdefault(parts[2], {})[parts[1]] = float(value)
    names = list(dict.fromkeys(name for row in values.values() for name in row))
    rows = [[cls, *(row.get(name, math.nan) for name in names)] for cls, row in values.items()]
    return ["class", *names], rows


def markdown_table(columns: list[str], rows: list[list[Any]]) -> str:
    """A markdown table with numbers to four decimals."""
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    lines = [columns, ["---"] * len(columns), *cells]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


@dataclass
class MediaSink:
    """Where media go: the W&B or TensorBoard logger, else PNG and CSV files in `folder`."""

    logger: Logger | None
    folder: Path

    def path(self, key: str, step: int, suffix: str) -> Path:
        """`<folder>/<key>_<step>.<suffix>`, e.g. `media/overlay_000500.png`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder / f"{key.removeprefix('media/').replace('/', '_')}_{step:06d}.{suffix}"

    def image(self, key: str, image: np.ndarray, step: int) -> None:
        """Log one uint8 (H, W, 3) image."""
        if isinstance(self.logger, WandbLogger):
            self.logger.log_image(key=key, images=[image], step=step)
        elif isinstance(self.logger, TensorBoardLogger):
            self.logger.experiment.add_image(key, image, step, dataformats="HWC")
        else:
            Image.fromarray(image).save(self.path(key, step, "png"))

    def table(self, key: str, columns: list[str], rows: list[list[Any]], step: int) -> None:
        """Log one table."""
        if isinstance(self.logger, WandbLogger):
            self.logger.log_table(key=key, columns=columns, data=rows, step=step)
        elif isinstance(self.logger, TensorBoardLogger):
            self.logger.experiment.add_text(key, markdown_table(columns, rows), step)
        else:
            with self.path(key, step, "csv").open("w", newline="") as f:
                csv.writer(f).writerows([columns, *rows])


class MediaCallback(L.Callback):
    """Stage media every `interval` optimizer steps and the per-class table after each validation (0: off)."""

    def __init__(self, interval: int) -> None:
        self.interval = interval
        self.logged_step = 0

    def active(self, trainer: L.Trainer) -> bool:
        """Whether this process logs media at all."""
        return self.interval > 0 and trainer.is_global_zero

    def sink(self, trainer: L.Trainer) -> MediaSink:
        """The trainer's logger, with `<run dir>/media/` for file output."""
        return MediaSink(trainer.logger, Path(trainer.default_root_dir) / "media")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if not self.active(trainer) or step % self.interval or step == self.logged_step:
            return
        self.logged_step = step
        sink = self.sink(trainer)
        for key, image in STAGE_MEDIA[pl_module.hparams["branch"]](trainer, pl_module).items():
            sink.image(key, image, step)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.active(trainer) or trainer.sanity_checking:
            return
        columns, rows = per_class_table(trainer.callback_metrics)
        if rows:
            self.sink(trainer).table(TABLE_KEY, columns, rows, trainer.global_step)
