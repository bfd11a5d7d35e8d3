"""Thesis semantic table on the real datasets: DeepLab V2 / V3 / V3+ x {SYNTHIA, GTA5, Mixed} -> Cityscapes.

For every source and architecture: the source-only baseline, SAC self-training from that baseline's final.ckpt,
then both checkpoints evaluated on Cityscapes val (mIoU over 19, 16 and 13 classes). Runs go to
`<out>/semantic/<source>_<arch>_{baseline,selftrain}/`; the table to `<out>/semantic_table.md`.

    python experiments/thesis/semantic_table.py --synthia DIR --gta5 DIR --cityscapes DIR [--out runs/thesis]
        [--sources synthia gta5 mixed] [--archs deeplabv2 deeplabv3 deeplabv3plus]
        [--devices 4] [--nodes 2] [--launcher srun] [--dry-run] [key=value ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from panoptic_st.experiments.thesis.launch import (
    STAGE_LOG,
    Command,
    Launch,
    Plan,
    build_parser,
    eval_metrics,
    guarded,
    launch_from_args,
    percent,
    run_plan,
    save_table,
)
from panoptic_st.stages import Stage

SOURCES = ("synthia", "gta5", "mixed")
ARCHS = ("deeplabv2", "deeplabv3", "deeplabv3plus")
KINDS = ("baseline", "selftrain")


def run_dir(out: Path, source: str, arch: str, kind: str) -> Path:
    """Where one semantic stage writes its run."""
    return out / "semantic" / f"{source}_{arch}_{kind}"


def semantic_stages(out: Path, source: str, arch: str) -> list[Stage]:
    """The baseline, then self-training from the baseline's final checkpoint."""
    base, selftrain = (f"{source}/{arch}_{kind}" for kind in KINDS)
    return [Stage(base, output_dir=run_dir(out, source, arch, KINDS[0])),
            Stage(selftrain, base, output_dir=run_dir(out, source, arch, KINDS[1]))]


def semantic_chain(launch: Launch, source: str, arch: str) -> list[Command]:
    """Baseline, self-training from the baseline's final checkpoint, then both evaluated on Cityscapes val."""
    stages = semantic_stages(launch.out, source, arch)
    return [*launch.chain(stages), *(launch.evaluate(s.experiment, s.output_dir) for s in stages)]


def plan(launch: Launch, sources: list[str], archs: list[str]) -> Plan:
    """One section per source and architecture."""
    return {f"{source} {arch}": semantic_chain(launch, source, arch) for source in sources for arch in archs}


def results_table(out: Path, sources: list[str], archs: list[str]) -> str:
    """Markdown table of the evaluated mIoU-19/16/13 (Cityscapes val) of every finished stage."""
    lines = ["| source | arch | model | mIoU-19 | mIoU-16 | mIoU-13 |", "|---|---|---|---:|---:|---:|"]
    for source in sources:
        for arch in archs:
            for kind in KINDS:
                metrics = eval_metrics(run_dir(out, source, arch, kind))
                cells = [percent(metrics, f"val/miou{n}") for n in (19, 16, 13)]
                lines.append(f"| {source} | {arch} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """Common launcher arguments plus the rows to run."""
    p = build_parser(__doc__)
    p.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES), help="source datasets")
    p.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS), help="DeepLab architectures")
    return p


def run(args: argparse.Namespace) -> None:
    """Run (or print) the table's commands, then collect the evaluated numbers."""
    launch = launch_from_args(args)
    run_plan(plan(launch, args.sources, args.archs), args.dry_run, launch.out / STAGE_LOG)
    if not args.dry_run:
        save_table(launch.out / "semantic_table.md", results_table(launch.out, args.sources, args.archs))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = parser().parse_args(argv)
    return guarded(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
