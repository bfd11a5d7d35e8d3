"""One instance self-training variant against the instance baseline, per seed, on val and held-out images.

For each seed it trains `toy/instance_selftrain` from the seed's instance baseline and semantic self-training
checkpoints (as in `experiments/panoptic_toy_seeds.py`) with the given overrides, then scores the baseline and the
variant in the self-trained semantic masks on the 200 val images and on 800 held-out ones, with a paired
bootstrap of the AP50 gain over images. A finished variant run is reused; its scores are saved beside it.

    python experiments/instance_selftrain_variant.py --name no_consistency --seeds 0 1 2 \\
        --override instance.consistency_weight=0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from panoptic_st.data.toy import make_toy
from panoptic_st.experiments.toy import (
    HELDOUT,
    final_checkpoint,
    gain_cells,
    retrain_instance_self_training,
    saved_or_computed,
    significance_seed,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="the variant's folder under <runs>/variants/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", type=Path, default=Path("data/toy"))
    parser.add_argument("--runs", type=Path, default=Path("runs/panoptic_seeds"))
    parser.add_argument("--heldout", type=Path, default=Path("data/toy_heldout"))
    parser.add_argument("--override", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="an override of toy/instance_selftrain (repeatable)")
    args = parser.parse_args()
    if not (args.heldout / "cityscapes" / "val.txt").is_file():
        make_toy(args.heldout, seed=0, **HELDOUT)
    splits = {"val": args.data, "held-out": args.heldout}
    print(f"| variant | seed | split | AP50 baseline | AP50 variant | gain | 95% interval |  ({' '.join(args.overrides)})")
    for seed in args.seeds:
        run_dir = args.runs / f"seed{seed}"
        out = args.runs / "variants" / args.name / f"seed{seed}"
        checkpoint = Path(retrain_instance_self_training(run_dir, out, args.data, seed, args.overrides)["checkpoint"])
        compared = (final_checkpoint(run_dir, "instance_baseline"), checkpoint)
        result = saved_or_computed(out / "scores.json", False,
                                   lambda run_dir=run_dir, compared=compared:
                                   significance_seed(run_dir, splits, compared))
        for split, r in result.items():
            print(f"| {args.name} | {seed} | {split} | {gain_cells(r)} |", flush=True)
    (args.runs / "variants" / args.name / "overrides.json").write_text(json.dumps(args.overrides))


if __name__ == "__main__":
    main()
