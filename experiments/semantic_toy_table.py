"""Semantic branch on the toy benchmark over several seeds: source-only baseline, AdaBN, SAC self-training and a
target-supervised oracle with as many steps as baseline + self-training. Prints and saves a Markdown table.
A stage whose run directory already holds a finished run with the same config is reused, not retrained.

    python experiments/semantic_toy_table.py [--seeds 0 1 2] [--data data/toy] [--out runs/semantic_table]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from panoptic_st.config import load_config
from panoptic_st.pipeline import ensure_toy_data
from panoptic_st.prediction import evaluate
from panoptic_st.stages import Stage, run_chain

ROWS = ("baseline", "adabn", "self_train", "oracle")
SELF_TRAINING_STEPS = 400
"""The table's self-training runs longer than the demo's (`toy/semantic_selftrain`); the oracle config trains as many
steps as the table's baseline and self-training together."""


def seed_stages(out: Path) -> list[Stage]:
    """The baseline, self-training from it and the oracle, each in its folder under `out`."""
    return [Stage("toy/semantic_baseline", output_dir=out / "baseline", name="baseline"),
            Stage("toy/semantic_selftrain", "baseline", overrides=(f"trainer.max_steps={SELF_TRAINING_STEPS}",),
                  output_dir=out / "self_train", name="self_train"),
            Stage("toy/semantic_oracle", output_dir=out / "oracle", name="oracle")]


def run_seed(seed: int, data: Path, out: Path, extra: list[str]) -> dict[str, dict[str, float]]:
    """All four rows for one training seed; returns {row: {miou16, miou19}}."""
    common = [f"seed={seed}", f"data.root={data}", "trainer.progress_bar=false", *extra]
    results = run_chain(seed_stages(out), common=common)
    base_cfg = load_config("toy/semantic_baseline", [*common, f"output_dir={out / 'baseline'}"])
    results["adabn"] = evaluate(base_cfg, results["baseline"]["checkpoint"], adabn_first=True)
    return {row: {k: 100.0 * results[row]["metrics"][f"val/{k}"] for k in ("miou16", "miou19")} for row in ROWS}


def table(scores: dict[int, dict[str, dict[str, float]]]) -> str:
    """Markdown table: one column per seed (every seed found under --out), rows x protocols."""
    seeds = sorted(scores)
    lines = ["| method | protocol | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|---|" + "---:|" * len(seeds)]
    for row in ROWS:
        for key, label in (("miou16", "mIoU-16"), ("miou19", "mIoU-19")):
            lines.append(f"| {row} | {label} | " + " | ".join(f"{scores[s][row][key]:.1f}" for s in seeds) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", type=Path, default=Path("data/toy"))
    parser.add_argument("--out", type=Path, default=Path("runs/semantic_table"))
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every stage")
    args = parser.parse_args()
    ensure_toy_data(args.data, seed=0, quick=False)
    start = time.perf_counter()
    for seed in args.seeds:
        seed_scores = run_seed(seed, args.data, args.out / f"seed{seed}", args.overrides)
        (args.out / f"seed{seed}" / "scores.json").write_text(json.dumps(seed_scores, indent=2))
        print(f"seed {seed}: " + json.dumps(seed_scores), flush=True)
    scores = {int(p.parent.name[4:]): json.loads(p.read_text()) for p in sorted(args.out.glob("seed*/scores.json"))}
    text = table(scores)
    gains = {s: {"vs_baseline": scores[s]["self_train"]["miou19"] - scores[s]["baseline"]["miou19"],
                 "vs_adabn": scores[s]["self_train"]["miou19"] - scores[s]["adabn"]["miou19"]} for s in scores}
    print("\nTarget-val mIoU (toy Cityscapes val):\n" + text)
    print("\nself-training gain (mIoU-19 points): " + json.dumps(gains))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(text + "\n")
    (args.out / "results.json").write_text(json.dumps({"scores": scores, "gains": gains,
                                                       "seconds": round(time.perf_counter() - start)}, indent=2))


if __name__ == "__main__":
    main()
