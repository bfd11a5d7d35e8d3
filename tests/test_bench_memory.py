"""The memory benchmark's helpers (`experiments/benchmarks/bench_memory.py`): batch bookkeeping, the fit, and one
profiled step and inference on the toy's small encoder."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from panoptic_st.config import load_config

BENCHMARKS = Path(__file__).resolve().parent.parent / "experiments" / "benchmarks"


@pytest.fixture()
def bench(monkeypatch):
    """The benchmark script imported as a module."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("bench_memory")


def test_config_batches_are_per_process_and_kept_global_over_gpus(bench):
    assert bench.config_batch(bench.real_config("synthia/deeplabv2_baseline")) == (8, 0)
    assert bench.config_batch(bench.real_config("gta5/deeplabv3_selftrain")) == (8, 2)
    assert bench.config_batch(bench.real_config("gta5/deeplabv3_selftrain"), 2) == (4, 1)
    assert bench.config_batch(bench.real_config("mixed/instance_selftrain")) == (2, 6)
    assert bench.config_batch(bench.real_config("mixed/instance_selftrain"), 2) == (1, 3)


def test_sources_share_their_steps(bench):
    keys = {bench.step_key(bench.real_config(name)) for name in bench.CONFIGS}
    assert len(bench.CONFIGS) == 22 and len(keys) == 8


def test_fit_recovers_fixed_and_per_crop_parts(bench):
    peaks = {"1,1": 10 + 2 + 5, "2,1": 10 + 4 + 5, "1,2": 10 + 2 + 10}
    parts = bench.fit({k: {"peak": v} for k, v in peaks.items()}, pixel_ratio=4.0)
    assert parts == (10, 8, 20)
    assert bench.step_memory(parts, (8, 2)) == 10 + 64 + 40
    baseline = bench.fit({"2,0": {"peak": 10 + 2 * 3}, "3,0": {"peak": 10 + 3 * 3}}, pixel_ratio=1.0)
    assert baseline == (10, 3, 0)


@pytest.fixture()
def one_thread():
    """One torch thread (the counts do not depend on it; a busy machine slows two threads down a lot)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_profiled_step_counts_weights_optimizer_state_and_activations(bench, one_thread):
    cfg = load_config("toy/semantic_selftrain")
    one = bench.measure_step(cfg, 1, 1, (32, 64))
    two = bench.measure_step(cfg, 1, 2, (32, 64))
    weights = 4 * one["params"]
    assert one["live_before"] >= 4 * weights  # student, teacher and AdamW's two moments
    assert one["peak"] > one["live_before"] + 4 * one["trainable"]  # gradients and activations on top
    assert two["peak"] > one["peak"] and abs(two["live_before"] - one["live_before"]) < 0.05 * weights
    inference = bench.measure_inference(cfg, (64, 128))
    assert weights <= inference["live_before"] < inference["peak"] < one["peak"]
