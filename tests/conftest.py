"""Shared fixtures: one tiny toy benchmark per test session."""

import contextlib
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

TINY_TOY = {"n_source": 12, "n_target": 12, "n_val": 6, "height": 64, "width": 128, "workers": 1, "progress": False}
TINY_TRAINING = ("data.num_workers=0", "data.crop=[64,128]", "data.target_size=[64,128]", "data.batch_size=4",
                 "data.val_batch_size=6", "trainer.progress_bar=false", "trainer.log_every_n_steps=1")


def tiny_overrides(*extra: str) -> list[str]:
    """Overrides that make a training stage take seconds on the session's tiny toy data (whole 64 x 128 images,
    batches of 4, no worker processes, no progress bar), then `extra` (later overrides win)."""
    return [*TINY_TRAINING, *extra]


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory) -> Path:
    """A tiny toy benchmark (SYNTHIA, GTA5, Cityscapes formats), generated once per session."""
    from panoptic_st.data.toy import make_toy

    root = tmp_path_factory.mktemp("toy")
    make_toy(root, seed=0, **TINY_TOY)
    return root


@pytest.fixture(autouse=True)
def fresh_wandb_settings():
    """W&B caches its settings (e.g. WANDB_MODE) process-wide at its first run; reset them after each test so that
    tests which disable W&B do not change what later tests get."""
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        wandb.teardown()


class SimulatedKill(RuntimeError):
    """Stands for a training process killed in the middle of a step."""


@pytest.fixture()
def kill_training_at(monkeypatch):
    """`with kill_training_at(step): train(...)` runs semantic training until it dies in step `step` (0-based)."""
    from panoptic_st.semantic.module import SemanticModule

    @contextlib.contextmanager
    def killing(step: int):
        original = SemanticModule.training_step

        def dies(self, batch, batch_idx):
            if self.global_step == step:
                raise SimulatedKill(f"killed in step {step}")
            return original(self, batch, batch_idx)

        with monkeypatch.context() as patch:
            patch.setattr(SemanticModule, "training_step", dies)
            with pytest.raises(SimulatedKill):
                yield

    return killing
