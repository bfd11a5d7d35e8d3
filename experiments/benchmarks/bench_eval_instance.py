"""Benchmark: official ``evalInstanceLevelSemanticLabeling`` vs ``panoptic_st.evaluation.instance``.

Generates 8 Cityscapes-like GT images at 2048x1024 with instance predictions (``.txt`` lists + mask PNGs), times
both evaluators on the same files in one run and prints the times and the speed ratio (target: faster).
The official run includes building its GT instance cache (fresh, as on a first run). Two prediction sets: masks
written by ``panoptic_st.evaluation.export.write_instance_prediction`` and masks written by PIL (some as RGB).

    python experiments/benchmarks/bench_eval_instance.py [--images 8] [--repeats 2]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))  # the fixture generator lives with the tests
sys.path.insert(0, str(REPO))

from eval_fixtures import make_eval_fixture, official_instance, to_contract

from panoptic_st.evaluation.export import write_instance_prediction
from panoptic_st.evaluation.instance import evaluate_instances


def time_pair(fx, pred_dir: Path, work: Path, repeats: int) -> tuple[float, float, float]:
    t_off = t_ours = math.inf
    diff = 0.0
    for _ in range(repeats):  # best of n, alternating, so both see the same machine load
        t0 = time.perf_counter()
        ref = official_instance(fx.gt_dir, pred_dir, work)  # removes its GT cache first
        t_off = min(t_off, time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours = evaluate_instances(fx.gt_dir, pred_dir)
        t_ours = min(t_ours, time.perf_counter() - t0)
        a, b = np.asarray(ref["resultApMatrix"]), np.asarray(ours["resultApMatrix"])
        diff = max(diff, float(np.nanmax(np.abs(a - b))))
    return t_off, t_ours, diff


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench_ap_"))
    try:
        t0 = time.perf_counter()
        fx = make_eval_fixture(root, n_images=args.images, shape=(1024, 2048), seed=1, things=(20, 40))
        n_masks = sum(len(im.pred_masks) for im in fx.images)
        print(f"generated {args.images} images at 2048x1024, {n_masks} predicted masks, "
              f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        exported = root / "exported"
        for im in fx.images:
            c = to_contract(im)
            write_instance_prediction(
                exported, im.prefix, c["pred_masks"], c["pred_labels"], c["pred_scores"]
            )
        ok = True
        for name, pred_dir in (
            ("masks written by export.py", exported),
            ("masks written by PIL", fx.instance_pred_dir),
        ):
            t_off, t_ours, diff = time_pair(fx, pred_dir, root / "work", args.repeats)
            print(
                f"{name:28s} official evalInstanceLevelSemanticLabeling {t_off:6.3f} s | panoptic_st "
                f"{t_ours:6.3f} s | speed ratio {t_off / t_ours:4.1f}x | max |dAP| {diff:.1e}"
            )
            ok &= diff < 1e-9
        return 0 if ok else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
