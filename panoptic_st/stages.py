"""Chains of training stages: each stage is an experiment config that starts from the final checkpoint of an earlier
stage. `run_chain` is the one place that passes the checkpoints along, whether the stages train in this process
(`train_stage`) or become `panoptic-st train` commands (the thesis launchers)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from panoptic_st.config import load_config
from panoptic_st.training import train_or_reuse


@dataclass(frozen=True)
class Stage:
    """One training stage: an experiment config, its overrides and output folder (default: the config's), the stage
    whose final checkpoint initialises its network (`init_from`) and, for instance self-training, the semantic stage
    whose masks its pseudo-labels cluster in (`masks_from`). Other stages refer to it by `name` (default: the
    experiment)."""

    experiment: str
    init_from: str | None = None
    masks_from: str | None = None
    overrides: tuple[str, ...] = ()
    output_dir: Path | None = None
    name: str = ""

    @property
    def key(self) -> str:
        """The name later stages refer to."""
        return self.name or self.experiment


RunStage = Callable[[Stage, list[str]], dict]


@functools.cache
def branch_of(experiment: str) -> str:
    """The branch (semantic or instance) an experiment config trains."""
    return load_config(experiment).stage


def chained_overrides(stage: Stage, checkpoints: Mapping[str, str | Path]) -> list[str]:
    """The overrides that start `stage` from the final checkpoints of the stages it names."""
    overrides = []
    if stage.init_from is not None:
        overrides.append(f"{branch_of(stage.experiment)}.init_checkpoint={checkpoints[stage.init_from]}")
    if stage.masks_from is not None:
        overrides.append(f"instance.semantic_checkpoint={checkpoints[stage.masks_from]}")
    return overrides


def stage_overrides(stage: Stage, common: Sequence[str], checkpoints: Mapping[str, str | Path]) -> list[str]:
    """Every override of `stage`: its output folder, its own overrides, the chained checkpoints, then `common` (the
    caller's overrides of every stage win)."""
    output = [f"output_dir={stage.output_dir}"] if stage.output_dir is not None else []
    return [*output, *stage.overrides, *chained_overrides(stage, checkpoints), *common]


def train_stage(stage: Stage, overrides: list[str]) -> dict:
    """Train one stage in this process, or reuse its finished run (`train_or_reuse`); returns its result."""
    cfg = load_config(stage.experiment, overrides)
    print(f"\n== {stage.experiment} -> {cfg.output_dir} ({cfg.trainer.max_steps} steps)", flush=True)
    return train_or_reuse(cfg)


def run_chain(stages: Sequence[Stage], run: RunStage = train_stage, common: Sequence[str] = (),
              done: Mapping[str, dict] | None = None) -> dict[str, dict]:
    """Run `stages` in order through `run(stage, overrides)`, each started from the checkpoints of the stages it
    names; returns {stage key: result}, each result with the stage's final `checkpoint`. Stages in `done` (results
    of earlier runs) are not run again."""
    results = dict(done or {})
    for stage in stages:
        if stage.key in results:
            continue
        checkpoints = {key: result["checkpoint"] for key, result in results.items()}
        results[stage.key] = run(stage, stage_overrides(stage, common, checkpoints))
    return results
