"""How large the toy benchmark's domain gap is for the instance branch: AP50 of the instance baseline and of instance
self-training inside ground-truth semantic masks, on 200 toy-SYNTHIA images no model trained on (data seed 1) and
on the 200 toy-Cityscapes val images, with the paired bootstrap of the self-training gain (95% interval).
Ground-truth masks take the semantic branch out, so the numbers isolate the embedding. Reads the stages that
`experiments/panoptic_toy_seeds.py` trained.

With `--baseline-only`, only the gap itself: each seed's instance baseline (the demo's stage, trained here unless
it finished before; it sees only toy-SYNTHIA, so it is the same on any toy of one data seed) scored on both image
sets, and the target's AP50 minus the unseen source's. For a toy whose target has its own layouts, e.g.
`panoptic-st data make-toy --out data/toy_gap --instance-gap`, then `--data data/toy_gap --runs runs/toy_gap`.

    python experiments/instance_domain_gap.py [--seeds 0 1 2] [--data data/toy] [--runs runs/panoptic_seeds]
        [--unseen-source data/toy_unseen_source] [--baseline-only]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from panoptic_st.config import load_config
from panoptic_st.data.cityscapes import CityscapesDataset
from panoptic_st.data.synthia import SynthiaDataset
from panoptic_st.data.toy import make_toy
from panoptic_st.experiments.toy import (
    MODELS,
    UNSEEN_SOURCE,
    ap50,
    final_checkpoint,
    gain_cells,
    paired_gain,
)
from panoptic_st.panoptic.predictor import PanopticPredictor
from panoptic_st.training import train_or_reuse


def gap_rows(run_dir: Path, datasets: dict, seed: int) -> list[str]:
    """One Markdown row per dataset: baseline and self-trained AP50 in ground-truth masks, gain and interval."""
    predictors = [PanopticPredictor.from_checkpoints(None, [final_checkpoint(run_dir, model)], masks="gt")
                  for model in MODELS]
    return [f"| {seed} | {name} | {gain_cells(paired_gain(predictors, dataset))} |" for name, dataset in datasets.items()]


def instance_baseline(run_dir: Path, data: Path, seed: int) -> Path:
    """The final checkpoint of the demo's instance-baseline stage for `seed`, trained unless it finished before."""
    cfg = load_config("toy/instance_baseline", [
        f"seed={seed}", f"data.root={data}", f"output_dir={run_dir / MODELS[0]}",
        "trainer.limit_val_batches=0"])
    return Path(train_or_reuse(cfg)["checkpoint"])


def baseline_gap_row(run_dir: Path, data: Path, datasets: dict, seed: int) -> str:
    """One Markdown row: the seed's instance baseline AP50 in ground-truth masks on each dataset, target - source."""
    predictor = PanopticPredictor.from_checkpoints(None, [instance_baseline(run_dir, data, seed)], masks="gt")
    source, target = (100 * ap50(predictor, dataset) for dataset in datasets.values())
    return f"| {seed} | {source:.2f} | {target:.2f} | {target - source:+.2f} |"


def baseline_table(args: argparse.Namespace, datasets: dict) -> None:
    """The instance baseline's AP50 on unseen source and target images per seed, printed and saved."""
    lines = [f"| seed | AP50 {' | AP50 '.join(datasets)} | target - source |", "|---:|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    for seed in args.seeds:
        lines.append(baseline_gap_row(args.runs / f"seed{seed}", args.data, datasets, seed))
        print(lines[-1], flush=True)
    (args.runs / "instance_domain_gap_baseline.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", type=Path, default=Path("data/toy"))
    parser.add_argument("--unseen-source", type=Path, default=Path("data/toy_unseen_source"))
    parser.add_argument("--runs", type=Path, default=Path("runs/panoptic_seeds"))
    parser.add_argument("--baseline-only", action="store_true",
                        help="train (or reuse) only the instance baselines and report the gap")
    args = parser.parse_args()
    if not (args.unseen_source / "synthia" / "train.txt").is_file():
        make_toy(args.unseen_source, **UNSEEN_SOURCE)
    datasets = {"toy SYNTHIA, 200 unseen": SynthiaDataset(args.unseen_source / "synthia", "train"),
                "toy Cityscapes val, 200": CityscapesDataset(args.data / "cityscapes", "val")}
    if args.baseline_only:
        baseline_table(args, datasets)
        return
    lines = ["| seed | images | AP50 baseline | AP50 self-trained | gain | 95% interval |", "|---:|---|---:|---:|---:|---|"]
    print("\n".join(lines), flush=True)
    for seed in args.seeds:
        rows = gap_rows(args.runs / f"seed{seed}", datasets, seed)
        print("\n".join(rows), flush=True)
        lines += rows
    (args.runs / "instance_domain_gap.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
