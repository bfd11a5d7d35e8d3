"""The whole demo pipeline over several training seeds: panoptic PQ of baseline vs self-trained per seed.

    python experiments/panoptic_toy_seeds.py [--seeds 0 1 2] [--data data/toy] [--out runs/panoptic_seeds]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from panoptic_st.pipeline import run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", type=Path, default=Path("data/toy"))
    parser.add_argument("--out", type=Path, default=Path("runs/panoptic_seeds"))
    args = parser.parse_args()
    for seed in args.seeds:
        run_demo(args.out / f"seed{seed}", args.data, seed=seed)
    header = ("| seed | PQ baseline | PQ self-trained | mIoU-19 baseline | mIoU-19 self-trained | AP50 baseline | "
              "AP50 self-trained |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|"]
    for path in sorted(args.out.glob("seed*/results.json")):
        r = json.loads(path.read_text())["results"]
        b, s = r["baseline"], r["self-trained"]
        cells = [b["pq"]["All"]["pq"], s["pq"]["All"]["pq"], b["miou"]["miou_19"], s["miou"]["miou_19"],
                 b["ap"]["ap50"], s["ap"]["ap50"]]
        lines.append(f"| {path.parent.name[4:]} | " + " | ".join(f"{100 * v:.2f}" for v in cells) + " |")
    table = "\n".join(lines)
    print(table)
    (args.out / "table.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
