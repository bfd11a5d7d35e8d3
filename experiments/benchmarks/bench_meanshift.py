"""Benchmark: torch `mean_shift` against scikit-learn `MeanShift(bin_seeding=True)`, then peak memory at 200k points.

    python experiments/benchmarks/bench_meanshift.py [--threads 1] [--repeats 3]

Data: isotropic 8-dimensional Gaussian blobs (std 0.1, centres uniform in [-10, 10]^8) clustered at bandwidth 0.5;
at this spread scikit-learn recovers the 12 blobs. Both implementations run with the same number of threads
(torch intra-op and every OpenMP/BLAS pool through threadpoolctl). Times are the best of `--repeats` runs.
Peak memory is the peak resident set size (`resource.getrusage(...).ru_maxrss`) of a fresh child process that
clusters the 200k points, printed in total and above the process's RSS just before clustering.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import numpy as np
import torch
from sklearn.cluster import MeanShift
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from panoptic_st.instance.meanshift import mean_shift

BANDWIDTH = 0.5
DIM = 8
BLOBS = 12
STD = 0.1


def blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n float32 points in 12 blobs of 8 dimensions and their blob ids."""
    x, y = make_blobs(n, DIM, centers=BLOBS, cluster_std=STD, center_box=(-10, 10), random_state=seed)
    return x.astype(np.float32), y


def best_time(fn, repeats: int):
    """Smallest wall time of `repeats` calls and the last result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def peak_memory_child(n: int, threads: int, queue) -> None:
    """Cluster n points in this (fresh) process and report RSS before, peak RSS, time and cluster count."""
    torch.set_num_threads(threads)
    points = torch.from_numpy(blobs(n, seed=1)[0])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    _, centers = mean_shift(points, BANDWIDTH)
    elapsed = time.perf_counter() - start
    queue.put((before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, elapsed, centers.shape[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=1, help="threads for torch and scikit-learn (default 1)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--big", type=int, default=200_000)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    x, truth = blobs(args.points)
    points = torch.from_numpy(x)
    with threadpool_limits(limits=args.threads):
        mean_shift(points[:2000], BANDWIDTH)  # warm-up
        t_ours, (labels, centers) = best_time(lambda: mean_shift(points, BANDWIDTH), args.repeats)
        t_sk, model = best_time(lambda: MeanShift(bandwidth=BANDWIDTH, bin_seeding=True).fit(x), args.repeats)
    ari = adjusted_rand_score(model.labels_, labels.numpy())
    print(
        f"data: {args.points} points, {DIM}-d, {BLOBS} blobs (std {STD}), bandwidth {BANDWIDTH}, "
        f"threads {args.threads}, best of {args.repeats}"
    )
    print(
        f"sklearn MeanShift(bin_seeding=True): {t_sk:8.3f} s  {len(model.cluster_centers_)} clusters  "
        f"ARI vs truth {adjusted_rand_score(truth, model.labels_):.4f}"
    )
    print(
        f"panoptic_st mean_shift (torch)     : {t_ours:8.3f} s  {centers.shape[0]} clusters  "
        f"ARI vs truth {adjusted_rand_score(truth, labels.numpy()):.4f}"
    )
    print(f"speed-up: {t_sk / t_ours:.1f}x   ARI(sklearn, torch): {ari:.5f}")

    queue = mp.get_context("spawn").Queue()
    child = mp.get_context("spawn").Process(target=peak_memory_child, args=(args.big, args.threads, queue))
    child.start()
    before, peak, elapsed, n_clusters = queue.get()
    child.join()
    print(
        f"{args.big} points: {elapsed:.2f} s, {n_clusters} clusters; peak RSS {peak / 1024:.0f} MB "
        f"(ru_maxrss of a fresh process; {(peak - before) / 1024:.0f} MB above its RSS before clustering)"
    )


if __name__ == "__main__":
    main()
