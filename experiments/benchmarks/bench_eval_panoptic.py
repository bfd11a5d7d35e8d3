"""Benchmark: official ``evaluatePanoptic`` vs ``panoptic_st.evaluation.panoptic.evaluate_panoptic``.

Generates Cityscapes-like GT/prediction pairs at 2048x1024 (``panoptic_st.evaluation.synthetic``; GT through the
official ``convert2panoptic``) for each scene set (``--things``: thing segments per GT image; default: 20-40 and
5-30), then times both evaluators on the same files in alternating pairs (target: >= 4x) for two prediction sets:
the one written by ``panoptic_st.evaluation.export.PanopticJsonWriter`` (the project's own output) and one written
by PIL with 24-bit segment ids (a foreign, slower-to-decode case). Both run with one worker per CPU: the official
script's default process pool, and as many threads for ours.

    python experiments/benchmarks/bench_eval_panoptic.py [--images 8] [--pairs 5] [--things 20-40 5-30] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench_eval_pairs import time_pairs

from panoptic_st.evaluation.export import PanopticJsonWriter
from panoptic_st.evaluation.official import official_panoptic
from panoptic_st.evaluation.panoptic import evaluate_panoptic
from panoptic_st.evaluation.synthetic import EvalFixture, contract_panoptic, make_eval_fixture


def export_predictions(fx: EvalFixture, out: Path) -> tuple[Path, Path]:
    """Re-write the fixture's panoptic predictions in the project contract through PanopticJsonWriter."""
    with PanopticJsonWriter(out / "panoptic.json", out / "panoptic") as writer:
        for im in fx.images:
            writer.add(im.prefix, contract_panoptic(im))
    return out / "panoptic.json", out / "panoptic"


def segments_per_image(json_path: Path) -> float:
    annotations = json.loads(json_path.read_text())["annotations"]
    return sum(len(a["segments_info"]) for a in annotations) / len(annotations)


def official_metrics(result: dict) -> dict:
    return {key: result[key] for key in ("All", "Things", "Stuff", "per_class")}


def bench_scene_set(root: Path, images: int, things: tuple[int, int], pairs: int) -> bool:
    t0 = time.perf_counter()
    fx = make_eval_fixture(root, n_images=images, shape=(1024, 2048), seed=1, things=things)
    exported = export_predictions(fx, root / "exported")
    print(f"\n{things[0]}-{things[1] - 1} things per image: generated {images} images at 2048x1024 in "
          f"{time.perf_counter() - t0:.1f} s; segments per image: GT {segments_per_image(fx.panoptic_gt_json):.1f}, "
          f"predicted {segments_per_image(fx.panoptic_pred_json):.1f}")  # fmt: skip
    gt = (fx.panoptic_gt_json, fx.panoptic_gt_dir)
    workers = os.cpu_count() or 1
    ok = True
    for name, (pred_json, pred_dir) in (
        ("predictions written by export.py", exported),
        ("predictions written by PIL, 24-bit ids", (fx.panoptic_pred_json, fx.panoptic_pred_dir)),
    ):
        _, diff = time_pairs(
            name,
            lambda: official_panoptic(*gt, pred_json, pred_dir, root / "official.json"),  # noqa: B023
            lambda: evaluate_panoptic(*gt, pred_json, pred_dir, workers=workers),  # noqa: B023
            official_metrics,
            pairs,
        )
        ok &= diff == 0.0
    return ok


def parse_range(text: str) -> tuple[int, int]:
    low, high = (int(v) for v in text.split("-"))
    return low, high + 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=5, help="alternating official/ours runs per prediction set")
    ap.add_argument("--things", type=parse_range, nargs="+", default=[(20, 41), (5, 31)],
                    help="thing segments per GT image, LOW-HIGH (inclusive), one scene set each")  # fmt: skip
    ap.add_argument("--keep", type=Path, default=None, help="generate into DIR and keep it")
    args = ap.parse_args(argv)
    print(f"workers: official multiprocessing pool of {os.cpu_count()} processes (its default, one per CPU), "
          f"panoptic_st {os.cpu_count()} threads; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench_pq_"))
    try:
        ok = True
        for things in args.things:
            ok &= bench_scene_set(base / f"things_{things[0]}_{things[1] - 1}", args.images, things, args.pairs)
        return 0 if ok else 1
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
