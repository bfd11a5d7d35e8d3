"""Benchmark: share of pseudo-label generation in one instance self-training step at the toy configuration.

    python experiments/benchmarks/bench_instance_step.py [--threads 1] [--repeats 5] [--pretrain-steps 60]
        [--override key=value ...]

Acceptance: `InstanceModule.pseudo_labels()` (frozen semantic network, momentum-network embeddings, mean-shift+
per thing class, post-processing) takes at most 10 % of a whole self-training step (`training_step` + backward
+ Adam step + momentum update), as the median of the per-step shares of `--repeats` (5) steps.

Setup: `toy/instance_selftrain` (U-Net on tu-resnet18, 96x192 crops; `source_mix` 0 of `batch_size` 8, i.e.
8 target images per step, as `batch_split` gives; the confidence filter of pseudo-instances is counted in the
pseudo-label time), a toy DeepLab-V2 semantic checkpoint
(`toy/semantic_baseline`, random weights, saved as a Lightning-style checkpoint in a temp dir) and a freshly
generated toy benchmark (`make_toy`, deterministic) for the images. Two scenarios:

- `random`: untrained U-Net, masks of the untrained semantic network. Untrained embeddings are spread out, which
  is the worst case for mean-shift; the masks are whatever a random network predicts.
- `trained-like` (the one the acceptance refers to): the U-Net first trained for `--pretrain-steps` steps on toy
  instance labels of other images (as the instance baseline a self-training run starts from), and the masks of
  a trained semantic network, stood in for by the ground-truth semantic maps of the target images as one-hot
  probabilities, so the confidence filter keeps every instance (the semantic network still runs, so its cost
  is counted).

Times are medians over `--repeats` steps after one warm-up step, at `--threads` torch threads.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch

from panoptic_st.config import load_config
from panoptic_st.data.cityscapes import CityscapesDataset
from panoptic_st.data.datamodule import batch_split
from panoptic_st.data.labels import THING_TRAIN_IDS
from panoptic_st.data.synthia import SynthiaDataset
from panoptic_st.data.toy import make_toy
from panoptic_st.data.transforms import eval_transform
from panoptic_st.instance.classes import source_instance_labels
from panoptic_st.instance.module import InstanceModule
from panoptic_st.instance.statistics import match_counts
from panoptic_st.semantic.module import SemanticModule

LIMIT = 0.10


def semantic_checkpoint(path: Path) -> Path:
    """The toy semantic network (random weights) as a Lightning-style checkpoint."""
    module = SemanticModule(load_config("toy/semantic_baseline").semantic)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def stack(dataset, indices) -> dict:
    items = [dataset[i] for i in indices]
    return {k: torch.stack([it[k] for it in items]) for k in ("image", "semantic", "instance")}


class Timer:
    """Wall time of the calls of selected methods of one module, per step."""

    def __init__(self, module: InstanceModule, names: tuple[str, ...]):
        self.times: dict[str, float] = dict.fromkeys(names, 0.0)
        for name in names:
            original = getattr(module, name)

            def timed(*args, _original=original, _name=name, **kwargs):
                start = time.perf_counter()
                result = _original(*args, **kwargs)
                self.times[_name] += time.perf_counter() - start
                return result

            setattr(module, name, timed)

    def reset(self) -> None:
        self.times = dict.fromkeys(self.times, 0.0)


@contextmanager
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def pretrain(module: InstanceModule, data: dict, steps: int, batch: int) -> None:
    """A short instance baseline on ground-truth instances (consistency off), then the momentum net copies it."""
    optimizer = torch.optim.Adam(module.net.parameters(), lr=1e-3)
    labels = source_instance_labels(data["semantic"], data["instance"], module.classes)
    n = data["image"].shape[0]
    module.train()
    for step in range(steps):
        idx = torch.arange(step * batch, (step + 1) * batch) % n
        loss = module.loss_terms(data["image"][idx], labels[idx], consistency=False)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    module.teacher.initialised.fill_(False)
    module.teacher.update(module.net, 0)


def measure(module: InstanceModule, batch: dict, truth: torch.Tensor, repeats: int, lr: float) -> dict:
    """Median step and pseudo-label times (s), median per-step share of the pseudo-labels; pseudo-instances and true
    positives (IoU > 0.5 with a ground-truth instance of `truth`) per target image."""
    optimizer = torch.optim.Adam(module.net.parameters(), lr=lr, weight_decay=module.cfg.weight_decay)
    wrapped = ("pseudo_labels", "semantic_masks", "cluster")
    saved = {name: module.__dict__[name] for name in wrapped if name in module.__dict__}
    timer = Timer(module, wrapped)
    module.train()
    steps, parts, pseudo = [], {k: [] for k in timer.times}, []
    original = module.pseudo_labels

    def keeping(images):
        labels = original(images)
        pseudo.append(labels)
        return labels

    module.pseudo_labels = keeping
    for r in range(repeats + 1):
        timer.reset()
        start = time.perf_counter()
        loss = module.training_step(batch, r)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        module.teacher.update(module.net, r + 1)
        elapsed = time.perf_counter() - start
        if r == 0:
            continue  # warm-up
        steps.append(elapsed)
        for k, v in timer.times.items():
            parts[k].append(v)
    result = {"step": statistics.median(steps), **{k: statistics.median(v) for k, v in parts.items()},
              "share": statistics.median(p / s for p, s in zip(parts["pseudo_labels"], steps))}
    for name in wrapped:  # undo the wrapping
        if name in saved:
            setattr(module, name, saved[name])
        else:
            delattr(module, name)
    counts = [match_counts(m, t) for labels in pseudo[1:] for m, t in zip(labels, truth)]
    result["true"] = statistics.mean(tp for tp, _ in counts)
    result["instances"] = statistics.mean(tp + fp for tp, fp in counts)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pretrain-steps", type=int, default=60)
    parser.add_argument("--experiment", default="toy/instance_selftrain")
    parser.add_argument("--override", nargs="*", default=[], help="config overrides, e.g. instance.lr=1e-4")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    tmp = Path(tempfile.mkdtemp(prefix="bench_instance_step_"))
    cfg = load_config(args.experiment, args.override)
    n_source, n_target = batch_split(cfg.data)
    height, width = cfg.data.crop
    n_pretrain = 32
    make_toy(tmp / "toy", seed=0, n_source=max(n_source, 1), n_target=n_target + n_pretrain, n_val=1,
             height=height, width=width, workers=1, progress=False)
    target_set = CityscapesDataset(tmp / "toy" / "cityscapes", "train", eval_transform(None))
    target = stack(target_set, range(n_target))
    others = stack(target_set, range(n_target, n_target + n_pretrain))
    batch = {"target": target}
    if n_source:
        batch["source"] = stack(SynthiaDataset(tmp / "toy" / "synthia", "train", eval_transform(None)), range(n_source))
    instance_cfg = replace(cfg.instance, semantic_checkpoint=str(semantic_checkpoint(tmp / "semantic.ckpt")),
                           init_checkpoint=None)
    gt_instances = sum(len(torch.unique(m)) - 1 for m in source_instance_labels(
        target["semantic"], target["instance"], THING_TRAIN_IDS)) / n_target

    print(f"toy self-training step: {args.experiment}, {height}x{width}, {n_source} source + {n_target} target "
          f"images, encoder {instance_cfg.encoder}, clustering {instance_cfg.clustering}, min_size "
          f"{instance_cfg.min_size}, {args.threads} thread(s); medians of {args.repeats} steps")
    print(f"ground truth: {gt_instances:.1f} thing instances per target image, "
          f"{float(torch.isin(target['semantic'], torch.tensor(THING_TRAIN_IDS)).float().mean()):.1%} "
          "thing pixels")
    print(f"{'scenario':<14}{'cap':>6}{'step ms':>9}{'pseudo ms':>11}{'semantic':>10}{'cluster':>9}{'share':>8}"
          f"{'inst/img':>10}{'TP/img':>8}  verdict")
    cap = instance_cfg.pseudo_label_max_points
    truth = source_instance_labels(target["semantic"], target["instance"], THING_TRAIN_IDS)
    verdict = "?"
    for scenario, caps in (("random", (cap,)), ("trained-like", (None, cap))):
        torch.manual_seed(0)
        with quiet():
            module = InstanceModule(instance_cfg)
            if scenario == "trained-like":
                pretrain(module, others, args.pretrain_steps, n_target + n_source)
                network_masks = module.semantic_masks

                def gt_masks(images, _network=network_masks):
                    _, probs = _network(images)  # the semantic network runs: its cost is part of the step
                    semantic = target["semantic"].long()
                    classes = probs.shape[1]
                    certain = torch.zeros_like(probs).scatter_(
                        1, semantic.clamp(max=classes - 1)[:, None], (semantic < classes)[:, None].float())
                    return semantic, certain

                module.semantic_masks = gt_masks
            else:
                module.teacher.update(module.net, 0)
            start_state = copy.deepcopy(module.state_dict())
            for max_points in caps:
                module.load_state_dict(start_state)
                module.cfg.pseudo_label_max_points = max_points
                r = measure(module, batch, truth, args.repeats, instance_cfg.lr)
                share = r["share"]
                verdict = "PASS" if share <= LIMIT else "FAIL"
                print(f"{scenario:<14}{max_points or 'all':>6}{r['step'] * 1e3:>9.0f}{r['pseudo_labels'] * 1e3:>11.0f}"
                      f"{r['semantic_masks'] * 1e3:>10.0f}{r['cluster'] * 1e3:>9.0f}{share:>8.1%}"
                      f"{r['instances']:>10.1f}{r['true']:>8.1f}  {verdict}")
    print(f"acceptance (trained-like at the default cap {cap}, pseudo-labels <= {LIMIT:.0%} of the step): {verdict}")


if __name__ == "__main__":
    main()
