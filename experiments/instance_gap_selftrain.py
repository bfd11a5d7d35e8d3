"""Instance self-training with the joint (spatial) embedding on the instance-gap toy, against its own baseline.

For each training seed it trains (or reuses) the demo's two semantic stages on the gap toy, then
`toy/instance_baseline_spatial` and `toy/instance_selftrain_spatial` (from that baseline, in the self-trained
semantic masks) under `<runs>/seed<N>/<variant>/`, and scores them, saving `scores.json` beside them:
1. AP50 of the baseline and the self-trained model in the self-trained semantic masks on the 200 gap-toy val images
   and on 800 held-out gap-toy images, with the paired bootstrap of the gain over images (95% interval);
2. inside ground-truth masks: the baseline's AP50 on 200 unseen toy-SYNTHIA images, both models' AP50 on gap-toy
   val, and the share of the baseline's source -> target gap that self-training closes.

    python experiments/instance_gap_selftrain.py [--seeds 0 1 2] [--data data/toy_gap] [--runs runs/toy_gap_joint]
        [--heldout data/toy_gap_heldout] [--unseen-source data/toy_unseen_source] [--variant joint]
        [--override instance.spatial_scale=0.3 ...]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from panoptic_st.data.cityscapes import CityscapesDataset
from panoptic_st.data.synthia import SynthiaDataset
from panoptic_st.data.toy import make_toy
from panoptic_st.experiments.toy import (
    HELDOUT,
    UNSEEN_SOURCE,
    ap50,
    gain_cells,
    paired_gain,
    saved_or_computed,
    significance_seed,
)
from panoptic_st.panoptic.predictor import PanopticPredictor
from panoptic_st.pipeline import DEMO_STAGES
from panoptic_st.stages import Stage, run_chain


def gap_stages(run_dir: Path, variant: str, overrides: tuple[str, ...]) -> list[Stage]:
    """The demo's semantic stages in `run_dir`, then its instance stages with the joint embedding (their `_spatial`
    configs) and `overrides` in `run_dir/variant`."""
    semantic = [dataclasses.replace(stage, output_dir=run_dir / stage.name) for stage in DEMO_STAGES[:2]]
    instance = [dataclasses.replace(stage, experiment=f"{stage.experiment}_spatial",
                                    overrides=(*stage.overrides, *overrides), output_dir=run_dir / variant / stage.name)
                for stage in DEMO_STAGES[2:]]
    return semantic + instance


def ground_truth_mask_scores(checkpoints: tuple[Path, Path], source: SynthiaDataset,
                             target: CityscapesDataset) -> dict:
    """Inside ground-truth masks: the baseline's AP50 on unseen source images, the paired gain of self-training on
    the target, and the share of the baseline's source -> target gap that the gain closes."""
    baseline, self_trained = (PanopticPredictor.from_checkpoints(None, [c], masks="gt") for c in checkpoints)
    source_ap50 = ap50(baseline, source)
    gain = paired_gain([baseline, self_trained], target)
    gap = source_ap50 - gain["ap_a"]
    return {"source_ap50": source_ap50, "target": gain, "gap_closed": gain["difference"] / gap if gap > 0 else None}


def ensure_data(args: argparse.Namespace) -> None:
    """Generate the gap toy, its held-out val images and the unseen source images unless present."""
    if not (args.data / "cityscapes" / "val.txt").is_file():
        make_toy(args.data, seed=0, instance_gap=True)
    if not (args.heldout / "cityscapes" / "val.txt").is_file():
        make_toy(args.heldout, seed=0, instance_gap=True, **HELDOUT)
    if not (args.unseen_source / "synthia" / "train.txt").is_file():
        make_toy(args.unseen_source, **UNSEEN_SOURCE)


def seed_scores(args: argparse.Namespace, seed: int) -> dict:
    """Train (or reuse) one seed's stages and score them (saved scores are reused)."""
    run_dir = args.runs / f"seed{seed}"
    stages = gap_stages(run_dir, args.variant, tuple(args.overrides))
    results = run_chain(stages, common=[f"seed={seed}", f"data.root={args.data}"])
    checkpoints = (Path(results["instance_baseline"]["checkpoint"]), Path(results["instance_self_train"]["checkpoint"]))

    def compute() -> dict:
        splits = {"val": args.data, "held-out": args.heldout}
        return {"semantic masks": significance_seed(run_dir, splits, checkpoints),
                "ground-truth masks": ground_truth_mask_scores(
                    checkpoints, SynthiaDataset(args.unseen_source / "synthia", "train"),
                    CityscapesDataset(args.data / "cityscapes", "val"))}

    return saved_or_computed(run_dir / args.variant / "scores.json", False, compute)


def table_rows(seed: int, scores: dict) -> tuple[list[str], str]:
    """Markdown rows of one seed: the gain per split in semantic masks, and the ground-truth-mask gap row."""
    gains = [f"| {seed} | {split} ({r['images']}) | {gain_cells(r)} |" for split, r in scores["semantic masks"].items()]
    gt = scores["ground-truth masks"]
    closed = "-" if gt["gap_closed"] is None else f"{100 * gt['gap_closed']:.0f} %"
    gap = (f"| {seed} | {100 * gt['source_ap50']:.2f} | {100 * gt['target']['ap_a']:.2f} | "
           f"{100 * gt['target']['ap_b']:.2f} | {closed} |")
    return gains, gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", type=Path, default=Path("data/toy_gap"))
    parser.add_argument("--runs", type=Path, default=Path("runs/toy_gap_joint"))
    parser.add_argument("--heldout", type=Path, default=Path("data/toy_gap_heldout"))
    parser.add_argument("--unseen-source", type=Path, default=Path("data/toy_unseen_source"))
    parser.add_argument("--variant", default="joint", help="folder of the instance stages under <runs>/seed<N>/")
    parser.add_argument("--override", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="an override of both instance stages (repeatable)")
    args = parser.parse_args()
    ensure_data(args)
    gains = ["| seed | images | AP50 baseline | AP50 self-trained | gain | 95% interval |", "|---:|---|---:|---:|---:|---|"]
    gaps = ["| seed | AP50 unseen source (baseline) | AP50 target baseline | AP50 target self-trained | gap closed |",
            "|---:|---:|---:|---:|---:|"]
    for seed in args.seeds:
        seed_gains, seed_gap = table_rows(seed, seed_scores(args, seed))
        gains += seed_gains
        gaps.append(seed_gap)
        print("\n".join([*seed_gains, seed_gap]), flush=True)
    tables = (f"In the self-trained semantic masks ({' '.join(args.overrides) or 'no overrides'}):\n\n"
              + "\n".join(gains) + "\n\nInside ground-truth masks:\n\n" + "\n".join(gaps) + "\n")
    print("\n" + tables)
    (args.runs / f"{args.variant}.md").write_text(tables)


if __name__ == "__main__":
    main()
