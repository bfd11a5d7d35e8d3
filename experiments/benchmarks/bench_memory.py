"""Benchmark: memory of one training step and of 1024 x 2048 inference for every real configuration, measured on the
CPU as a proxy for the GPU memory a run needs.

    python experiments/benchmarks/bench_memory.py [--threads 1] [--scale 0.5] [--json out.json] [--cache done.json]
    python experiments/benchmarks/bench_memory.py --load out.json      # print the table of a saved run again

Configurations: `{synthia,gta5,mixed}/deeplabv{2,3,3plus}_{baseline,selftrain}` and
`{synthia,mixed}/instance_{baseline,selftrain}`, built as training builds them (`build_module`), random weights
(no ImageNet files), fp32 (`trainer.precision=32-true`, as the configs). Configurations that differ only in their
source datasets run the same networks on the same crops, so each distinct step is measured once and reported for
every configuration that shares it.

What one measured step runs (the module's own `training_step`, then backward, the optimizer step and the momentum
teacher's update, in the order Lightning runs them, on synthetic images and labels):

* semantic baseline: the student on the source crops;
* semantic self-training (SAC): the student on the source crops, the frozen EMA teacher on `group_size` views of
  every target crop (no gradients), the student on the noisy views, one backward through both student graphs;
* instance baseline: the U-Net on the source crops (SPOCO losses);
* instance self-training: student and momentum U-Net (rotation consistency) on the source and target crops, the
  frozen DeepLabV2 (a random checkpoint of the config's semantic architecture) and the momentum U-Net on the target
  crops for the pseudo-labels. The mean-shift clustering itself is replaced by a fixed map of
  `INSTANCES_PER_IMAGE` boxes (about a Cityscapes image's count of thing instances): its distances are computed in
  bounded chunks of 2^20 (a few MB), and on random embeddings it would dominate the run time for nothing.

Source labels are the same box map inside random stuff classes. Targets are crops of `data.crop` (the target
pipeline resizes to `data.target_size`, rescales and crops to `data.crop`).

How memory is measured, and why this way: `torch.profiler` with `profile_memory=True` records every allocation and
free of torch's CPU allocator with the allocator's running total of live bytes. The profiler is started before the
module is built, so the total covers weights, teacher, frozen networks, optimizer state, gradients, inputs and
activations; the peak of that total inside the measured step is the step's memory. This is the CPU counterpart of
`torch.cuda.max_memory_allocated`: exact tensor bytes, not disturbed by glibc's heap caching or by the shared
library pages that peak RSS (`ru_maxrss`, `VmHWM`) would mix in, and independent of other processes. Every
measurement runs in a fresh subprocess so that peaks never mix. Before the measured step the optimizer state
(SGD momentum or Adam moments) is created by one optimizer step on zero gradients, and `zero_grad(set_to_none=True)`
frees the gradients, as Lightning does; so the peak holds weights, optimizer state, the gradients written by the
backward pass and the activations it still needs.

Fixed and per-image parts: peaks at batch (source, target) = (2, 0) and (3, 0) for the baselines and (1, 1), (2, 1),
(1, 2) for self-training give, by differences, the memory per source crop, per target crop (its views, the
teacher's and the frozen networks' passes) and the fixed part (the intercept). The step at the config's batch is
fixed + n_source x per source + n_target x per target. The peak is the largest over the step of (activations still
held + gradients written so far): with few pixels it falls late in the backward pass, where the gradients weigh
most, and its growth per pixel is smaller than with many. So the measured batches hold at least half a full crop of
pixels (baselines from 2 crops, which BatchNorm in training mode on DeepLabV3's pooled 1 x 1 features needs anyway),
and the intercept is then weights, optimizer state, teacher and frozen networks plus the gradients net of the
activations already freed when they are written. A self-training step at 512 x 1024 needs more than this
machine's memory even at batch 1 + 1 (5 crops through the student), so the training steps are measured at
`--scale` times the crop side (default 0.5: a quarter of the pixels) and the per-crop parts are scaled by the pixel
ratio (activations of these fully convolutional networks grow with the pixel count; only DeepLabV3's image pooling
branch does not, and it is tiny). Each baseline is measured once more at the full crop and batch 2: what that
measurement exceeds the scaled prediction by is a once-per-step transient that grows with the pixels but not with
the batch (on the CPU the largest allocations of the DeepLabs' backward are the im2col buffers of the dilated 3 x 3
convolutions on the 2048-channel features, 2048 x 9 x the feature map, made image by image), and it is added to the
fixed part of every configuration with that network at that crop (the self-training steps run the same backward).

Inference: the network a configuration trains (DeepLab for semantic configurations, the embedding U-Net for
instance ones), in eval mode, channels_last, frozen, as the checkpoint loaders build it, on one 1024 x 2048 image
under `torch.inference_mode`: softmax and argmax for DeepLab (`predict_images`), embeddings for the U-Net. A
panoptic prediction runs the DeepLab, then the U-Net: its peak is about the larger of the two plus the other's
weights (~0.2 GB) and the semantic outputs kept for the clustering.

Batch sizes and DDP: `data.batch_size` and `data.target_batch_size` are per process. `StepBatchSampler.batch` gives
each of the `world_size` processes `batch_size` items of a global batch of `world_size x batch_size`
(`panoptic_st/data/sampling.py`), so N GPUs at the config's settings each need the single-device memory and train
on N times the batch. The "per GPU, N GPUs" columns are for keeping the config's global batch instead:
`data.batch_size=ceil(batch_size/N)`, `data.target_batch_size=ceil(target_batch_size/N)`, split by the config's
`source_mix` as `batch_split` does (shown per process as source+target), plus DDP's gradient buckets (one more copy
of the trainable parameters' gradients, `gradient_as_bucket_view=False`), an estimate.

From CPU to CUDA: the numbers are tensor bytes of the same computation on the CPU. On a GPU add the CUDA context
(~0.3-0.5 GB), cuDNN workspaces and the caching allocator's reserve and fragmentation: an estimated +20-30% over
the step memory (an estimate, not a measurement: nothing ran on a GPU here). Step times are of the measured step
(the smallest measured batch at the measured crop) on this CPU, with the profiler on (its overhead is small next to
ResNet-101 convolutions).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from panoptic_st.config import ExperimentConfig, load_config
from panoptic_st.data.datamodule import batch_split
from panoptic_st.data.labels import NUM_CLASSES, THING_TRAIN_IDS
from panoptic_st.models.deeplab import ARCHS, build_deeplab
from panoptic_st.models.unet import build_embedding_unet
from panoptic_st.training import build_module, data_mode

SEMANTIC = [f"{source}/{arch}_{mode}" for source in ("synthia", "gta5", "mixed") for arch in ARCHS
            for mode in ("baseline", "selftrain")]
INSTANCE = [f"{source}/instance_{mode}" for source in ("synthia", "mixed") for mode in ("baseline", "selftrain")]
CONFIGS = SEMANTIC + INSTANCE
INFERENCE_SIZE = (1024, 2048)
INSTANCES_PER_IMAGE = 20
GPU_COUNTS = (2, 4)
FULL_CROP_BATCH = 2
STEP = "measured_step"
GB = 1e9


def real_config(name: str, overrides: list[str] | None = None) -> ExperimentConfig:
    """A real configuration without ImageNet weight files (random weights)."""
    branch = "instance" if "/instance_" in name else "semantic"
    return load_config(name, [f"{branch}.encoder_weights_file=null", *(overrides or [])])


def step_key(cfg: ExperimentConfig) -> str:
    """What determines one step's memory apart from the batch: configurations with the same key share a step."""
    if cfg.stage == "semantic":
        s = cfg.semantic
        fields = [s.arch, s.encoder, s.output_stride, s.mode, s.optimizer, s.group_size, s.bn_adapt]
    else:
        i = cfg.instance
        fields = [i.encoder, i.embedding_dim, i.mode, i.consistency_weight > 0, semantic_arch(i.semantic_checkpoint)]
    return json.dumps([cfg.stage, *fields, cfg.data.crop])


def network_key(cfg: ExperimentConfig) -> str:
    """What determines the inference network."""
    if cfg.stage == "semantic":
        return json.dumps([cfg.semantic.arch, cfg.semantic.encoder, cfg.semantic.output_stride])
    return json.dumps([cfg.instance.encoder, cfg.instance.embedding_dim])


def semantic_arch(checkpoint: str | None) -> str | None:
    """The DeepLab architecture named in a semantic checkpoint path (`runs/<source>_<arch>_<mode>/...`)."""
    if not checkpoint:
        return None
    return next((a for a in sorted(ARCHS, key=len, reverse=True) if f"_{a}_" in checkpoint), "deeplabv2")


def config_batch(cfg: ExperimentConfig, processes: int = 1) -> tuple[int, int]:
    """(source, target) crops per process of a step at the config's batch, kept global over `processes`."""
    data = replace(cfg.data, batch_size=math.ceil(cfg.data.batch_size / processes),
                   target_batch_size=math.ceil(cfg.data.target_batch_size / processes))
    n_source, n_target = batch_split(data)
    return (n_source, 0) if data_mode(cfg) == "source" else (n_source, n_target)


def batch_points(cfg: ExperimentConfig) -> list[tuple[int, int]]:
    """The (source, target) batches measured for the fit (the smallest first)."""
    if data_mode(cfg) == "source":
        return [(2, 0), (3, 0)]
    return [(1, 1), (2, 1), (1, 2)]


def scaled_crop(crop: list[int], scale: float) -> tuple[int, int]:
    """The crop at `scale` times its side, rounded to a multiple of 32 (every network's input divisor)."""
    return tuple(max(32, round(side * scale / 32) * 32) for side in crop)


def box_instances(height: int, width: int, count: int = INSTANCES_PER_IMAGE) -> torch.Tensor:
    """An instance map [H, W] of `count` boxes (ids 1..count) on a 4 x 8 grid of cells, the rest 0."""
    rows, cols = 4, 8
    cell = torch.arange(rows * cols).view(rows, cols)
    cells = cell.repeat_interleave(math.ceil(height / rows), 0).repeat_interleave(math.ceil(width / cols), 1)
    cells = cells[:height, :width]
    return torch.where(cells < count, cells + 1, torch.zeros_like(cells))


def synthetic_items(n: int, crop: tuple[int, int], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """`n` random images in [0, 1] with box instances of thing classes inside random stuff classes."""
    h, w = crop
    instances = box_instances(h, w).expand(n, h, w).clone()
    things = torch.tensor(THING_TRAIN_IDS)[(instances - 1).clamp_min(0) % len(THING_TRAIN_IDS)]
    stuff = torch.randint(0, min(THING_TRAIN_IDS), (n, h, w), generator=generator)
    semantic = torch.where(instances > 0, things, stuff)
    return {"image": torch.rand(n, 3, h, w, generator=generator), "semantic": semantic, "instance": instances}


def synthetic_batch(n_source: int, n_target: int, crop: tuple[int, int]) -> dict:
    """A training batch as the data module gives it: plain source items, or {"source", "target"}."""
    generator = torch.Generator().manual_seed(0)
    source = synthetic_items(n_source, crop, generator)
    if n_target == 0:
        return source
    return {"source": source, "target": synthetic_items(n_target, crop, generator)}


def stand_in_clustering(embeddings: torch.Tensor, semantic: torch.Tensor,
                        max_points: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The box instance map and its class table in place of mean-shift (see the module docstring)."""
    instances = box_instances(*semantic.shape).to(semantic.device)
    classes = torch.tensor([0, *[THING_TRAIN_IDS[k % len(THING_TRAIN_IDS)] for k in range(INSTANCES_PER_IMAGE)]])
    return instances, classes.to(semantic.device)


def write_semantic_checkpoint(arch: str, folder: Path) -> Path:
    """A semantic checkpoint of the real ResNet-101 DeepLab of `arch` (random weights)."""
    from panoptic_st.semantic.module import SemanticModule

    module = SemanticModule(real_config(f"synthia/{arch}_baseline").semantic)
    path = folder / f"{arch}.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def build_optimizer(module: torch.nn.Module, cfg: ExperimentConfig) -> torch.optim.Optimizer:
    """The module's own optimizer (`configure_optimizers`), outside a Trainer."""
    module.trainer = SimpleNamespace(max_steps=cfg.trainer.max_steps)
    configured = module.configure_optimizers()
    module.trainer = None
    return configured["optimizer"] if isinstance(configured, dict) else configured


def create_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Momentum or Adam moments as after a first step: one optimizer step on zero gradients."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            param.grad = torch.zeros_like(param)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def training_step(module: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict) -> None:
    """One step as Lightning runs it: zero_grad, training_step, backward, optimizer step, teacher update."""
    optimizer.zero_grad(set_to_none=True)
    loss = module.training_step(batch, 0)
    loss.backward()
    optimizer.step()
    if module.teacher is not None:
        module.teacher.update(module.net, 1)


def allocation_totals(prof: profile) -> list[tuple[int, int]]:
    """(time ns, live bytes allocated since profiling began) at every allocation and free recorded, in time order.

    The allocator's running total counts from its first profiled allocation in the process; the total before this
    profile's first event is subtracted, so that earlier profiles in the same process do not count.
    """
    from torch._C._profiler import _EventType

    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        if event.tag == _EventType.Allocation:
            events.append((event.start_time_ns, event.extra_fields.total_allocated, event.extra_fields.alloc_size))
        stack.extend(event.children)
    events.sort()
    base = events[0][1] - events[0][2] if events else 0
    return [(time_ns, total - base) for time_ns, total, _ in events]


def window(prof: profile, name: str) -> tuple[int, int]:
    """(start, end) ns of the `record_function` region called `name`."""
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        if event.name == name:
            return event.start_time_ns, event.end_time_ns
        stack.extend(event.children)
    raise RuntimeError(f"no profiler region {name!r}")


def live_and_peak(prof: profile, name: str = STEP) -> tuple[int, int]:
    """Live tensor bytes just before the region `name` and their peak inside it."""
    start, end = window(prof, name)
    totals = allocation_totals(prof)
    before = [t for time_ns, t in totals if time_ns < start]
    live = before[-1] if before else 0
    inside = [t for time_ns, t in totals if start <= time_ns <= end]
    return live, max([live, *inside])


def measure_step(cfg: ExperimentConfig, n_source: int, n_target: int, crop: tuple[int, int]) -> dict:
    """Peak tensor memory and wall time of one training step of the configured module (profiled from its build)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        module = build_module(cfg)
        module.train()
        module.on_fit_start()
        if cfg.stage == "instance":
            module.cluster = stand_in_clustering
        optimizer = build_optimizer(module, cfg)
        create_optimizer_state(optimizer)
        batch = synthetic_batch(n_source, n_target, crop)
        start = time.perf_counter()
        with record_function(STEP), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # self.log outside a Trainer warns and does nothing
            training_step(module, optimizer, batch)
        seconds = time.perf_counter() - start
    live, peak = live_and_peak(prof)
    return {"params": sum(p.numel() for p in module.net.parameters()),
            "trainable": sum(p.numel() for g in optimizer.param_groups for p in g["params"]),
            "live_before": live, "peak": peak, "seconds": seconds}


def inference_network(cfg: ExperimentConfig) -> torch.nn.Module:
    """The trained network of the configuration, frozen, eval mode and channels_last as the checkpoint loaders do."""
    if cfg.stage == "semantic":
        s = cfg.semantic
        net = build_deeplab(s.arch, s.encoder, NUM_CLASSES, s.output_stride)
    else:
        encoder = cfg.instance.encoder if cfg.instance.encoder.startswith("tu-") else f"tu-{cfg.instance.encoder}"
        net = build_embedding_unet(encoder, cfg.instance.embedding_dim)
    return net.eval().requires_grad_(False).to(memory_format=torch.channels_last)


def measure_inference(cfg: ExperimentConfig, size: tuple[int, int] = INFERENCE_SIZE) -> dict:
    """Peak tensor memory and wall time of the network's prediction on one image of `size`."""
    from panoptic_st.panoptic.predictor import network_output, predict_images

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        net = inference_network(cfg)
        images = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0))
        start = time.perf_counter()
        with record_function(STEP), torch.inference_mode():
            predict_images(images, net) if cfg.stage == "semantic" else network_output(net, images)
        seconds = time.perf_counter() - start
    live, peak = live_and_peak(prof)
    return {"live_before": live, "peak": peak, "seconds": seconds}


def child(spec: dict) -> dict:
    """One measurement in this (fresh) process."""
    if spec["kind"] == "inference":
        return measure_inference(real_config(spec["config"]))
    with tempfile.TemporaryDirectory() as folder:
        overrides = []
        arch = semantic_arch(real_config(spec["config"]).instance.semantic_checkpoint)
        if "/instance_" in spec["config"] and arch:
            overrides = [f"instance.semantic_checkpoint={write_semantic_checkpoint(arch, Path(folder))}"]
        cfg = real_config(spec["config"], overrides)
        return measure_step(cfg, spec["n_source"], spec["n_target"], tuple(spec["crop"]))


def run_child(spec: dict, threads: int) -> dict:
    """`child(spec)` in a fresh interpreter; its result."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--threads", str(threads), "--child", json.dumps(spec)]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"measurement {spec} failed:\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1].removeprefix("RESULT "))
    print(f"  {spec}: peak {result['peak'] / GB:.2f} GB, step {result['seconds']:.1f} s "
          f"({time.perf_counter() - start:.0f} s with start-up)", file=sys.stderr, flush=True)
    return result


def cached_runner(threads: int, cache: Path | None) -> Callable[[dict], dict]:
    """`run_child` that reuses the results recorded in a JSON cache file and records new ones (runs resume)."""
    done = json.loads(cache.read_text()) if cache is not None and cache.is_file() else {}

    def measure(spec: dict) -> dict:
        key = json.dumps(spec, sort_keys=True)
        if key not in done:
            done[key] = run_child(spec, threads)
            if cache is not None:
                cache.write_text(json.dumps(done, indent=1))
        return done[key]

    return measure


def measure_all(names: list[str], scale: float, threads: int, cache: Path | None = None) -> dict:
    """Every distinct step at its batch points at the scaled crop, every distinct inference network, and each
    baseline once more at the full crop."""
    run = cached_runner(threads, cache)
    steps, inference, full_crop = {}, {}, {}
    for name in names:
        cfg = real_config(name)
        key = step_key(cfg)
        if key not in steps:
            crop = scaled_crop(cfg.data.crop, scale)
            points = {f"{s},{t}": run({"kind": "step", "config": name, "n_source": s, "n_target": t, "crop": crop})
                      for s, t in batch_points(cfg)}
            steps[key] = {"config": name, "crop": crop, "points": points}
        if network_key(cfg) not in inference:
            inference[network_key(cfg)] = run({"kind": "inference", "config": name})
        if data_mode(cfg) == "source" and key not in full_crop:
            full_crop[key] = run({"kind": "step", "config": name, "n_source": FULL_CROP_BATCH, "n_target": 0,
                                  "crop": list(cfg.data.crop)})
    return {"scale": scale, "threads": threads, "steps": steps, "inference": inference, "full_crop": full_crop}


def fit(points: dict[str, dict], pixel_ratio: float) -> tuple[float, float, float]:
    """(fixed, per source crop, per target crop) bytes from the peaks at the smallest batch and at one more source
    (and one more target) crop; the per-crop parts scaled by `pixel_ratio`."""
    peak = {tuple(map(int, k.split(","))): v["peak"] for k, v in points.items()}
    n_source, n_target = min(peak)
    per_source = peak[n_source + 1, n_target] - peak[n_source, n_target]
    per_target = peak[n_source, n_target + 1] - peak[n_source, n_target] if n_target else 0
    fixed = peak[n_source, n_target] - n_source * per_source - n_target * per_target
    return fixed, per_source * pixel_ratio, per_target * pixel_ratio


def scaled_parts(step: dict, cfg: ExperimentConfig) -> tuple[float, float, float]:
    """`fit` of a step measured at a scaled crop, per-crop parts at the config's crop."""
    crop, measured = cfg.data.crop, step["crop"]
    return fit(step["points"], crop[0] * crop[1] / (measured[0] * measured[1]))


def step_memory(parts: tuple[float, float, float], batch: tuple[int, int]) -> float:
    """Bytes of a step of (source, target) crops from the fitted parts."""
    fixed, per_source, per_target = parts
    return fixed + batch[0] * per_source + batch[1] * per_target


def full_crop_correction(results: dict, cfg: ExperimentConfig) -> float:
    """The network's baseline step at the full crop, measured minus predicted from the scaled crop: a once-per-step
    transient that grows with the pixels but not with the batch, added to the fixed part."""
    for key, measured in results["full_crop"].items():
        step = results["steps"][key]
        baseline = real_config(step["config"])
        if network_key(baseline) == network_key(cfg) and baseline.data.crop == cfg.data.crop:
            return measured["peak"] - step_memory(scaled_parts(step, baseline), (FULL_CROP_BATCH, 0))
    return 0.0


def parts_at_full_crop(results: dict, cfg: ExperimentConfig) -> tuple[float, float, float]:
    """(fixed, per source crop, per target crop) bytes of a configuration's step at its crop."""
    fixed, per_source, per_target = scaled_parts(results["steps"][step_key(cfg)], cfg)
    return fixed + full_crop_correction(results, cfg), per_source, per_target


def row(name: str, results: dict) -> list[str]:
    """One table row of a configuration."""
    cfg = real_config(name)
    step = results["steps"][step_key(cfg)]
    parts = parts_at_full_crop(results, cfg)
    first = next(iter(step["points"].values()))
    batch, crop, measured = config_batch(cfg), cfg.data.crop, step["crop"]
    per_crop = f"{parts[1] / GB:.2f}" + (f" / {parts[2] / GB:.2f}" if batch[1] else "")
    ddp = []
    for n in GPU_COUNTS:
        split = config_batch(cfg, n)
        ddp.append(f"{(step_memory(parts, split) + 4 * first['trainable']) / GB:.1f} ({split[0]}+{split[1]})")
    return [name, f"{crop[0]}x{crop[1]}", f"{batch[0]}+{batch[1]}", f"{first['params'] / 1e6:.1f}",
            f"{parts[0] / GB:.2f}", per_crop, f"{step_memory(parts, batch) / GB:.1f}", *ddp,
            f"{results['inference'][network_key(cfg)]['peak'] / GB:.2f}",
            f"{first['seconds']:.0f} ({measured[0]}x{measured[1]}, {next(iter(step['points'])).replace(',', '+')})"]


def table(names: list[str], results: dict) -> str:
    """The Markdown table of every configuration."""
    header = ["configuration", "crop", "batch (source+target)", "params (M)", "fixed (GB)",
              "per crop (GB), source / target", "step at the config's batch, 1 device (GB)",
              *(f"per GPU, {n} GPUs, same global batch (GB, batch per GPU)" for n in GPU_COUNTS),
              "inference 1024x2048 (GB)", "measured step (s, crop, batch)"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|" + "---:|" * (len(header) - 3)]
    lines += ["| " + " | ".join(row(name, results)) + " |" for name in names]
    return "\n".join(lines)


def full_crop_lines(results: dict) -> list[str]:
    """Each baseline at the full crop: measured, predicted from the scaled crop, and the correction."""
    lines = []
    for key, measured in results["full_crop"].items():
        step = results["steps"][key]
        cfg = real_config(step["config"])
        crop, predicted = cfg.data.crop, step_memory(scaled_parts(step, cfg), (FULL_CROP_BATCH, 0))
        scaled = f"{step['crop'][0]}x{step['crop'][1]}"
        lines.append(f"{step['config']} at {crop[0]}x{crop[1]}, batch {FULL_CROP_BATCH}: measured "
                     f"{measured['peak'] / GB:.2f} GB, predicted from {scaled} {predicted / GB:.2f} GB (fixed part "
                     f"{(measured['peak'] - predicted) / GB:+.2f} GB), step {measured['seconds']:.0f} s")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per measurement (default 1)")
    parser.add_argument("--scale", type=float, default=0.5, help="crop side scale of the training measurements")
    parser.add_argument("--configs", nargs="+", default=CONFIGS, help="a subset of the real configurations")
    parser.add_argument("--json", type=Path, help="save the raw measurements here")
    parser.add_argument("--cache", type=Path, help="record each measurement here; a run with it resumes")
    parser.add_argument("--load", type=Path, help="print the table of saved measurements instead of measuring")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return
    start = time.perf_counter()
    if args.load:
        results = json.loads(args.load.read_text())
    else:
        results = measure_all(args.configs, args.scale, args.threads, args.cache)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(table(args.configs, results))
    for line in full_crop_lines(results):
        print(line)
    if not args.load:
        print(f"measured in {time.perf_counter() - start:.0f} s at {args.threads} thread(s)")


if __name__ == "__main__":
    main()
