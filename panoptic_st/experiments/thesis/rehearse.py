"""Rehearse the thesis launchers on native-size toy data, on this machine, before a real run.

Builds the toy benchmark at the real datasets' sizes (`panoptic-st data make-toy --native-size`: SYNTHIA 760 x 1280,
GTA5 1052 x 1914 and odd sizes, Cityscapes 1024 x 2048) and runs the semantic, instance and panoptic tables on it
with the real configs (`configs/experiments/{synthia,gta5,mixed}/`): 512 x 1024 crops at the real batch sizes,
validation and evaluation at 1024 x 2048, prediction into the official formats and the official-format scores.
Only what a CPU cannot afford is overridden: the step counts (`--steps`, default 1), one validation batch per
training stage, and by default the encoders (`--encoder resnet18`; `--encoder resnet101` keeps the real one).
Random encoder weights are allowed (no ImageNet file here).

Every stage prints its wall time and peak memory; the summary goes to `<out>/rehearsal.md`. Finished stages are
reused by a rerun with the same settings.

    python experiments/thesis/rehearse.py [--data data/native] [--out runs/rehearsal] [--scope quick|default|full]
        [--tables semantic instance panoptic] [--steps 1] [--encoder resnet18] [key=value ...]

Scopes: `quick` runs one chain through all three tables (Mixed DeepLabV2 semantic baseline and self-training, the
all-classes instance baseline and self-training, the panoptic row pair); `default` adds SYNTHIA and GTA5 with
DeepLabV2 and SYNTHIA with DeepLabV3 / V3+ so that every source and architecture runs once; `full` runs every row of
every table (hours on a CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from panoptic_st.experiments.thesis import instance_table, panoptic_table, semantic_table
from panoptic_st.experiments.thesis.launch import STAGE_LOG

SCOPES: dict[str, dict[str, list[list[str]]]] = {
    "quick": {"semantic": [["--sources", "mixed", "--archs", "deeplabv2"]],
              "instance": [["--workflows", "all_classes", "--mix", "0"]],
              "panoptic": [["--archs", "deeplabv2"]]},
    "default": {"semantic": [["--sources", "synthia", "gta5", "mixed", "--archs", "deeplabv2"],
                             ["--sources", "synthia", "--archs", "deeplabv3", "deeplabv3plus"]],
                "instance": [["--workflows", "all_classes", "--mix", "0"]],
                "panoptic": [["--archs", "deeplabv2"]]},
    "full": {"semantic": [[]], "instance": [[]], "panoptic": [[]]},
}
TABLES = {"semantic": semantic_table.main, "instance": instance_table.main, "panoptic": panoptic_table.main}


def rehearsal_overrides(steps: int, encoder: str | None) -> list[str]:
    """What the rehearsal changes in the real configs: step counts, one validation batch, random (smaller)
    encoders."""
    overrides = [f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}", "trainer.limit_val_batches=1",
                 "semantic.allow_random_init=true", "instance.allow_random_init=true"]
    if encoder:
        overrides += [f"semantic.encoder={encoder}", f"instance.encoder=tu-{encoder}"]
    return overrides


def native_data(root: Path) -> Path:
    """The native-size toy benchmark under `root`, built when absent."""
    if not (root / "cityscapes").is_dir():
        from panoptic_st.data.toy import NATIVE_COUNTS, make_toy

        make_toy(root, native_size=True, **NATIVE_COUNTS)
    return root


def table_arguments(data: Path, out: Path) -> list[str]:
    """Dataset roots and output folder every table takes."""
    return ["--synthia", str(data / "synthia"), "--gta5", str(data / "gta5"), "--cityscapes",
            str(data / "cityscapes"), "--out", str(out)]


def summary(out: Path, wall_seconds: float) -> str:
    """Markdown table of every stage's time and peak memory from the launchers' stage log."""
    lines = ["| stage | seconds | peak memory (GB) |", "|---|---:|---:|"]
    path = out / STAGE_LOG
    stages = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    for stage in stages:
        measured = "reused | -" if stage.get("reused") else f"{stage['seconds']:.1f} | {stage['peak_gb']:.2f}"
        lines.append(f"| `{short(stage['command'])}` | {measured} |")
    run = [s for s in stages if not s.get("reused")]
    peak = max((s["peak_gb"] for s in run), default=0.0)
    lines.append(f"| **{len(run)} stages run, {len(stages) - len(run)} reused** | **{wall_seconds:.0f}** (wall) | "
                 f"**{peak:.2f}** |")
    return "\n".join(lines)


def short(command: str) -> str:
    """A stage command without its long path overrides: verb, experiment or output folder."""
    words = command.split()
    verb = words[1]
    if verb in ("train", "evaluate"):
        return f"{verb} {words[2]}"
    target = next((w for w in words if "/predictions/" in w or "/scores/" in w), "")
    return f"{' '.join(words[1:3] if verb == 'eval' else words[1:2])} {'/'.join(Path(target).parts[-2:])}"


def rehearse(data: Path, out: Path, scope: str, steps: int, encoder: str | None,
             tables: tuple[str, ...] = tuple(TABLES), extra: tuple[str, ...] = ()) -> int:
    """Run the chosen tables of a scope in order (semantic, instance, panoptic); the first failing table's exit
    code."""
    start = time.perf_counter()
    (out / STAGE_LOG).unlink(missing_ok=True)
    arguments = table_arguments(native_data(data), out)
    for table, runs in SCOPES[scope].items():
        for selection in runs if table in tables else ():
            print(f"\n## rehearsal: {table} table {' '.join(selection)}", flush=True)
            code = TABLES[table]([*arguments, *rehearsal_overrides(steps, encoder), *extra, *selection])
            if code:
                return code
    report = summary(out, time.perf_counter() - start)
    (out / "rehearsal.md").write_text(report + "\n")
    print(f"\n{report}\nsummary written to {out / 'rehearsal.md'}")
    return 0


def parser() -> argparse.ArgumentParser:
    """Data, output, scope, step count and encoder."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("data/native"), help="native-size toy data (built if absent)")
    p.add_argument("--out", type=Path, default=Path("runs/rehearsal"), help="output root (default: %(default)s)")
    p.add_argument("--scope", choices=tuple(SCOPES), default="default", help="which rows (default: %(default)s)")
    p.add_argument("--tables", nargs="+", choices=tuple(TABLES), default=list(TABLES),
                   help="tables to run; instance and panoptic need the semantic one's Mixed DeepLabV2 runs")
    p.add_argument("--steps", type=int, default=1, help="training steps per stage (default: %(default)s)")
    p.add_argument("overrides", nargs="*", help="further key=value overrides for every stage (they leave the "
                   "real configs: use them only to fit a small machine, e.g. data.num_workers=2)")
    p.add_argument("--encoder", default="resnet18",
                   help="timm encoder of both branches; 'real' keeps the configs' ResNet-101 (default: %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = parser().parse_args(argv)
    encoder = None if args.encoder == "real" else args.encoder
    return rehearse(args.data.resolve(), args.out.resolve(), args.scope, args.steps, encoder,
                    tuple(args.tables), tuple(args.overrides))


if __name__ == "__main__":
    sys.exit(main())
