"""Instance branch on the toy benchmark over several seeds: target-val AP and AP50 of the instance baseline and of
instance self-training, both clustered inside the self-trained semantic branch's masks, and with ground-truth
semantic masks (the thesis's upper bound); per-class AP50 too. Trains the demo's stages per seed (reusing any
that finished with the same config, e.g. from `experiments/panoptic_toy_seeds.py`) and prints a Markdown table;
a seed's scores are saved in its run directory and reused unless `--rescore`.

    python experiments/instance_toy_table.py [--seeds 0 1 2] [--data data/toy] [--runs runs/panoptic_seeds]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from panoptic_st.config import load_config
from panoptic_st.data.labels import CLASS_NAMES, THING_TRAIN_IDS
from panoptic_st.pipeline import DemoSchedule, ensure_toy_data, run_stages
from panoptic_st.training import evaluate

MODELS = ("instance_baseline", "instance_self_train")
MASKS = ("self-trained semantic", "ground truth")
THINGS = [CLASS_NAMES[t] for t in THING_TRAIN_IDS]


def score_seed(run_dir: Path, data: Path, seed: int) -> dict:
    """{model: {masks: {ap, ap50, per_class: {class: ap50}}}} for one seed's trained stages."""
    stages = run_stages(run_dir, data, seed, DemoSchedule())
    semantic = stages["semantic_self_train"][1]["checkpoint"]
    scores: dict = {}
    for model in MODELS:
        for masks, semantic_checkpoint in zip(MASKS, (semantic, "null")):
            cfg = load_config("toy/instance_baseline", [
                f"seed={seed}", f"data.root={data}", "trainer.progress_bar=false",
                f"instance.semantic_checkpoint={semantic_checkpoint}",
                f"output_dir={run_dir / model / ('eval_pred_masks' if masks == MASKS[0] else 'eval_gt_masks')}"])
            metrics = evaluate(cfg, stages[model][1]["checkpoint"])["metrics"]
            scores.setdefault(model, {})[masks] = {
                "ap": metrics["val/ap"], "ap50": metrics["val/ap50"],
                "per_class": {c: metrics.get(f"val/ap50/{c}", float("nan")) for c in THINGS}}
    return scores


def tables(scores: dict[int, dict]) -> str:
    """Per seed AP/AP50 table, then per-class AP50 averaged over seeds."""
    seeds = sorted(scores)
    lines = ["| model | semantic masks | " + " | ".join(f"AP50 seed {s}" for s in seeds) + " | AP (mean) |",
             "|---|---|" + "---:|" * (len(seeds) + 1)]
    for model in MODELS:
        for masks in MASKS:
            row = [scores[s][model][masks] for s in seeds]
            mean_ap = sum(r["ap"] for r in row) / len(row)
            lines.append(f"| {model} | {masks} | " + " | ".join(f"{100 * r['ap50']:.2f}" for r in row)
                         + f" | {100 * mean_ap:.2f} |")
    lines += ["", "| model | semantic masks | " + " | ".join(THINGS) + " |", "|---|---|" + "---:|" * len(THINGS)]
    for model in MODELS:
        for masks in MASKS:
            means = [sum(scores[s][model][masks]["per_class"][c] for s in seeds) / len(seeds) for c in THINGS]
            lines.append(f"| {model} | {masks} | " + " | ".join(f"{100 * m:.1f}" for m in means) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", type=Path, default=Path("data/toy"))
    parser.add_argument("--runs", type=Path, default=Path("runs/panoptic_seeds"))
    parser.add_argument("--rescore", action="store_true", help="re-evaluate seeds that already have scores")
    args = parser.parse_args()
    ensure_toy_data(args.data, seed=0, quick=False)
    scores = {}
    for seed in args.seeds:
        saved = args.runs / f"seed{seed}" / "instance_scores.json"
        if saved.is_file() and not args.rescore:
            scores[seed] = json.loads(saved.read_text())
            continue
        scores[seed] = score_seed(args.runs / f"seed{seed}", args.data, seed)
        saved.write_text(json.dumps(scores[seed], indent=2))
    text = tables(scores)
    gains = {s: scores[s]["instance_self_train"][MASKS[0]]["ap50"] - scores[s]["instance_baseline"][MASKS[0]]["ap50"]
             for s in scores}
    print("\nInstance segmentation on toy Cityscapes val (AP in %):\n" + text)
    print("\nAP50 gain of self-training (self-trained semantic masks, points): "
          + json.dumps({s: round(100 * g, 2) for s, g in gains.items()}))
    (args.runs / "instance_table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
