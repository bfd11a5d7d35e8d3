"""Benchmark: the divergence guard's finiteness check of every parameter against `isfinite().all()` per tensor.

    python experiments/benchmarks/bench_finite_check.py [--threads 1] [--pairs 5] [--encoder tu-resnet18]

The guard checks the gradients before each optimizer step and the weights after it, and the momentum teacher checks
the student before averaging it in: three passes over every parameter a step. Input: the parameters of the toy
instance U-Net (`--encoder`, random weights). Reference: `torch.stack([t.isfinite().all() ...]).all()`; ours:
`panoptic_st.guards.all_finite` (one sum per tensor). The two alternate over `--pairs` pairs of 10 calls each; the
script prints both medians, their ratio, and checks that both find a NaN planted in the last tensor.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import segmentation_models_pytorch as smp
import torch
from torch import Tensor

from panoptic_st.guards import all_finite


def reference_all_finite(tensors: list[Tensor]) -> bool:
    """The check before: one `isfinite().all()` per tensor."""
    return bool(torch.stack([t.isfinite().all() for t in tensors]).all())


def seconds_per_call(check: Callable[[list[Tensor]], bool], tensors: list[Tensor], calls: int = 10) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        check(tensors)
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--encoder", default="tu-resnet18")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net = smp.Unet(args.encoder, encoder_weights=None, classes=16)
    tensors = [p.detach() for p in net.parameters()]
    planted = [*tensors[:-1], tensors[-1].clone().fill_(float("nan"))]
    assert reference_all_finite(tensors) and all_finite(tensors)
    assert not reference_all_finite(planted) and not all_finite(planted)
    reference, ours = [], []
    for _ in range(args.pairs):
        reference.append(seconds_per_call(reference_all_finite, tensors))
        ours.append(seconds_per_call(all_finite, tensors))
    print(f"{len(tensors)} tensors, {sum(t.numel() for t in tensors) / 1e6:.1f} M values, {args.threads} thread(s), "
          f"medians of {args.pairs} alternating pairs")
    print(f"isfinite().all() per tensor: {1e3 * statistics.median(reference):.1f} ms; "
          f"all_finite: {1e3 * statistics.median(ours):.1f} ms; "
          f"ratio {statistics.median(r / o for r, o in zip(reference, ours)):.1f}x")


if __name__ == "__main__":
    main()
