"""Probe: does a centre heatmap trained on the sources find touching target objects one by one?

Panoptic-DeepLab (and EDAPS, which self-trains it on the target) separates instances with a centre heatmap: a
Gaussian of `--sigma` pixels at each instance's centre of mass is regressed (MSE) on labelled source images, its
local maxima (`--nms` window, above a threshold) are the instance centres, and each pixel of a thing mask goes to
the nearest centre of its class. This script trains only that head (the instance U-Net with one output channel,
random weights, AdamW 1e-3, batch 8, horizontal flips) on the toy-SYNTHIA images of `--data`, then groups the
ground-truth semantic masks of `--images` target train images around the predicted centres (nearest centre by
pixel position; a class mask without a centre is one instance; instances under `--min-size` pixels dropped) and
prints the pseudo-instances per image by kind (`pseudo_label_kinds`), precision and recall for each threshold and
window, to compare with the embedding rows of `instance_pseudo_label_quality.py --compare` on the same images.

    python experiments/instance_centre_probe.py --data data/toy_gap [--seed 0] [--steps 600] [--sigma 4]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Subset

from panoptic_st.data.cityscapes import CityscapesDataset
from panoptic_st.data.labels import THING_TRAIN_IDS
from panoptic_st.data.synthia import SynthiaDataset
from panoptic_st.experiments.toy import KINDS_HEADER, evenly_spaced, kinds_cells, kinds_per_image
from panoptic_st.instance.classes import source_instance_labels
from panoptic_st.instance.spatial import pixel_coordinates
from panoptic_st.models.unet import build_embedding_unet
from panoptic_st.ops.images import normalize
from panoptic_st.ops.segments import drop_segments

CLASSES = tuple(THING_TRAIN_IDS)


def centre_heatmaps(instances: Tensor, sigma: float) -> Tensor:
    """Targets [B, H, W]: per pixel, the largest Gaussian exp(-d^2 / (2 sigma^2)) of its distance d to the centre of
    mass of any instance of `instances` [B, H, W] (0 = none)."""
    coords = pixel_coordinates(*instances.shape[-2:], like=torch.empty(0))
    heat = torch.zeros(instances.shape)
    for b, labels in enumerate(instances):
        ids = labels.unique()
        for k in ids[ids > 0]:
            centre = coords[:, labels == k].mean(dim=1)
            distance2 = ((coords - centre[:, None, None]) ** 2).sum(dim=0)
            heat[b] = torch.maximum(heat[b], torch.exp(-distance2 / (2 * sigma**2)))
    return heat


def train_heatmap(data: str, steps: int, sigma: float) -> torch.nn.Module:
    """The U-Net of one output channel trained to regress centre heatmaps on the toy-SYNTHIA train images."""
    net = build_embedding_unet("tu-resnet18", 1)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    loader = DataLoader(SynthiaDataset(f"{data}/synthia", "train"), batch_size=8, shuffle=True, drop_last=True)
    step, start = 0, time.time()
    while step < steps:
        for batch in loader:
            images = batch["image"]
            instances = source_instance_labels(batch["semantic"], batch["instance"], CLASSES)
            if torch.rand(()) < 0.5:
                images, instances = images.flip(-1), instances.flip(-1)
            loss = F.mse_loss(net(normalize(images))[:, 0], centre_heatmaps(instances, sigma))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % 100 == 0:
                print(f"step {step}: loss {loss.item():.5f} ({time.time() - start:.0f} s)", flush=True)
            if step == steps:
                break
    return net.eval()


def group_around_centres(heat: Tensor, semantic: Tensor, threshold: float, window: int, min_size: int) -> Tensor:
    """Instance map [H, W]: each pixel of a thing class goes to the nearest local maximum of `heat` [H, W] (in a
    `window` x `window` neighbourhood, above `threshold`) inside its class mask; a class mask without one is one
    instance."""
    coords = pixel_coordinates(*heat.shape, like=heat)
    peaks = (heat == F.max_pool2d(heat[None, None], window, 1, window // 2)[0, 0]) & (heat > threshold)
    instances = torch.zeros(heat.shape, dtype=torch.long)
    next_id = 1
    for cls in CLASSES:
        mask = semantic == cls
        if not mask.any():
            continue
        centres = coords[:, peaks & mask].T
        if len(centres) == 0:
            instances[mask] = next_id
            next_id += 1
            continue
        instances[mask] = torch.cdist(coords[:, mask].T, centres).argmin(dim=1) + next_id
        next_id += len(centres)
    areas = torch.bincount(instances.flatten())
    return drop_segments(instances, torch.nonzero(areas < min_size).flatten())


@torch.no_grad()
def centre_kinds(net: torch.nn.Module, images: Subset, threshold: float, window: int, min_size: int) -> dict:
    """Pseudo-instances per image by kind (`kinds_per_image`) of the masks split around the predicted centres."""

    def pairs():
        for batch in DataLoader(images, batch_size=10):
            heats = net(normalize(batch["image"]))[:, 0]
            truths = source_instance_labels(batch["semantic"], batch["instance"], CLASSES)
            for heat, semantic, truth in zip(heats, batch["semantic"], truths):
                yield group_around_centres(heat, semantic, threshold, window, min_size), truth

    return kinds_per_image(pairs(), len(images))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="toy root with synthia/ and cityscapes/ (make-toy --instance-gap)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--sigma", type=float, default=4.0, help="Gaussian of the centre targets, in pixels")
    parser.add_argument("--images", type=int, default=50, help="target train images, evenly spaced")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    parser.add_argument("--windows", type=int, nargs="+", default=[5, 9])
    parser.add_argument("--min-size", type=int, default=15, help="the toy instance configs' min_size")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    net = train_heatmap(args.data, args.steps, args.sigma)
    images = evenly_spaced(CityscapesDataset(f"{args.data}/cityscapes", "train"), args.images)
    print(f"Pseudo-instances per target train image in ground-truth masks ({len(images)} images), seed {args.seed}, "
          f"{args.steps} steps, sigma {args.sigma}:")
    print(f"| threshold | window {KINDS_HEADER}\n|---:|---:|---:|---:|---:|---:|---:|---:|")
    for threshold in args.thresholds:
        for window in args.windows:
            print(f"| {threshold} | {window} | {kinds_cells(centre_kinds(net, images, threshold, window, args.min_size))}",
                  flush=True)


if __name__ == "__main__":
    main()
