"""Instance training workflows of the thesis (ch. 8.3) as chains of experiment configs, and the fusion of the
predictions of class- or category-specific models into one instance map per image.

Workflows (configs under `configs/experiments/<benchmark>/instance_workflows/`):

- `all_classes`: one baseline and one self-trained model for every thing class;
- `icm` (individual class models): the all-classes baseline, then one self-trained model per class;
- `base`: the all-classes baseline, then one self-trained model per category (auto, human, bike);
- `ccm` (category class models): one baseline and one self-trained model per category.

Each stage is one experiment file; `instance.classes` selects its classes and `instance.init_checkpoint` names the
final checkpoint of the stage it starts from (`runs/<name>/final.ckpt`), so the stages also run one by one from
the CLI. `run_workflow` runs them in order through `panoptic_st.stages.run_chain`, which passes the checkpoints
along itself (any output directory).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from panoptic_st.data.labels import THING_CATEGORIES
from panoptic_st.stages import Stage, run_chain

INDIVIDUAL_CLASSES = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
CATEGORIES = tuple(THING_CATEGORIES)
SOURCE_MIX_PERCENT = (0, 25, 50, 75)


def workflows(benchmark: str = "toy") -> dict[str, tuple[Stage, ...]]:
    """The stages of every workflow, in run order, for the configs of `benchmark`."""
    base = f"{benchmark}/instance_workflows"
    baseline = f"{base}/all_classes_baseline"
    return {
        "all_classes": (Stage(baseline), Stage(f"{base}/all_classes_selftrain", baseline)),
        "icm": (Stage(baseline), *(Stage(f"{base}/icm_selftrain_{c}", baseline) for c in INDIVIDUAL_CLASSES)),
        "base": (Stage(baseline), *(Stage(f"{base}/base_selftrain_{c}", baseline) for c in CATEGORIES)),
        "ccm": tuple(stage for c in CATEGORIES for stage in (
            Stage(f"{base}/ccm_baseline_{c}"),
            Stage(f"{base}/ccm_selftrain_{c}", f"{base}/ccm_baseline_{c}"))),
    }


def source_mix_experiments(benchmark: str = "toy") -> dict[int, str]:
    """Self-training experiment per source-mixing percentage (thesis ch. 8.4)."""
    return {p: f"{benchmark}/instance_workflows/mix_{p}" for p in SOURCE_MIX_PERCENT}


def run_workflow(name: str, overrides: Sequence[str] = (), output_root: str | Path | None = None,
                 benchmark: str = "toy", done: Mapping[str, dict] | None = None) -> dict[str, dict]:
    """Train every stage of workflow `name`; returns {experiment: train() result}.

    With `output_root`, stage outputs go to `<output_root>/<config name>` and each stage starts from the
    checkpoint its predecessor wrote there. Stages already in `done` (e.g. the shared all-classes baseline)
    are not trained again.
    """
    stages = workflows(benchmark)
    if name not in stages:
        raise ValueError(f"unknown workflow '{name}'; expected one of {', '.join(stages)}")
    return run_chain([in_folder(stage, output_root) for stage in stages[name]], common=overrides, done=done)


def in_folder(stage: Stage, output_root: str | Path | None) -> Stage:
    """`stage` writing to `<output_root>/<config name>` (unchanged without `output_root`)."""
    if output_root is None:
        return stage
    return dataclasses.replace(stage, output_dir=Path(output_root) / Path(stage.experiment).name)
