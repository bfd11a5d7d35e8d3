"""Instance branch on the toy benchmark over several seeds: target-val AP and AP50 of the instance baseline and of
instance self-training, both clustered inside the self-trained semantic branch's masks, and with ground-truth
semantic masks (the thesis's upper bound); per-class AP50 too. Trains the demo's stages per seed (reusing any
that finished with the same config, e.g. from `experiments/panoptic_toy_seeds.py`) and prints a Markdown table;
a seed's scores are saved in its run directory and reused unless `--rescore`.

With `--significance`, also the self-training gain in AP50 (self-trained semantic masks) on the 200 val images
and on 800 held-out images (toy Cityscapes val images 200-999 of the same generator, written to `--heldout`:
every setting so far was chosen on the 200), each with a paired bootstrap over images (95% interval, share of
resamples with a gain).

    python experiments/instance_toy_table.py [--seeds 0 1 2] [--data data/toy] [--runs runs/panoptic_seeds]
        [--significance] [--heldout data/toy_heldout]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from panoptic_st.config import load_config
from panoptic_st.data.labels import CLASS_NAMES, THING_TRAIN_IDS
from panoptic_st.data.toy import make_toy
from panoptic_st.experiments.toy import (
    HELDOUT,
    MASKS,
    MODELS,
    gain_cells,
    saved_or_computed,
    significance_seed,
)
from panoptic_st.pipeline import ensure_toy_data, run_stages
from panoptic_st.prediction import evaluate

THINGS = [CLASS_NAMES[t] for t in THING_TRAIN_IDS]
EVAL_FOLDERS = {MASKS[0]: "eval_pred_masks", MASKS[1]: "eval_gt_masks"}


def metric_value(metrics: dict[str, float | None], key: str) -> float:
    """A metric of `evaluate`, NaN where it is undefined (None) or absent."""
    value = metrics.get(key)
    return float("nan") if value is None else value


def score_seed(run_dir: Path, data: Path, seed: int) -> dict:
    """{model: {masks: {ap, ap50, per_class: {class: ap50}, per_class_ap: {class: ap}}}} for one seed's stages;
    each evaluation is written to `<model>/eval_pred_masks/eval.json` or `<model>/eval_gt_masks/eval.json`."""
    stages = run_stages(run_dir, data, seed)
    semantic = stages["semantic_self_train"]["checkpoint"]
    cfg = load_config("toy/instance_baseline", [f"seed={seed}", f"data.root={data}", "trainer.progress_bar=false"])
    scores: dict = {}
    for model in MODELS:
        for masks, spec in zip(MASKS, (f"semantic:{semantic}", "gt")):
            out = run_dir / model / EVAL_FOLDERS[masks] / "eval.json"
            metrics = evaluate(cfg, stages[model]["checkpoint"], masks=spec, out=out)["metrics"]
            scores.setdefault(model, {})[masks] = {
                "ap": metric_value(metrics, "val/ap"), "ap50": metric_value(metrics, "val/ap50"),
                "per_class": {c: metric_value(metrics, f"val/ap50/{c}") for c in THINGS},
                "per_class_ap": {c: metric_value(metrics, f"val/ap/{c}") for c in THINGS}}
    return scores


def significance_table(results: dict[int, dict]) -> str:
    """Markdown rows of `significance_seed` results, one per seed and split."""
    lines = ["| seed | split | images | AP50 baseline | AP50 self-trained | gain | 95% interval | P(gain > 0) |",
             "|---:|---|---:|---:|---:|---:|---|---:|"]
    for seed, splits in sorted(results.items()):
        for split, r in splits.items():
            lines.append(f"| {seed} | {split} | {r['images']} | {gain_cells(r)} | {r['p_better']:.3f} |")
    return "\n".join(lines)


def tables(scores: dict[int, dict]) -> str:
    """Per seed AP/AP50 table, then per-class AP50 and per-class AP, each averaged over seeds."""
    seeds = sorted(scores)
    lines = ["| model | semantic masks | " + " | ".join(f"AP50 seed {s}" for s in seeds) + " | AP (mean) |",
             "|---|---|" + "---:|" * (len(seeds) + 1)]
    for model in MODELS:
        for masks in MASKS:
            row = [scores[s][model][masks] for s in seeds]
            mean_ap = sum(r["ap"] for r in row) / len(row)
            lines.append(f"| {model} | {masks} | " + " | ".join(f"{100 * r['ap50']:.2f}" for r in row)
                         + f" | {100 * mean_ap:.2f} |")
    for key, title in (("per_class", "AP50"), ("per_class_ap", "AP")):
        lines += ["", f"Per-class {title}, mean of the seeds:", "",
                  "| model | semantic masks | " + " | ".join(THINGS) + " |", "|---|---|" + "---:|" * len(THINGS)]
        for model in MODELS:
            for masks in MASKS:
                means = [sum(scores[s][model][masks][key][c] for s in seeds) / len(seeds) for c in THINGS]
                lines.append(f"| {model} | {masks} | " + " | ".join(f"{100 * m:.1f}" for m in means) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", type=Path, default=Path("data/toy"))
    parser.add_argument("--runs", type=Path, default=Path("runs/panoptic_seeds"))
    parser.add_argument("--rescore", action="store_true", help="re-evaluate seeds that already have scores")
    parser.add_argument("--significance", action="store_true",
                        help="paired bootstrap of the self-training gain on val and on held-out images")
    parser.add_argument("--heldout", type=Path, default=Path("data/toy_heldout"))
    args = parser.parse_args()
    ensure_toy_data(args.data, seed=0, quick=False)
    scores = {seed: saved_or_computed(args.runs / f"seed{seed}" / "instance_scores.json", args.rescore,
                                      lambda seed=seed: score_seed(args.runs / f"seed{seed}", args.data, seed))
              for seed in args.seeds}
    text = tables(scores)
    gains = {s: scores[s]["instance_self_train"][MASKS[0]]["ap50"] - scores[s]["instance_baseline"][MASKS[0]]["ap50"]
             for s in scores}
    print("\nInstance segmentation on toy Cityscapes val (AP in %):\n" + text)
    print("\nAP50 gain of self-training (self-trained semantic masks, points): "
          + json.dumps({s: round(100 * g, 2) for s, g in gains.items()}))
    if args.significance:
        if not (args.heldout / "cityscapes" / "val.txt").is_file():
            make_toy(args.heldout, seed=0, **HELDOUT)
        splits = {"val": args.data, "held-out": args.heldout}
        results = {seed: saved_or_computed(args.runs / f"seed{seed}" / "instance_significance.json", args.rescore,
                                           lambda seed=seed: significance_seed(args.runs / f"seed{seed}", splits))
                   for seed in args.seeds}
        text += "\n\nSelf-training gain in AP50, paired bootstrap over images (points):\n" + significance_table(results)
        print("\n" + text.split("\n\n")[-1])
    (args.runs / "instance_table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
