"""Exact resume: random-number-generator states in checkpoints, atomic checkpoint writes, the last checkpoint."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from panoptic_st.guards import named_tensors, raise_if_nonfinite

RNG_KEY = "rng_states"


def rng_states() -> dict[str, Any]:
    """The global torch, CUDA, NumPy and Python generator states, in types `torch.load(weights_only=True)` reads."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {"torch": torch.get_rng_state(), "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos,
                                                       has_gauss, cached), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what `rng_states` returned."""
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RNGStateCheckpoint(L.Callback):
    """Saves this process's generator states in every checkpoint and restores them on resume."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[RNG_KEY] = rng_states()

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if RNG_KEY in checkpoint:
            set_rng_states(checkpoint[RNG_KEY])


class TimeLimitPerLaunch(L.Callback):
    """`trainer.max_time` limits each launch (a SLURM job's wall time), not the run: the elapsed time that
    Lightning's Timer would restore on resume is left out of checkpoints."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint.get("callbacks", {}).pop("Timer", None)


class ConfiguredLearningRates(L.Callback):
    """On resume the configured learning rates win. Restored optimizer (and scheduler) states carry the ones the run
    was launched with, so a run resumed with a changed `lr` would silently keep the old one: each restored rate is
    scaled by configured / launched base rate (a scheduler continues its schedule from the new base)."""

    def __init__(self) -> None:
        self.configured: list[list[float]] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.configured = [[base_rate(group) for group in o.param_groups] for o in trainer.optimizers]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        changed = [rescale(group, base) for o, rates in zip(trainer.optimizers, self.configured)
                   for group, base in zip(o.param_groups, rates)]
        if not any(changed):
            return
        for config in trainer.lr_scheduler_configs:
            config.scheduler.base_lrs = [base_rate(g) for g in config.scheduler.optimizer.param_groups]
            config.scheduler._last_lr = [g["lr"] for g in config.scheduler.optimizer.param_groups]
        print("resumed with the configured learning rates, not the checkpoint's")


def rescale(group: dict[str, Any], base: float) -> bool:
    """Move a parameter group to base rate `base`, scaling its current rate alike; True if it had another base."""
    launched = base_rate(group)
    if launched == base:
        return False
    group["lr"] = group["lr"] * base / launched if launched else base
    if "initial_lr" in group:
        group["initial_lr"] = base
    return True


def base_rate(group: dict[str, Any]) -> float:
    """The learning rate an optimizer parameter group was configured with (a scheduler keeps it as `initial_lr`)."""
    return group.get("initial_lr", group["lr"])


TRAINED_STATE = ("state_dict", "optimizer_states")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file and renames it into place: a crash mid-write keeps the old file.
    A checkpoint whose weights (student and teacher) or optimizer state hold a non-finite value is refused with
    `TrainingDiverged`, so the file already there stays."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        trained = named_tensors({key: checkpoint[key] for key in TRAINED_STATE if key in checkpoint})
        raise_if_nonfinite(trained, f"refusing to write {path}: {{name}} is not finite (the file there is kept)")
        if not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        try:
            torch.save(checkpoint, partial)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """`<run_dir>/checkpoints/last.ckpt` if a run there saved one."""
    path = Path(run_dir) / "checkpoints" / "last.ckpt"
    return path if path.is_file() else None
