"""How much instance self-training can gain on the toy benchmark: the demo's instance self-training stage retrained
with the target's ground-truth instances as its labels (`instance.pseudo_labels=ground_truth`), all of them or a
random fraction (a pseudo-labeller of that recall and perfect precision), and scored like the baseline and the
method: target-val AP50 inside the self-trained semantic branch's masks. Needs the seed's stages and scores from
`experiments/instance_toy_table.py` in the same run directory (run it first).

    python experiments/instance_oracle_ceiling.py [--seeds 0 1 2] [--fractions 1.0 0.3] [--runs runs/panoptic_seeds]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from panoptic_st.config import load_config
from panoptic_st.experiments.toy import MASKS, MODELS, final_checkpoint, retrain_instance_self_training
from panoptic_st.prediction import evaluate


def oracle_ap50(run_dir: Path, data: Path, seed: int, fraction: float) -> float:
    """Target-val AP50 of the demo's instance self-training on ground-truth target instances kept with `fraction`,
    clustered inside the self-trained semantic masks (written to `eval_pred_masks/eval.json` in its run folder)."""
    semantic = final_checkpoint(run_dir, "semantic_self_train")
    out = run_dir / f"instance_oracle_{fraction:g}"
    checkpoint = retrain_instance_self_training(run_dir, out, data, seed, [
        "instance.pseudo_labels=ground_truth", f"instance.oracle_fraction={fraction}"])["checkpoint"]
    scoring = load_config("toy/instance_baseline", [f"seed={seed}", f"data.root={data}", "trainer.progress_bar=false"])
    result = evaluate(scoring, checkpoint, masks=f"semantic:{semantic}", out=out / "eval_pred_masks" / "eval.json")
    return result["metrics"]["val/ap50"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.3])
    parser.add_argument("--data", type=Path, default=Path("data/toy"))
    parser.add_argument("--runs", type=Path, default=Path("runs/panoptic_seeds"))
    args = parser.parse_args()
    header = "| seed | baseline | self-trained (teacher pseudo-labels) | " + " | ".join(
        f"ground-truth instances, {100 * f:g}%" for f in args.fractions) + " |"
    lines = [header, "|---:|" + "---:|" * (2 + len(args.fractions))]
    for seed in args.seeds:
        run_dir = args.runs / f"seed{seed}"
        scores = json.loads((run_dir / "instance_scores.json").read_text())
        cells = [scores[model][MASKS[0]]["ap50"] for model in MODELS]
        cells += [oracle_ap50(run_dir, args.data, seed, fraction) for fraction in args.fractions]
        lines.append(f"| {seed} | " + " | ".join(f"{100 * c:.2f}" for c in cells) + " |")
    table = "\n".join(lines)
    print("\nInstance AP50 on toy Cityscapes val, self-trained semantic masks:\n" + table)
    (args.runs / "instance_oracle_table.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
