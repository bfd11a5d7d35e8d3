"""Experiment loggers of a training run: CSV (default), TensorBoard or Weights & Biases."""

from __future__ import annotations

import os
import secrets
import string
import sys
from collections.abc import Callable
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.utilities import rank_zero_only

from panoptic_st.config import ExperimentConfig, to_dict
from panoptic_st.resume import last_checkpoint

# The W&B run id of a run, kept in its output folder so that a resumed run continues the same W&B run.
RUN_ID_FILE = "wandb_run_id"
RUN_ID_CHARACTERS = string.ascii_lowercase + string.digits


def wandb_offline() -> bool:
    """Whether a run logs to W&B offline: no API key, no WANDB_MODE, and not started by a sweep agent."""
    return not any(os.environ.get(key) for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_SWEEP_ID"))


def resumes_checkpoint(cfg: ExperimentConfig, out: Path) -> bool:
    """Whether `train` continues this run from its last checkpoint."""
    return cfg.trainer.resume and last_checkpoint(out) is not None


def wandb_run_id(cfg: ExperimentConfig, out: Path) -> str:
    """The sweep agent's run id, else the saved id of a resumed run, else a new one; saved in `<out>/wandb_run_id`."""
    saved = out / RUN_ID_FILE
    run_id = os.environ.get("WANDB_RUN_ID")
    if not run_id and resumes_checkpoint(cfg, out) and saved.is_file():
        run_id = saved.read_text().strip()
    run_id = run_id or "".join(secrets.choice(RUN_ID_CHARACTERS) for _ in range(8))
    if rank_zero_only.rank == 0:
        saved.write_text(run_id)
    return run_id


def wandb_run_name(cfg: ExperimentConfig) -> str | None:
    """`logger.name`, else the experiment name; under a sweep agent W&B names each run itself."""
    if cfg.logger.name or os.environ.get("WANDB_SWEEP_ID"):
        return cfg.logger.name
    return cfg.name


def build_wandb_logger(cfg: ExperimentConfig, out: Path) -> Logger:
    """A W&B logger (offline without an API key) that a resumed run attaches to the same W&B run."""
    from lightning.pytorch.loggers import WandbLogger

    log = cfg.logger
    offline = {"mode": "offline"} if wandb_offline() else {}
    return WandbLogger(project=log.project, entity=log.entity, group=log.group, tags=list(log.tags) or None,
                       name=wandb_run_name(cfg), id=wandb_run_id(cfg, out), log_model=log.log_model,
                       save_dir=str(out), config=to_dict(cfg), **offline)


def build_tensorboard_logger(cfg: ExperimentConfig, out: Path) -> Logger:
    """A TensorBoard logger writing to `<out>/tb`."""
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(str(out), name="tb")


def build_csv_logger(cfg: ExperimentConfig, out: Path) -> Logger:
    """A CSV logger writing to `<out>/logs`."""
    return CSVLogger(str(out), name="logs")


LOGGERS: dict[str, Callable[[ExperimentConfig, Path], Logger]] = {
    "csv": build_csv_logger, "tensorboard": build_tensorboard_logger, "wandb": build_wandb_logger}


def build_logger(cfg: ExperimentConfig, out: Path) -> Logger:
    """The logger of `logger.kind` (checked by `config.validate`): csv (default), tensorboard or wandb."""
    return LOGGERS[cfg.logger.kind](cfg, out)


def finish_wandb_run() -> None:
    """Close a W&B run this process started, so that the next stage or sweep run (same process) gets its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()
