"""Benchmark: one SAC self-training step at the toy configuration and the share spent outside the networks.

    python experiments/benchmarks/bench_sac_step.py [--threads 1] [--steps 5] [--warmup 2] [--limit 5]

Acceptance: at most 5 % of the step outside the networks, as the median of the per-step shares of `--steps` (5)
steps.

Configuration: `toy/semantic_selftrain` (DeepLabV2, mobilenetv3_large_100 encoder, output stride 16, random
weights, no checkpoint), source batch 8 crops and target batch 2 images x 4 views at 96x192, with synthetic
uniform [0, 1] images and random source labels (nothing is read from disk). The module's optimizer
(`configure_optimizers`) and momentum teacher (updated every step, as in the toy config) are used.

Each step replicates `SemanticModule.training_step` + `self_training_loss` call by call, timed with
`time.perf_counter` (CPU ops run synchronously, so the wall time of a call is its cost):

* network: student forward on the source crops, teacher forward on the clean views, student forward on the noisy
  views, and the one backward pass through both student graphs;
* outside the networks (the pipeline the issue bounds): normalisation, make_views, photometric_noise, fuse_views,
  prior + thresholds + pseudo-labels, the source cross-entropy and the focal target loss;
* parameter updates: zero_grad, optimizer step and the teacher's EMA update.

The share outside the networks is (outside) / (whole step), the whole step including the parameter updates.
Before timing, the replica is checked against `module.self_training_loss` (same RNG state -> same loss), and an
uninstrumented step (module methods only) is timed too so that the timer overhead is visible. The per-step
pseudo-label statistics logging (every `log_every_n_steps`, needs a Trainer) is left out.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from contextlib import contextmanager

import torch

from panoptic_st.config import load_config
from panoptic_st.data.labels import IGNORE_INDEX, NUM_CLASSES
from panoptic_st.ops.classes import max_over_classes
from panoptic_st.ops.images import normalize
from panoptic_st.semantic.losses import focal_target_loss, source_cross_entropy, target_weight
from panoptic_st.semantic.module import SemanticModule
from panoptic_st.semantic.pseudo_labels import (
    adaptive_thresholds,
    fuse_views,
    make_views,
    photometric_noise,
    pseudo_labels,
)

NETWORK = ("student fwd (source)", "teacher fwd (views)", "student fwd (noisy views)", "student bwd (both)")
OUTSIDE = (
    "normalize",
    "make_views",
    "photometric_noise",
    "fuse_views",
    "prior/thresholds/labels",
    "source CE",
    "focal loss",
)
UPDATES = ("zero_grad", "optimizer step", "teacher EMA")


class Timer:
    """Accumulates wall time per component for the current step."""

    def __init__(self) -> None:
        self.times: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        yield
        self.times[name] += time.perf_counter() - start


def build(cfg) -> tuple[SemanticModule, torch.optim.Optimizer]:
    """The toy self-training module with random weights (the config's init checkpoint is not loaded)."""
    module = SemanticModule(cfg)
    module.on_fit_start()  # first teacher update: copy of the student
    module.train()
    # needs a Trainer (self.trainer raises without one); runs only every log_every_n_steps anyway
    module.log_pseudo_label_statistics = lambda *args: None
    return module, module.configure_optimizers()


def batch(cfg, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    h, w = cfg.data.crop
    th, tw = cfg.data.target_size
    source = torch.rand(cfg.data.batch_size, 3, h, w, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (cfg.data.batch_size, h, w), generator=generator)
    labels[:, :4] = IGNORE_INDEX
    target = torch.rand(cfg.data.target_batch_size, 3, th, tw, generator=generator)
    return source, labels, target


def instrumented_target_loss(module: SemanticModule, images: torch.Tensor, t: Timer) -> torch.Tensor:
    """`SemanticModule.self_training_loss`, call by call, with every call timed."""
    cfg = module.cfg
    with t("make_views"):
        views, affines = make_views(images, cfg.group_size, tuple(cfg.zoom))
    with torch.no_grad():
        with t("normalize"):
            x = normalize(views)
        with t("teacher fwd (views)"):
            teacher_logits = module.teacher(x)
        with t("fuse_views"):
            probs, valid = fuse_views(teacher_logits, affines, cfg.group_size)
        with t("prior/thresholds/labels"):
            prior = module.prior.observe(probs)
            maxima = max_over_classes(probs)
            theta = adaptive_thresholds(probs, prior, cfg.threshold_scale, cfg.threshold_min, cfg.prior_tau,
                                        maxima)
            labels, confidence = pseudo_labels(probs, theta, maxima=maxima)
            labels[~valid] = IGNORE_INDEX
    with t("photometric_noise"):
        student_views = photometric_noise(views) if cfg.photometric_noise else views
    with t("normalize"):
        x = normalize(student_views)
    with t("student fwd (noisy views)"):
        logits = module.net(x)
    with t("focal loss"):
        loss = focal_target_loss(logits, labels, confidence, prior, cfg.focal_gamma)
    return loss


def instrumented_step(module, optimizer, source, labels, target, step: int) -> Timer:
    t = Timer()
    start = time.perf_counter()
    with t("zero_grad"):
        optimizer.zero_grad(set_to_none=True)
    with t("normalize"):
        x = normalize(source, module.source_mean.tolist(), module.source_std.tolist())
    with t("student fwd (source)"):
        logits = module.net(x)
    with t("source CE"):
        loss = source_cross_entropy(logits, labels)
    target_loss = instrumented_target_loss(module, target, t)
    with t("focal loss"):
        loss = loss + target_weight(module.cfg, step) * target_loss
    with t("student bwd (both)"):
        loss.backward()
    with t("optimizer step"):
        optimizer.step()
    with t("teacher EMA"):
        module.teacher.update(module.net, step)
    t.times["total"] = time.perf_counter() - start
    return t


def plain_step(module, optimizer, source, labels, target, step: int) -> float:
    """The same step through the module's own methods, timed as a whole."""
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    loss = source_cross_entropy(module.source_logits(source), labels)
    loss = loss + target_weight(module.cfg, step) * module.self_training_loss(target)
    loss.backward()
    optimizer.step()
    module.teacher.update(module.net, step)
    return time.perf_counter() - start


def check_replica(module: SemanticModule, target: torch.Tensor) -> None:
    """The instrumented target loss equals the module's for the same RNG state and prior."""
    state = {k: v.clone() for k, v in module.prior.state_dict().items()}
    torch.manual_seed(123)
    expected = module.self_training_loss(target)
    module.prior.load_state_dict(state)
    torch.manual_seed(123)
    got = instrumented_target_loss(module, target, Timer())
    module.prior.load_state_dict(state)
    if not torch.allclose(expected, got, rtol=1e-5, atol=1e-7):
        raise SystemExit(
            f"instrumented step differs from self_training_loss: {got.item()} vs {expected.item()}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--limit", type=float, default=5.0, help="max share outside the networks, in %%")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_config("toy/semantic_selftrain", ["data.root=/nonexistent/toy"])
    module, optimizer = build(cfg.semantic)
    generator = torch.Generator().manual_seed(0)
    source, labels, target = batch(cfg, generator)
    print(
        f"SAC step benchmark, toy config: {cfg.semantic.arch} / {cfg.semantic.encoder} / OS {cfg.semantic.output_stride},"
        f" source {tuple(source.shape)}, target {tuple(target.shape)} x {cfg.semantic.group_size} views,"
        f" optimizer {cfg.semantic.optimizer}, teacher every {cfg.semantic.teacher_interval} step(s)"
    )
    print(
        f"torch.set_num_threads({args.threads}) (CPU shared with other work); {args.warmup} warm-up + "
        f"{args.steps} timed steps, medians per component"
    )
    check_replica(module, target)
    print("replica check: instrumented target loss == module.self_training_loss (same RNG state)")

    runs = []
    for step in range(1, args.warmup + args.steps + 1):
        timer = instrumented_step(module, optimizer, source, labels, target, step)
        if step > args.warmup:
            runs.append(timer.times)
    plain = [plain_step(module, optimizer, source, labels, target, step) for step in range(args.steps + 1)]
    plain = plain[1:]  # the first is a warm-up

    def median(name: str) -> float:
        return 1e3 * statistics.median(r.get(name, 0.0) for r in runs)

    def section(title: str, names: tuple[str, ...]) -> float:
        values = {n: median(n) for n in names}
        print(f"{title}:")
        for n, v in values.items():
            print(f"  {n:<28}{v:9.1f} ms")
        total = 1e3 * statistics.median(sum(r.get(n, 0.0) for n in names) for r in runs)
        print(f"  {'= ' + title:<28}{total:9.1f} ms")
        return total

    network = section("network fwd/bwd", NETWORK)
    outside = section("outside the networks", OUTSIDE)
    updates = section("parameter updates", UPDATES)
    total = median("total")
    share = statistics.median(sum(r.get(n, 0.0) for n in OUTSIDE) / r["total"] for r in runs)
    print(
        f"whole step (instrumented)     {total:9.1f} ms   (network + outside + updates = "
        f"{network + outside + updates:.1f} ms)"
    )
    print(f"whole step (uninstrumented)   {1e3 * statistics.median(plain):9.1f} ms")
    verdict = "PASS" if 100 * share <= args.limit else "FAIL"
    print(f"share outside the networks (median of {args.steps} steps): {100 * share:.1f}%  (limit {args.limit:.0f}%)"
          f"  {verdict}")


if __name__ == "__main__":
    main()
