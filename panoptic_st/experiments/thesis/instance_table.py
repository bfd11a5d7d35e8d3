"""Thesis instance table on the real datasets: the instance workflows (all_classes, ICM, BASE, CCM; thesis ch. 8.3)
x the share of source images in every self-training batch (0, 25, 50, 75 %; ch. 8.4), with the pseudo-label
masks of a given semantic checkpoint; every model is then evaluated on Cityscapes val (AP, AP50) inside the
masks that checkpoint predicts.

The stages come from `panoptic_st.workflows.workflows(benchmark)`, i.e. the configs under
`configs/experiments/<benchmark>/instance_workflows/`. Baselines do not depend on the source share and are trained
once (`<out>/instance/baselines/<stage>/`); each self-training stage runs once per share
(`<out>/instance/mix_<percent>/<stage>/`) from its baseline's final.ckpt. Table: `<out>/instance_table.md`.

    python experiments/thesis/instance_table.py --synthia DIR --gta5 DIR --cityscapes DIR [--out runs/thesis]
        [--semantic-checkpoint FILE] [--benchmark mixed] [--workflows all_classes icm base ccm] [--mix 0 25 50 75]
        [--devices 4] [--nodes 2] [--launcher srun] [--dry-run] [key=value ...]
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable
from pathlib import Path

from panoptic_st.config import CONFIG_DIR
from panoptic_st.experiments.thesis.launch import (
    STAGE_LOG,
    Command,
    Launch,
    LaunchError,
    Plan,
    build_parser,
    checkpoint,
    eval_metrics,
    guarded,
    launch_from_args,
    percent,
    run_plan,
    save_table,
)
from panoptic_st.experiments.thesis.semantic_table import run_dir as semantic_run_dir
from panoptic_st.stages import Stage
from panoptic_st.workflows import SOURCE_MIX_PERCENT, workflows

WORKFLOWS = tuple(workflows())
DEFAULT_BENCHMARK = "mixed"
MASKS = "semantic masks"
"""The key of the given semantic checkpoint among the stages of a chain."""


def check_benchmark(benchmark: str) -> None:
    """Fail with the available choices when `benchmark` has no instance workflow configs."""
    if not (CONFIG_DIR / "experiments" / benchmark / "instance_workflows").is_dir():
        available = sorted(p.parent.name for p in (CONFIG_DIR / "experiments").glob("*/instance_workflows"))
        raise LaunchError(f"--benchmark {benchmark}: configs/experiments/{benchmark}/instance_workflows/ does not "
                          f"exist; benchmarks with instance workflow configs: {', '.join(available) or 'none'}")


def baseline_dir(out: Path, experiment: str) -> Path:
    """Where an instance baseline writes its run (shared by every workflow and source share)."""
    return out / "instance" / "baselines" / Path(experiment).name


def baselines(stages: Iterable[Stage]) -> list[str]:
    """The baseline experiments (stages trained from scratch) among `stages`, each once, in run order."""
    return list(dict.fromkeys(s.experiment for s in stages if s.init_from is None))


def scored_in(semantic: Path) -> str:
    """`panoptic-st evaluate` flag that scores instances inside a semantic checkpoint's masks."""
    return f"--masks=semantic:{semantic}"


def self_training(stage: Stage, run_dir: Path, semantic: str, *overrides: str) -> Stage:
    """Self-training `stage` into `run_dir`, from its baseline's final checkpoint, inside the masks of the stage
    named `semantic`."""
    return dataclasses.replace(stage, masks_from=semantic, overrides=overrides, output_dir=run_dir)


def baseline_checkpoints(launch: Launch, stages: list[Stage]) -> dict[str, Path]:
    """{baseline experiment: its final checkpoint} of the baselines `stages` start from."""
    return {s.init_from: checkpoint(baseline_dir(launch.out, s.init_from)) for s in stages if s.init_from}


def baseline_commands(launch: Launch, experiments: list[str], semantic: Path) -> list[Command]:
    """Train every baseline, then evaluate each inside `semantic`'s masks."""
    dirs = [baseline_dir(launch.out, e) for e in experiments]
    return [*launch.chain([Stage(e, output_dir=d) for e, d in zip(experiments, dirs)]),
            *(launch.evaluate(e, d, scored_in(semantic)) for e, d in zip(experiments, dirs))]


def mix_commands(launch: Launch, stages: tuple[Stage, ...], mix: int, semantic: Path) -> list[Command]:
    """One workflow's self-training stages with `mix` % source images per batch, then their evaluations."""
    selftrain = [s for s in stages if s.init_from is not None]
    dirs = [launch.out / "instance" / f"mix_{mix}" / Path(s.experiment).name for s in selftrain]
    chain = [self_training(s, d, MASKS, f"data.source_mix={mix / 100}") for s, d in zip(selftrain, dirs)]
    trained = launch.chain(chain, {MASKS: semantic, **baseline_checkpoints(launch, selftrain)})
    return [*trained, *(launch.evaluate(s.experiment, d, scored_in(semantic)) for s, d in zip(selftrain, dirs))]


def plan(launch: Launch, benchmark: str, names: list[str], mixes: list[int], semantic: Path) -> Plan:
    """The shared baselines, then one section per workflow and source share."""
    check_benchmark(benchmark)
    stages = workflows(benchmark)
    sections = {"instance baselines": baseline_commands(
        launch, baselines(s for name in names for s in stages[name]), semantic)}
    for name in names:
        for mix in mixes:
            sections[f"workflow {name}, {mix}% source"] = mix_commands(launch, stages[name], mix, semantic)
    return sections


def results_table(result_plan: Plan) -> str:
    """Markdown table of the evaluated AP50 / AP (Cityscapes val) of every model in the plan."""
    lines = ["| section | model | AP50 | AP |", "|---|---|---:|---:|"]
    for title, commands in result_plan.items():
        for command in commands:
            if command.verb == "evaluate":
                metrics = eval_metrics(Path(command.checkpoint).parent)
                lines.append(f"| {title} | {Path(command.experiment).name} | {percent(metrics, 'val/ap50')} | "
                             f"{percent(metrics, 'val/ap')} |")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """Common launcher arguments plus the semantic checkpoint, config set, workflows and source shares."""
    p = build_parser(__doc__)
    p.add_argument("--semantic-checkpoint", type=Path, default=None,
                   help="semantic checkpoint whose masks guide pseudo-labels and evaluation "
                        "(default: <out>/semantic/mixed_deeplabv2_selftrain/final.ckpt, the thesis's choice)")
    p.add_argument("--benchmark", default=DEFAULT_BENCHMARK,
                   help="config set under configs/experiments/ with instance_workflows/ (default: %(default)s)")
    p.add_argument("--workflows", nargs="+", choices=WORKFLOWS, default=list(WORKFLOWS), help="workflows to run")
    p.add_argument("--mix", nargs="+", type=int, choices=SOURCE_MIX_PERCENT, default=list(SOURCE_MIX_PERCENT),
                   help="percent of source images in every self-training batch")
    return p


def semantic_checkpoint(args: argparse.Namespace, launch: Launch) -> Path:
    """The semantic checkpoint to use; it must exist unless this is a dry run."""
    path = (args.semantic_checkpoint or checkpoint(semantic_run_dir(launch.out, "mixed", "deeplabv2", "selftrain")))
    if not args.dry_run and not path.is_file():
        raise LaunchError(f"--semantic-checkpoint {path}: file not found (run semantic_table.py first)")
    return path.resolve()


def run(args: argparse.Namespace) -> None:
    """Run (or print) the table's commands, then collect the evaluated numbers."""
    launch = launch_from_args(args)
    commands = plan(launch, args.benchmark, args.workflows, args.mix, semantic_checkpoint(args, launch))
    run_plan(commands, args.dry_run, launch.out / STAGE_LOG)
    if not args.dry_run:
        save_table(launch.out / "instance_table.md", results_table(commands))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = parser().parse_args(argv)
    return guarded(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
