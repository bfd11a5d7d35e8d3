"""How large the toy benchmark's domain gap is for the instance branch: AP50 of the instance baseline and of instance
self-training inside ground-truth semantic masks, on 200 toy-SYNTHIA images no model trained on (data seed 1) and
on the 200 toy-Cityscapes val images, with the paired bootstrap of the self-training gain (95% interval).
Ground-truth masks take the semantic branch out, so the numbers isolate the embedding. Reads the stages that
`experiments/panoptic_toy_seeds.py` trained.

    python experiments/instance_domain_gap.py [--seeds 0 1 2] [--data data/toy] [--runs runs/panoptic_seeds]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from panoptic_st.data.cityscapes import CityscapesDataset
from panoptic_st.data.synthia import SynthiaDataset
from panoptic_st.data.toy import make_toy
from panoptic_st.experiments.toy import MODELS, final_checkpoint, gain_cells, paired_gain
from panoptic_st.panoptic.predictor import PanopticPredictor

UNSEEN_SOURCE = {"seed": 1, "n_source": 200, "n_target": 1, "n_val": 1}


def gap_rows(run_dir: Path, datasets: dict, seed: int) -> list[str]:
    """One Markdown row per dataset: baseline and self-trained AP50 in ground-truth masks, gain and interval."""
    predictors = [PanopticPredictor.from_checkpoints(None, [final_checkpoint(run_dir, model)], masks="gt")
                  for model in MODELS]
    return [f"| {seed} | {name} | {gain_cells(paired_gain(predictors, dataset))} |" for name, dataset in datasets.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", type=Path, default=Path("data/toy"))
    parser.add_argument("--unseen-source", type=Path, default=Path("data/toy_unseen_source"))
    parser.add_argument("--runs", type=Path, default=Path("runs/panoptic_seeds"))
    args = parser.parse_args()
    if not (args.unseen_source / "synthia" / "train.txt").is_file():
        make_toy(args.unseen_source, **UNSEEN_SOURCE)
    datasets = {"toy SYNTHIA, 200 unseen": SynthiaDataset(args.unseen_source / "synthia", "train"),
                "toy Cityscapes val, 200": CityscapesDataset(args.data / "cityscapes", "val")}
    lines = ["| seed | images | AP50 baseline | AP50 self-trained | gain | 95% interval |", "|---:|---|---:|---:|---:|---|"]
    print("\n".join(lines), flush=True)
    for seed in args.seeds:
        rows = gap_rows(args.runs / f"seed{seed}", datasets, seed)
        print("\n".join(rows), flush=True)
        lines += rows
    (args.runs / "instance_domain_gap.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
