"""Thesis panoptic table on the real datasets: the full chain on the Mixed source, then SQ / RQ / PQ / PQ+ over all
classes, things and stuff (with PQ-16, mIoU-19 and AP50) of baseline against self-trained, on Cityscapes val.

Per DeepLab architecture: the semantic baseline and its SAC self-training (the semantic table's Mixed runs, reused
when they finished with the same config), the all-classes instance baseline (trained once, shared with the instance
table) and its self-training inside that architecture's self-trained semantic masks. Then
`panoptic_st.pipeline.evaluate_panoptic` (in-process: there is no `panoptic-st` command for it) merges
baseline = semantic baseline + instance baseline and self-trained = semantic + instance self-trained and scores
them. It reads `<data root>/cityscapes`, so `--cityscapes` must be a directory named `cityscapes`, and it runs on
the CPU. Table: `<out>/panoptic_table.md`.

    python experiments/thesis/panoptic_table.py --synthia DIR --gta5 DIR --cityscapes DIR/cityscapes
        [--out runs/thesis] [--archs deeplabv2 deeplabv3 deeplabv3plus] [--benchmark mixed]
        [--devices 4] [--nodes 2] [--launcher srun] [--dry-run] [key=value ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import (
    Launch,
    LaunchError,
    Plan,
    build_parser,
    checkpoint,
    guarded,
    launch_from_args,
    run_plan,
    save_table,
)
from instance_table import DEFAULT_BENCHMARK, baseline_dir, check_benchmark, self_training
from semantic_table import ARCHS, KINDS, run_dir, semantic_chain

from panoptic_st.config import ExperimentConfig
from panoptic_st.instance.workflows import workflows

Pairs = dict[str, tuple[Path, Path]]


def plan(launch: Launch, archs: list[str], benchmark: str) -> tuple[Plan, Pairs]:
    """Training commands of the chain, and the (semantic, instance) checkpoints of every panoptic row."""
    check_benchmark(benchmark)
    baseline, selftrain = workflows(benchmark)["all_classes"]
    instance_base = baseline_dir(launch.out, baseline.experiment)
    sections: Plan = {"instance baseline": [launch.train(baseline.experiment, instance_base)]}
    pairs: Pairs = {}
    for arch in archs:
        semantic_base, semantic_self = (checkpoint(run_dir(launch.out, "mixed", arch, kind)) for kind in KINDS)
        instance_self = launch.out / "panoptic" / arch / Path(selftrain.experiment).name
        semantic = [c for c in semantic_chain(launch, "mixed", arch) if c.verb == "train"]
        sections[f"mixed {arch}"] = [*semantic, self_training(launch, selftrain, instance_self, semantic_self)]
        pairs[f"baseline {arch}"] = (semantic_base, checkpoint(instance_base))
        pairs[f"self-trained {arch}"] = (semantic_self, checkpoint(instance_self))
    return sections, pairs


def describe(pairs: Pairs, cityscapes: Path) -> None:
    """Print which checkpoints every panoptic row merges."""
    print(f"# panoptic evaluation on {cityscapes} val (in-process: panoptic_st.pipeline.evaluate_panoptic)")
    for name, (semantic, instance) in pairs.items():
        print(f"# panoptic {name}: semantic={semantic} instance={instance}")


def evaluate(pairs: Pairs, instance_cfg: ExperimentConfig, cityscapes: Path) -> str:
    """Merge and score every row on Cityscapes val; the thesis's panoptic table as Markdown."""
    from panoptic_st.pipeline import evaluate_panoptic, panoptic_table

    results = {name: evaluate_panoptic(str(semantic), instance_cfg, str(instance), cityscapes.parent, label=name,
                                       batch_size=1) for name, (semantic, instance) in pairs.items()}
    return panoptic_table(results)


def cityscapes_root(args: argparse.Namespace) -> Path:
    """The Cityscapes root, which `evaluate_panoptic` finds as `<parent>/cityscapes`."""
    root = args.cityscapes.absolute()
    if root.name != "cityscapes":
        raise LaunchError(f"--cityscapes {args.cityscapes}: the panoptic evaluation reads <data root>/cityscapes; "
                          "pass a directory named 'cityscapes' (a symlink named so will do)")
    return root


def parser() -> argparse.ArgumentParser:
    """Common launcher arguments plus the architectures and the instance config set."""
    p = build_parser(__doc__)
    p.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS), help="DeepLab architectures")
    p.add_argument("--benchmark", default=DEFAULT_BENCHMARK,
                   help="config set under configs/experiments/ with instance_workflows/ (default: %(default)s)")
    return p


def run(args: argparse.Namespace) -> None:
    """Run (or print) the chain, then the panoptic evaluation."""
    cityscapes = cityscapes_root(args)
    launch = launch_from_args(args)
    sections, pairs = plan(launch, args.archs, args.benchmark)
    run_plan(sections, args.dry_run)
    describe(pairs, cityscapes)
    if not args.dry_run:
        instance_cfg = sections["instance baseline"][0].config()
        save_table(launch.out / "panoptic_table.md", evaluate(pairs, instance_cfg, cityscapes))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = parser().parse_args(argv)
    return guarded(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
