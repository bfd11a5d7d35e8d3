"""Shared by the evaluator benchmarks: time the official script and ours in alternating pairs, print every pair, the
medians, the median ratio and the largest difference of any metric."""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from panoptic_st.evaluation.synthetic import EvalFixture, make_eval_fixture


def flatten_metrics(result, prefix: str = "") -> dict[str, float]:
    """Every number of a nested result dict (lists included) by its path, e.g. ``per_class/7/pq``."""
    if isinstance(result, Mapping):
        items = result.items()
    elif isinstance(result, (list, tuple)):
        items = enumerate(result)
    elif isinstance(result, (int, float)) and not isinstance(result, bool):
        return {prefix: float(result)}
    else:
        return {}
    out: dict[str, float] = {}
    for key, value in items:
        out.update(flatten_metrics(value, f"{prefix}/{key}" if prefix else str(key)))
    return out


def max_difference(reference: dict[str, float], ours: dict[str, float]) -> float:
    """Largest absolute difference over the reference's metrics (NaN = NaN; a missing or one-sided NaN is inf)."""
    worst = 0.0
    for key, ref in reference.items():
        value = ours.get(key, math.nan if math.isnan(ref) else math.inf)
        if math.isnan(ref) and math.isnan(value):
            continue
        diff = abs(ref - value)
        worst = max(worst, math.inf if math.isnan(diff) else diff)
    return worst


def time_pairs(
    name: str,
    reference: Callable[[], dict],
    ours: Callable[[], dict],
    metrics: Callable[[dict], dict],
    pairs: int,
) -> tuple[float, float]:
    """Run reference then ours ``pairs`` times, print each pair and the summary; returns (median ratio, max diff)."""
    t_ref, t_ours, ratios, diff, n_metrics = [], [], [], 0.0, 0
    for k in range(pairs):
        t0 = time.perf_counter()
        ref = reference()
        t1 = time.perf_counter()
        res = ours()
        t2 = time.perf_counter()
        t_ref.append(t1 - t0)
        t_ours.append(t2 - t1)
        ratios.append(t_ref[-1] / t_ours[-1])
        ref_metrics = flatten_metrics(metrics(ref))
        n_metrics = len(ref_metrics)
        diff = max(diff, max_difference(ref_metrics, flatten_metrics(metrics(res))))
        print(f"  {name} pair {k + 1}: official {t_ref[-1]:6.3f} s | panoptic_st {t_ours[-1]:6.3f} s | "
              f"ratio {ratios[-1]:4.2f}x")  # fmt: skip
    ratio = statistics.median(ratios)
    print(f"{name}: median official {statistics.median(t_ref):6.3f} s | median panoptic_st "
          f"{statistics.median(t_ours):6.3f} s | median ratio {ratio:4.2f}x | max |difference| over "
          f"{n_metrics} metrics {diff!r}")  # fmt: skip
    return ratio, diff


def single_process_arguments(doc: str, argv=None) -> argparse.Namespace:
    """``--images``, ``--pairs`` and ``--workers`` of a benchmark against a one-process official script; prints
    the workers line."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=5, help="alternating official/ours runs per prediction set")
    ap.add_argument("--workers", type=int, default=1, help="threads for ours (the official script uses one process)")
    args = ap.parse_args(argv)
    print(f"workers: official 1 process (it has no pool), panoptic_st {args.workers} thread(s); "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    return args


@contextmanager
def full_size_fixture(prefix: str, images: int) -> Iterator[tuple[EvalFixture, Path]]:
    """(the evaluation fixture of `images` scenes at 2048x1024 with 20-40 things each, its temporary folder),
    generated with its time printed; the folder is removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        t0 = time.perf_counter()
        fx = make_eval_fixture(root, n_images=images, shape=(1024, 2048), seed=1, things=(20, 40))
        print(f"generated {images} images at 2048x1024 in {time.perf_counter() - t0:.1f} s")
        yield fx, root
    finally:
        shutil.rmtree(root, ignore_errors=True)
