"""What the thesis-table launchers share: arguments, `panoptic-st` commands, the dry run and their execution.

A launcher builds a plan (section title -> commands). `--dry-run` prints it. Otherwise every command's config is
loaded with `load_config` first, so that a bad experiment or override fails before anything runs, then each command
is printed and run as `python -m panoptic_st.cli ...` (the entry point behind `panoptic-st`); a training stage whose
output directory holds a finished run with the same config is reused, not trained again.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from panoptic_st.config import ConfigError, ExperimentConfig, load_config
from panoptic_st.stages import Stage, run_chain
from panoptic_st.training import finished_run

ENTRY_POINT = "panoptic-st"
CHECKPOINT = "final.ckpt"
STAGE_LOG = "stages.jsonl"
ROOTS = {"synthia": ("data.synthia_root", "SYNTHIA RAND_CITYSCAPES root (RGB/, GT/LABELS/)"),
         "gta5": ("data.gta5_root", "GTA5 root (images/, labels/)"),
         "cityscapes": ("data.cityscapes_root", "Cityscapes root (leftImg8bit/, gtFine/)")}


class LaunchError(ValueError):
    """A launcher argument that cannot work; the message names it."""


@dataclass(frozen=True)
class Command:
    """One `panoptic-st train` or `panoptic-st evaluate` call (`flags` follow the overrides)."""

    verb: str
    experiment: str
    overrides: tuple[str, ...]
    checkpoint: str | None = None
    prefix: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        """The arguments after the entry point."""
        checkpoint = [self.checkpoint] if self.checkpoint else []
        return [self.verb, self.experiment, *checkpoint, *self.overrides, *self.flags]

    def __str__(self) -> str:
        return shlex.join([*self.prefix, ENTRY_POINT, *self.argv()])

    def config(self) -> ExperimentConfig:
        """The stage's validated config (raises ConfigError on an unknown experiment or override)."""
        return load_config(self.experiment, list(self.overrides))


@dataclass(frozen=True)
class ToolCommand:
    """One `panoptic-st predict` or `panoptic-st eval ...` call: flags only, no experiment config."""

    arguments: tuple[str, ...]
    prefix: tuple[str, ...] = ()

    @property
    def verb(self) -> str:
        return self.arguments[0]

    def argv(self) -> list[str]:
        """The arguments after the entry point."""
        return list(self.arguments)

    def __str__(self) -> str:
        return shlex.join([*self.prefix, ENTRY_POINT, *self.argv()])

    def config(self) -> None:
        """Nothing to validate before the run."""


Plan = dict[str, list[Command | ToolCommand]]


def checkpoint(run_dir: Path) -> Path:
    """The final checkpoint a training stage writes."""
    return run_dir / CHECKPOINT


@dataclass(frozen=True)
class Launch:
    """What every command of a table shares: output root, data roots, trainer flags, extra overrides."""

    out: Path
    data: tuple[str, ...]
    trainer: tuple[str, ...]
    extra: tuple[str, ...]
    prefix: tuple[str, ...]

    def chain(self, stages: Sequence[Stage], done: Mapping[str, Path] | None = None) -> list[Command]:
        """`panoptic-st train` commands of `stages` (each with its `output_dir`), chained through their final
        checkpoints by `run_chain`; `done` holds the checkpoints of stages trained elsewhere ({key: checkpoint})."""
        commands: list[Command] = []

        def train(stage: Stage, overrides: list[str]) -> dict:
            commands.append(Command("train", stage.experiment, (*overrides, *self.trainer, *self.extra),
                                    prefix=self.prefix))
            return {"checkpoint": str(checkpoint(stage.output_dir))}

        trained = {key: {"checkpoint": str(path)} for key, path in (done or {}).items()}
        run_chain(stages, train, common=self.data, done=trained)
        return commands

    def evaluate(self, experiment: str, run_dir: Path, *flags: str) -> Command:
        """Evaluate `run_dir/final.ckpt` on Cityscapes val; the metrics land in `run_dir/final.eval.json`."""
        return Command("evaluate", experiment, (*self.data, *self.extra), checkpoint=str(checkpoint(run_dir)),
                       flags=flags)

    def predict(self, semantic: Path, instance: Path, out: Path) -> ToolCommand:
        """Predict Cityscapes val with a pair of checkpoints into `out` (official result formats)."""
        return ToolCommand(("predict", "--semantic", str(semantic), "--instance", str(instance), "--dataset",
                            "cityscapes", "--root", self.cityscapes, "--split", "val", "--out", str(out),
                            *self.predict_devices), prefix=self.prefix)

    def score(self, predictions: Path, scores: Path) -> list[ToolCommand]:
        """`panoptic-st eval panoptic / semantic / instance` of a `predict` folder; JSON files in `scores`."""
        gt = Path(self.cityscapes) / "gtFine"
        return [ToolCommand(("eval", "panoptic", "--gt-json", str(gt / "cityscapes_panoptic_val.json"), "--gt-dir",
                             str(gt / "cityscapes_panoptic_val"), "--pred-json", str(predictions / "panoptic.json"),
                             "--pred-dir", str(predictions / "panoptic"), "--out", str(scores / "panoptic.json"))),
                ToolCommand(("eval", "semantic", "--gt-dir", str(gt / "val"), "--pred-dir",
                             str(predictions / "semantic"), "--out", str(scores / "semantic.json"))),
                ToolCommand(("eval", "instance", "--gt-dir", str(gt / "val"), "--pred-dir",
                             str(predictions / "instance"), "--out", str(scores / "instance.json")))]

    @property
    def cityscapes(self) -> str:
        """The Cityscapes root of the data overrides."""
        return next(o.split("=", 1)[1] for o in self.data if o.startswith("data.cityscapes_root="))

    @property
    def predict_devices(self) -> tuple[str, ...]:
        """`predict` flags for the trainer overrides' devices, nodes and strategy."""
        values = dict(o.removeprefix("trainer.").split("=", 1) for o in self.trainer)
        flags = ["--devices", values.get("devices", "1"), "--num-nodes", values.get("num_nodes", "1")]
        return (*flags, "--strategy", values["strategy"]) if "strategy" in values else tuple(flags)


def build_parser(description: str) -> argparse.ArgumentParser:
    """Arguments every launcher takes: dataset roots, output, GPUs, launcher prefix, dry run, overrides."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, (_, text) in ROOTS.items():
        parser.add_argument(f"--{name}", type=Path, required=True, help=text)
    parser.add_argument("--out", type=Path, default=Path("runs/thesis"), help="output root (default: %(default)s)")
    parser.add_argument("--devices", type=int, default=1, help="GPUs per node (default: 1)")
    parser.add_argument("--nodes", type=int, default=1, help="nodes (default: 1)")
    parser.add_argument("--launcher", default="",
                        help="prefix of every training command, e.g. 'srun' (SLURM multi-node) or "
                             "'torchrun --standalone --nproc-per-node 4 --no-python'")
    parser.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides for every command")
    return parser


def trainer_overrides(devices: int, nodes: int) -> tuple[str, ...]:
    """Trainer flags for `devices` GPUs on each of `nodes` nodes (DDP when more than one GPU in all)."""
    if devices < 1 or nodes < 1:
        raise LaunchError(f"--devices and --nodes must be >= 1, got {devices} and {nodes}")
    ddp = ("trainer.strategy=ddp",) if devices * nodes > 1 else ()
    return (f"trainer.devices={devices}", f"trainer.num_nodes={nodes}", *ddp)


def data_overrides(args: argparse.Namespace) -> tuple[str, ...]:
    """Dataset-root overrides (absolute paths); each root must be a directory, except in a dry run."""
    overrides = []
    for name, (key, _) in ROOTS.items():
        root = getattr(args, name)
        if not root.is_dir() and not args.dry_run:
            raise LaunchError(f"--{name} {root}: not a directory")
        overrides.append(f"{key}={root.resolve()}")
    return tuple(overrides)


def launch_from_args(args: argparse.Namespace) -> Launch:
    """The shared settings of a table's commands, from the parsed arguments."""
    return Launch(out=args.out.resolve(), data=data_overrides(args), trainer=trainer_overrides(args.devices, args.nodes),
                  extra=tuple(args.overrides), prefix=tuple(shlex.split(args.launcher)))


def validate(plan: Plan) -> None:
    """Load every command's config so that a bad experiment or override fails before anything runs."""
    for commands in plan.values():
        for command in commands:
            command.config()


def finished(command: Command | ToolCommand) -> bool:
    """Whether a training command's output directory holds a finished run with the same config."""
    return command.verb == "train" and finished_run(command.config()) is not None


def run_measured(argv: list[str]) -> tuple[float, float]:
    """Run a process to its end; (wall seconds, its peak resident memory in GB). Raises CalledProcessError."""
    start = time.perf_counter()
    process = subprocess.Popen(argv)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, argv)
    return time.perf_counter() - start, usage.ru_maxrss / 1024**2


def execute(command: Command | ToolCommand, log: Path | None = None) -> None:
    """Run one command through the `panoptic-st` entry point (training commands behind the launcher prefix); print
    its wall time and peak memory (of the process the prefix starts) and append them to `log` as a JSON line."""
    if finished(command):
        print(f"reusing the finished run in {command.config().output_dir}", flush=True)
        log_stage(log, {"command": str(command), "reused": True})
        return
    seconds, peak_gb = run_measured([*command.prefix, sys.executable, "-m", "panoptic_st.cli", *command.argv()])
    print(f"# took {seconds:.1f} s, peak memory {peak_gb:.2f} GB", flush=True)
    log_stage(log, {"command": str(command), "seconds": round(seconds, 1), "peak_gb": round(peak_gb, 3)})


def log_stage(log: Path | None, entry: dict) -> None:
    """Append one stage's record to the JSON-lines log (if any)."""
    if log is None:
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as file:
        file.write(json.dumps(entry) + "\n")


def run_plan(plan: Plan, dry_run: bool, log: Path | None = None) -> None:
    """Print each command; unless `dry_run`, validate the whole plan first and run each command after printing it
    (its time and peak memory appended to `log`)."""
    if not dry_run:
        validate(plan)
    for title, commands in plan.items():
        print(f"# {title}", flush=True)
        for command in commands:
            print(command, flush=True)
            if not dry_run:
                execute(command, log)


def eval_metrics(run_dir: Path) -> dict[str, float | None]:
    """The metrics `panoptic-st evaluate` wrote beside `run_dir/final.ckpt` (empty if absent)."""
    path = checkpoint(run_dir).with_name(f"{Path(CHECKPOINT).stem}.eval.json")
    return json.loads(path.read_text())["metrics"] if path.is_file() else {}


def percent(metrics: dict[str, float | None], key: str) -> str:
    """A metric in percent with one decimal, or '-' when missing."""
    return f"{100 * metrics[key]:.1f}" if metrics.get(key) is not None else "-"


def save_table(path: Path, table: str) -> None:
    """Print a Markdown table and write it to `path`."""
    print(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table + "\n")
    print(f"table written to {path}")


def guarded(run: Callable[[], None]) -> int:
    """Exit code of a launcher: 0, or 1 with a one-line error for a user-caused problem or a failed stage."""
    try:
        run()
    except (ConfigError, LaunchError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as err:
        print(f"error: stage failed with exit code {err.returncode}: {shlex.join(err.cmd)}", file=sys.stderr)
        return 1
    return 0
