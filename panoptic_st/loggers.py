"""Experiment loggers of a training run: CSV (default), TensorBoard or Weights & Biases."""

from __future__ import annotations

import sys
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger

from panoptic_st.config import ExperimentConfig, to_dict


def build_logger(cfg: ExperimentConfig, out: Path) -> Logger:
    """CSV logger by default; W&B (offline without an API key) or TensorBoard when configured."""
    if cfg.logger.kind == "wandb":
        import os

        from lightning.pytorch.loggers import WandbLogger

        offline = not os.environ.get("WANDB_API_KEY") and "WANDB_MODE" not in os.environ
        return WandbLogger(project=cfg.logger.project, name=cfg.name, save_dir=str(out), offline=offline,
                           config=to_dict(cfg))
    if cfg.logger.kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(str(out), name="tb")
    return CSVLogger(str(out), name="logs")


def finish_wandb_run() -> None:
    """Close a W&B run this process started, so that the next stage or sweep run (same process) gets its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()
