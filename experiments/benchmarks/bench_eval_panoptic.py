"""Benchmark: official ``evaluatePanoptic`` vs ``panoptic_st.evaluation.panoptic.evaluate_panoptic``.

Generates 8 Cityscapes-like GT/prediction pairs at 2048x1024 (GT through the official ``convert2panoptic``), then
times both evaluators on the same files in one run and prints the times and the speed ratio (target: >= 3x).

Two prediction sets are timed: the one written by ``panoptic_st.evaluation.export.PanopticJsonWriter`` (the
project's own output) and one written by PIL with 24-bit segment ids (a foreign, slower-to-decode worst case).

    python experiments/benchmarks/bench_eval_panoptic.py [--images 8] [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))  # the fixture generator lives with the tests
sys.path.insert(0, str(REPO))

import numpy as np
from eval_fixtures import make_eval_fixture, official_panoptic

from panoptic_st.data.labels import LABEL_DIVISOR, LABEL_ID_TO_TRAIN_ID
from panoptic_st.evaluation.export import PanopticJsonWriter
from panoptic_st.evaluation.panoptic import evaluate_panoptic


def export_predictions(fx, out: Path) -> tuple[Path, Path]:
    """Re-write the fixture's panoptic predictions in the project contract through PanopticJsonWriter."""
    with PanopticJsonWriter(out / "panoptic.json", out / "panoptic") as writer:
        for im in fx.images:
            pan = np.full(im.pred_panoptic.shape, -1, np.int64)
            count: dict[int, int] = {}
            for sid, lab in im.pred_segments.items():
                t = int(LABEL_ID_TO_TRAIN_ID[lab])
                k = count.get(t, 0)
                count[t] = k + 1
                pan[im.pred_panoptic == sid] = t * LABEL_DIVISOR + k
            writer.add(im.prefix, pan)
    return out / "panoptic.json", out / "panoptic"


def time_pair(fx, pred_json: Path, pred_dir: Path, work: Path, repeats: int) -> tuple[float, float, float]:
    gt = (fx.panoptic_gt_json, fx.panoptic_gt_dir)
    t_off, t_ours, diff = math.inf, math.inf, 0.0
    for _ in range(repeats):  # best of n, alternating, so both see the same machine load
        t0 = time.perf_counter()
        ref = official_panoptic(*gt, pred_json, pred_dir, work / "official.json")
        t_off = min(t_off, time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours = evaluate_panoptic(*gt, pred_json, pred_dir)
        t_ours = min(t_ours, time.perf_counter() - t0)
        for key in ("All", "Things", "Stuff"):
            for m in ("pq", "sq", "rq"):
                diff = max(diff, abs(ref[key][m] - ours[key][m]))
    return t_off, t_ours, diff


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--keep", type=Path, default=None, help="generate into DIR and keep it"
    )
    args = ap.parse_args(argv)

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_pq_"))
    try:
        t0 = time.perf_counter()
        fx = make_eval_fixture(root, n_images=args.images, shape=(1024, 2048), seed=1, things=(20, 40))
        exported = export_predictions(fx, root / "exported")
        print(f"generated {args.images} images at 2048x1024 in {time.perf_counter() - t0:.1f} s")
        ok = True
        for name, (pj, pd) in (
            ("predictions written by export.py", exported),
            ("predictions written by PIL, 24-bit ids", (fx.panoptic_pred_json, fx.panoptic_pred_dir)),
        ):
            t_off, t_ours, diff = time_pair(fx, pj, pd, root, args.repeats)
            ratio = t_off / t_ours
            print(
                f"{name:42s} official evaluatePanoptic {t_off:6.3f} s | panoptic_st {t_ours:6.3f} s | "
                f"speed ratio {ratio:4.1f}x | max |dPQ/SQ/RQ| {diff:.1e}"
            )
            ok &= diff < 1e-9
        return 0 if ok else 1
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
