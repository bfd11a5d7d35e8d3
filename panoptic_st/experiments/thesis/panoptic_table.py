"""Thesis panoptic table on the real datasets: the full chain on the Mixed source, then SQ / RQ / PQ / PQ+ over all
classes, things and stuff (with mIoU-19 and AP50) of baseline against self-trained, on Cityscapes val.

Per DeepLab architecture: the semantic baseline and its SAC self-training (the semantic table's Mixed runs, reused
when they finished with the same config), the all-classes instance baseline (trained once, shared with the instance
table) and its self-training inside that architecture's self-trained semantic masks. Each row's pair of checkpoints
(baseline = semantic baseline + instance baseline, self-trained = semantic + instance self-trained) is then run
through `panoptic-st predict` into `<out>/panoptic/predictions/<row>/` and scored with `panoptic-st eval panoptic /
semantic / instance` into `<out>/panoptic/scores/<row>/`: the documented way to score a pair of checkpoints, on the
GPUs the launcher is given. Table: `<out>/panoptic_table.md`.

    python experiments/thesis/panoptic_table.py --synthia DIR --gta5 DIR --cityscapes DIR
        [--out runs/thesis] [--archs deeplabv2 deeplabv3 deeplabv3plus] [--benchmark mixed]
        [--devices 4] [--nodes 2] [--launcher srun] [--dry-run] [key=value ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from panoptic_st.experiments.thesis.instance_table import (
    DEFAULT_BENCHMARK,
    baseline_dir,
    check_benchmark,
    self_training,
)
from panoptic_st.experiments.thesis.launch import (
    STAGE_LOG,
    Launch,
    Plan,
    build_parser,
    checkpoint,
    guarded,
    launch_from_args,
    run_plan,
    save_table,
)
from panoptic_st.experiments.thesis.semantic_table import ARCHS, semantic_stages
from panoptic_st.workflows import workflows

Pairs = dict[str, tuple[Path, Path]]


def row_folder(name: str) -> str:
    """A table row's folder name ("self-trained deeplabv2" -> "self-trained_deeplabv2")."""
    return name.replace(" ", "_")


def plan(launch: Launch, archs: list[str], benchmark: str) -> tuple[Plan, Pairs]:
    """Training commands of the chain, then per row `predict` and its three `eval` commands; and the (semantic,
    instance) checkpoints of every row."""
    check_benchmark(benchmark)
    baseline, selftrain = workflows(benchmark)["all_classes"]
    instance_base = checkpoint(baseline_dir(launch.out, baseline.experiment))
    shared = dataclasses.replace(baseline, output_dir=instance_base.parent)
    sections: Plan = {"instance baseline": launch.chain([shared])}
    pairs: Pairs = {}
    for arch in archs:
        semantic_base, semantic_self = semantic_stages(launch.out, "mixed", arch)
        instance_self = launch.out / "panoptic" / arch / Path(selftrain.experiment).name
        chain = [semantic_base, semantic_self, self_training(selftrain, instance_self, semantic_self.key)]
        sections[f"mixed {arch}"] = launch.chain(chain, {baseline.key: instance_base})
        pairs[f"baseline {arch}"] = (checkpoint(semantic_base.output_dir), instance_base)
        pairs[f"self-trained {arch}"] = (checkpoint(semantic_self.output_dir), checkpoint(instance_self))
    for name, (semantic, instance) in pairs.items():
        predictions = launch.out / "panoptic" / "predictions" / row_folder(name)
        sections[f"panoptic {name}"] = [launch.predict(semantic, instance, predictions),
                                        *launch.score(predictions, scores_dir(launch.out, name))]
    return sections, pairs


def scores_dir(out: Path, name: str) -> Path:
    """Where the `eval` commands of a row write their JSON."""
    return out / "panoptic" / "scores" / row_folder(name)


def table_row(name: str, scores: Path) -> str:
    """One Markdown row from a row's `eval` JSON files ('-' where a file or value is missing)."""
    def load(kind: str) -> dict:
        path = scores / f"{kind}.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    panoptic, semantic, instance = load("panoptic"), load("semantic"), load("instance")
    cells = [panoptic.get(group, {}).get(key) for group, keys in (("All", ("sq", "rq", "pq", "pq_plus")),
             ("Things", ("sq", "rq", "pq")), ("Stuff", ("sq", "rq", "pq"))) for key in keys]
    cells += [semantic.get("averageScoreClasses"), instance.get("averages", {}).get("allAp50%")]
    return f"| {name} | " + " | ".join("-" if v is None else f"{100 * v:.2f}" for v in cells) + " |"


def results_table(launch_out: Path, pairs: Pairs) -> str:
    """The thesis's panoptic table (SQ/RQ/PQ/PQ+ for all, things, stuff) with mIoU-19 and AP50."""
    head = ("| model | SQ | RQ | PQ | PQ+ | SQ th | RQ th | PQ th | SQ st | RQ st | PQ st | mIoU-19 | AP50 |\n"
            "|---|" + "---:|" * 12)
    return "\n".join([head, *(table_row(name, scores_dir(launch_out, name)) for name in pairs)])


def parser() -> argparse.ArgumentParser:
    """Common launcher arguments plus the architectures and the instance config set."""
    p = build_parser(__doc__)
    p.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS), help="DeepLab architectures")
    p.add_argument("--benchmark", default=DEFAULT_BENCHMARK,
                   help="config set under configs/experiments/ with instance_workflows/ (default: %(default)s)")
    return p


def run(args: argparse.Namespace) -> None:
    """Run (or print) the chain, the predictions and their scoring, then the table."""
    launch = launch_from_args(args)
    sections, pairs = plan(launch, args.archs, args.benchmark)
    run_plan(sections, args.dry_run, launch.out / STAGE_LOG)
    if not args.dry_run:
        save_table(launch.out / "panoptic_table.md", results_table(launch.out, pairs))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = parser().parse_args(argv)
    return guarded(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
