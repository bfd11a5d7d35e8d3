"""`panoptic-st` command line: demo, train, evaluate, predict, sweep, eval {panoptic, semantic, instance},
data {make-toy, check}."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from panoptic_st.config import ConfigError
from panoptic_st.errors import (
    CheckpointError,
    DatasetError,
    EvaluationInputError,
    RunStopped,
    TrainingDiverged,
)

DEFAULT_TOY_ROOT = "data/toy"
EPILOG_DISTRIBUTED = """\
multi-GPU / multi-node: pass trainer overrides, e.g.
  panoptic-st train synthia/deeplabv2_selftrain trainer.devices=4 trainer.strategy=ddp
  srun panoptic-st train ... trainer.devices=4 trainer.num_nodes=2 trainer.strategy=ddp   (SLURM)
  torchrun --nnodes 2 --nproc-per-node 4 -m panoptic_st.cli train ... trainer.devices=4 trainer.num_nodes=2
"""


def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="build the toy benchmark or check a dataset on disk")
    data_sub = data.add_subparsers(dest="data_command", required=True)

    toy = data_sub.add_parser("make-toy", help="generate the toy SYNTHIA/GTA5/Cityscapes benchmark")
    toy.add_argument("--out", default=DEFAULT_TOY_ROOT, help="output directory (default: %(default)s)")
    toy.add_argument("--seed", type=int, default=0, help="random seed; same seed, identical files")
    toy.add_argument("--n-source", type=int, default=None, help="images per source dataset")
    toy.add_argument("--n-target", type=int, default=None, help="Cityscapes train images")
    toy.add_argument("--n-val", type=int, default=None, help="Cityscapes val images")
    toy.add_argument("--val-start", type=int, default=0,
                     help="index of the first val image (200: a held-out split beside the default val)")
    toy.add_argument("--object-texture", type=float, default=0.0,
                     help="stripe amplitude on the things of the Cityscapes-style images (an instance domain gap)")
    toy.add_argument("--instance-gap", action="store_true",
                     help="Cityscapes-style scenes with rows of touching parked cars, groups of pedestrians and "
                          "riders side by side, things striped (an instance domain gap; sources unchanged)")
    toy.add_argument("--height", type=int, default=None, help="image height in pixels")
    toy.add_argument("--width", type=int, default=None, help="image width in pixels")
    toy.add_argument("--native-size", action="store_true",
                     help="the real datasets' sizes (HxW): SYNTHIA 760x1280, GTA5 1052x1914 and a few odd sizes, "
                          "Cityscapes 1024x2048; with 4 images per source, 4 target, 3 val unless --n-* given")
    toy.add_argument("--workers", type=int, default=2, help="worker processes")
    toy.set_defaults(func=cmd_make_toy)

    check = data_sub.add_parser("check", help="report missing pairs, size mismatches, unknown ids, bad files")
    check.add_argument("root", help="dataset root directory")
    check.add_argument("--format", required=True, choices=["cityscapes", "gta5", "synthia"])
    check.add_argument("--split", action="append", default=None, help="split(s) to check (default: all)")
    check.set_defaults(func=cmd_check)


def _add_predict_command(sub: argparse._SubParsersAction) -> None:
    predict = sub.add_parser(
        "predict", help="write official Cityscapes result files (semantic, instance, panoptic) for images",
        description="Predict with a semantic (and optional instance) checkpoint and write, per image, what the "
                    "official Cityscapes scripts read: OUT/semantic/*_labelIds.png, OUT/instance/*.txt + masks, "
                    "OUT/panoptic/*.png + OUT/panoptic.json. Score them with `panoptic-st eval ...`.")
    predict.add_argument("--semantic", help="semantic checkpoint (required unless --masks gt)")
    predict.add_argument("--instance", nargs="*", default=[], metavar="CKPT",
                         help="instance checkpoint(s); several must own disjoint classes")
    where = predict.add_mutually_exclusive_group(required=True)
    where.add_argument("--images", help="any folder of .png / .jpg images (recursive)")
    where.add_argument("--dataset", choices=["cityscapes"], help="a dataset split instead: with --root and --split")
    predict.add_argument("--root", help="dataset root (with --dataset)")
    predict.add_argument("--split", default="val", help="dataset split (default: %(default)s)")
    predict.add_argument("--out", required=True, help="output folder (a rerun skips images already written)")
    predict.add_argument("--masks", choices=["semantic", "gt"], default="semantic",
                         help="cluster instances inside the semantic checkpoint's masks, or (with --dataset) inside "
                              "the ground-truth semantic masks, to score an instance model alone")
    predict.add_argument("--scale", type=float, default=1.0, help="input scale for the networks (default: 1)")
    predict.add_argument("--bandwidth", type=float, default=None, help="mean-shift bandwidth (default: the "
                         "instance checkpoint's)")
    predict.add_argument("--min-size", type=int, default=None, help="smallest instance in pixels (default: the "
                         "instance checkpoint's)")
    predict.add_argument("--max-points", type=int, default=None, help="pixels per class mask that mean-shift runs "
                         "on, the rest take the nearest mode (default: 16384)")
    predict.add_argument("--overlays", action="store_true", help="also write colour overlays to OUT/overlays/")
    predict.add_argument("--batch-size", type=int, default=1, help="images per batch (same-size images only)")
    predict.add_argument("--workers", type=int, default=2, help="data loader workers per process")
    predict.add_argument("--accelerator", default="auto", help="cpu, gpu, auto (default: %(default)s)")
    predict.add_argument("--devices", default="1", help="devices per node, or 'auto' (default: %(default)s)")
    predict.add_argument("--strategy", default="auto", help="e.g. ddp (default: %(default)s)")
    predict.add_argument("--num-nodes", type=int, default=1)
    predict.add_argument("--precision", default="32-true", help="32-true, bf16-mixed, 16-mixed (default: %(default)s)")
    predict.set_defaults(func=cmd_predict)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to render `--help` in tests)."""
    parser = argparse.ArgumentParser(
        prog="panoptic-st", description="Self-trained panoptic segmentation: synthetic -> real.",
        epilog=EPILOG_DISTRIBUTED, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also: environment variable PANOPTIC_ST_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the whole method end to end on the toy benchmark")
    demo.add_argument("--out", default="runs/demo", help="run directory (default: %(default)s)")
    demo.add_argument("--data", default=DEFAULT_TOY_ROOT, help="toy data directory (built if absent)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quick", action="store_true", help="smoke run with tiny settings")
    demo.set_defaults(func=cmd_demo)

    train = sub.add_parser("train", help="run one training stage from an experiment config",
                           epilog=EPILOG_DISTRIBUTED, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("experiment", help="experiment YAML path or name under configs/experiments/")
    train.add_argument("overrides", nargs="*", help="key=value config overrides")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="score a checkpoint on the target validation split, in process",
                              epilog=EPILOG_DISTRIBUTED, formatter_class=argparse.RawDescriptionHelpFormatter)
    evaluate.add_argument("experiment", help="experiment YAML path or name (gives the data settings)")
    evaluate.add_argument("checkpoint", help="semantic or instance checkpoint file")
    evaluate.add_argument("overrides", nargs="*", help="key=value config overrides")
    evaluate.add_argument("--masks", default="gt", metavar="gt|semantic:CKPT",
                          help="instance checkpoints: cluster inside the ground-truth semantic masks (default) or "
                               "inside a semantic checkpoint's predicted masks")
    evaluate.add_argument("--out", default=None, help="results JSON (default: <checkpoint>.eval.json beside it)")
    evaluate.add_argument("--adabn", action="store_true",
                          help="re-estimate BatchNorm statistics on target train images first (AdaBN)")
    evaluate.set_defaults(func=cmd_evaluate)

    _add_predict_command(sub)

    sweep = sub.add_parser("sweep", help="run a W&B sweep file (offline: its grid or random runs, here)",
                           epilog=EPILOG_DISTRIBUTED + "  in a sweep: add trainer.devices=4 trainer.strategy=ddp to "
                           "the file's command\n", formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("file", help="sweep YAML (W&B format): a path or a name under configs/sweeps/")
    sweep.add_argument("overrides", nargs="*", help="key=value config overrides for every run (e.g. data.root=DIR); "
                       "they win over the file's command, not over its parameters")
    sweep.add_argument("--count", type=int, default=None,
                       help="at most this many runs (offline random sweeps: required unless the file has run_cap)")
    sweep.add_argument("--project", default=None, help="W&B project (default: the file's, else logger.project)")
    sweep.add_argument("--seed", type=int, default=0, help="seed of offline random sampling")
    sweep.add_argument("--out", default=None, help="offline runs' directory (default: runs/sweeps/<sweep name>)")
    sweep.add_argument("--dry-run", action="store_true", help="list the runs of an offline sweep, train none")
    sweep.set_defaults(func=cmd_sweep)

    _add_data_commands(sub)
    from panoptic_st.evaluation.commands import add_eval_commands

    add_eval_commands(sub)
    return parser


def cmd_make_toy(args: argparse.Namespace) -> int:
    from panoptic_st.data.toy import NATIVE_COUNTS, make_toy

    if args.native_size and (args.height, args.width) != (None, None):
        print("error: --native-size sets the image sizes; drop --height/--width", file=sys.stderr)
        return 1
    given = {k: v for k, v in (("n_source", args.n_source), ("n_target", args.n_target), ("n_val", args.n_val),
                               ("height", args.height), ("width", args.width)) if v is not None}
    sizes = {**(NATIVE_COUNTS if args.native_size else {}), **given}
    make_toy(Path(args.out), seed=args.seed, workers=args.workers, val_start=args.val_start,
             object_texture=args.object_texture, native_size=args.native_size, instance_gap=args.instance_gap,
             **sizes)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from panoptic_st.data.check import check_dataset

    report = check_dataset(args.root, args.format, tuple(args.split) if args.split else None,
                           progress=sys.stderr.isatty())
    for problem in report.problems:
        print(f"error: {problem}", file=sys.stderr)
    print(report.statistics())
    return 0 if report.ok else 1


def cmd_train(args: argparse.Namespace) -> int:
    from panoptic_st.config import load_config

    cfg = load_config(args.experiment, args.overrides)  # config errors come before torch is imported
    from panoptic_st.training import train

    train(cfg)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from panoptic_st.config import load_config

    cfg = load_config(args.experiment, args.overrides)
    from panoptic_st.prediction import evaluate

    evaluate(cfg, args.checkpoint, adabn_first=args.adabn, masks=args.masks, out=args.out)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from panoptic_st.prediction import (
        ImageFolder,
        PredictionError,
        PredictionSettings,
        dataset_images,
        image_files,
        predict,
    )

    if args.dataset and not args.root:
        raise PredictionError("--dataset needs --root (the dataset's root folder)")
    if args.masks == "gt" and not (args.dataset and args.instance):
        raise PredictionError("--masks gt needs --dataset (its ground-truth masks) and --instance")
    if args.masks == "semantic" and not args.semantic:
        raise PredictionError("--semantic CKPT is required (or --masks gt with --dataset)")
    images = (dataset_images(args.dataset, args.root, args.split, labels=args.masks == "gt") if args.dataset
              else ImageFolder(args.images, image_files(args.images)))
    clustering = {k: v for k, v in (("bandwidth", args.bandwidth), ("min_size", args.min_size),
                                    ("max_points", args.max_points)) if v is not None}
    devices = args.devices if args.devices == "auto" else int(args.devices)
    settings = PredictionSettings(args.semantic, list(args.instance), args.masks, args.scale, clustering,
                                  args.batch_size,
                                  args.workers, args.accelerator, devices, args.strategy, args.num_nodes,
                                  args.precision, args.overlays)
    result = predict(settings, images, args.out)
    if "panoptic_json" in result:
        print(f"{result['images']} images in {result['out']} ({result['predicted']} predicted now); score them with "
              "`panoptic-st eval semantic|instance|panoptic --pred-dir ...` (README: Predict and evaluate)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from panoptic_st.pipeline import run_demo

    run_demo(Path(args.out), Path(args.data), seed=args.seed, quick=args.quick)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from panoptic_st.sweeps import run_sweep

    run_sweep(args.file, count=args.count, project=args.project, seed=args.seed, out_dir=args.out,
              dry_run=args.dry_run, overrides=args.overrides)
    return 0


USER_ERRORS = (ConfigError, DatasetError, CheckpointError, EvaluationInputError, OSError)


def error_line(err: BaseException) -> str:
    """The one line printed for a user-caused error: an OSError as `<path>: <cause>`."""
    if isinstance(err, OSError) and err.strerror:
        text = f"{err.filename}: {err.strerror}" if err.filename is not None else err.strerror
    else:
        text = str(err) or type(err).__name__
    return text.replace("\n", " ")


def main(argv: list[str] | None = None) -> int:
    """Entry point; user-caused errors print one line (a traceback too with --debug or PANOPTIC_ST_DEBUG=1)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # key=value overrides given after the flags
        if not hasattr(args, "overrides") or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    try:
        return args.func(args)
    except (*USER_ERRORS, RunStopped, TrainingDiverged) as err:
        if args.debug or os.environ.get("PANOPTIC_ST_DEBUG") == "1":
            traceback.print_exc()
        prefix = "stopped" if isinstance(err, RunStopped) else "error"
        print(f"{prefix}: {error_line(err)}", file=sys.stderr)
        return getattr(err, "exit_code", 1)


if __name__ == "__main__":
    sys.exit(main())
