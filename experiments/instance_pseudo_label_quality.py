"""Instance pseudo-label quality and embedding separation on the toy target, from a seed's trained stages.

1. Pseudo-labels of the instance baseline (as momentum network) inside the self-trained semantic masks, on target
   train images, kept at several semantic-confidence thresholds (`instance.pseudo_label_min_confidence`): true and
   false pseudo-instances per image (a true one overlaps a ground-truth instance with IoU > 0.5; the false ones split
   into merged objects, fragments and other, `pseudo_label_kinds`), optionally after the
   stability filter (`instance.pseudo_label_stability_bandwidth`). Target labels are read for this measurement only.
2. For each instance checkpoint given (default: the seed's baseline and self-trained models), on target val:
   the median distance from each ground-truth instance's mean embedding to the nearest other instance of its class
   in the same image, and the mean distance of pixels to their instance mean. Mean-shift+ merges modes closer than
   delta_d (2.0), so a shrinking nearest-instance distance means merged objects.

    python experiments/instance_pseudo_label_quality.py [--seed 0] [--runs runs/panoptic_seeds] [--images 50]
        [--checkpoints A.ckpt B.ckpt ...] [--stability-bandwidth 1.5] [--compare A.ckpt B.ckpt --bandwidth 3.0]

3. With `--compare A.ckpt B.ckpt ...` only: each checkpoint's pseudo-instances inside the ground-truth semantic
   masks of target train images (true, merged, fragments, other per image, precision, recall), e.g. the
   appearance-only against the joint (spatial) embedding on `make-toy --instance-gap` data; then, on the same
   images, the distance between the mean embeddings of touching same-class objects and, for a joint embedding,
   the spread of each object's pixels in its spatial part.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from panoptic_st.config import load_config
from panoptic_st.data.cityscapes import CityscapesDataset
from panoptic_st.data.synthia import SynthiaDataset
from panoptic_st.experiments.toy import KINDS_HEADER, evenly_spaced, kinds_cells, kinds_per_image
from panoptic_st.instance.classes import source_instance_labels
from panoptic_st.instance.module import InstanceModule
from panoptic_st.instance.pseudo_labels import drop_unconfident_instances, drop_unstable_instances
from panoptic_st.instance.spatial import SpatialEmbeddingNet, pixel_coordinates
from panoptic_st.instance.statistics import PSEUDO_LABEL_KINDS, pseudo_label_kinds
from panoptic_st.panoptic.predictor import PanopticPredictor, network_output
from panoptic_st.training import load_weights

THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)


def pseudo_labeller(seed: int, instance_checkpoint: Path, semantic_checkpoint: Path) -> InstanceModule:
    """The toy instance baseline module, built through its config with `instance.semantic_checkpoint` set (its
    pseudo-labels cluster inside that checkpoint's masks), with the weights of `instance_checkpoint`, in eval
    mode."""
    cfg = load_config("toy/instance_baseline", [f"seed={seed}", f"instance.semantic_checkpoint={semantic_checkpoint}"])
    module = InstanceModule(cfg.instance)
    load_weights(module, instance_checkpoint)
    return module.eval()


@torch.no_grad()
def pseudo_label_counts(module: InstanceModule, images: Subset,
                        stability_bandwidth: float | None = None) -> dict[float, dict[str, float]]:
    """{threshold: {kind: pseudo-instances per image}} (kinds of `pseudo_label_kinds`), after the stability filter
    when a bandwidth is given."""
    totals = {t: dict.fromkeys(PSEUDO_LABEL_KINDS, 0) for t in THRESHOLDS}
    for batch in DataLoader(images, batch_size=10):
        semantic, probs = module.semantic_masks(batch["image"])
        embeddings = module(batch["image"])
        truth = source_instance_labels(batch["semantic"], batch["instance"], module.classes)
        for b in range(len(semantic)):
            instances, classes = module.cluster(embeddings[b], semantic[b], module.cfg.pseudo_label_max_points)
            if stability_bandwidth is not None:  # per-instance test, independent of the confidence threshold
                instances = drop_unstable_instances(instances, embeddings[b], stability_bandwidth,
                                                    module.cfg.min_size, module.cfg.pseudo_label_max_points)
            for threshold in THRESHOLDS:
                kept = drop_unconfident_instances(instances, classes, probs[b], threshold)
                for kind, count in pseudo_label_kinds(kept, truth[b]).items():
                    totals[threshold][kind] += count
    return {t: {kind: count / len(images) for kind, count in kinds.items()} for t, kinds in totals.items()}


@torch.no_grad()
def object_embeddings(emb: torch.Tensor, semantic: torch.Tensor, instance: torch.Tensor, cls: int,
                      min_pixels: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(mask, pixel embeddings [D, n]) of each ground-truth instance of class `cls` with at least `min_pixels`."""
    ids, counts = torch.unique(instance[semantic == cls], return_counts=True)
    masks = [(instance == i) & (semantic == cls) for i in ids[(counts >= min_pixels) & (ids > 0)]]
    return [(mask, emb[:, mask]) for mask in masks]


def separation(checkpoint: Path, images: Subset, min_pixels: int = 30) -> tuple[float, float]:
    """(median nearest same-class instance distance, mean pixel-to-instance-mean distance) on ground truth, for
    the instance network and thing classes of `checkpoint`."""
    predictor = PanopticPredictor.from_checkpoints(None, [checkpoint], masks="gt")
    net, classes = predictor.instance_nets[0], predictor.clustering[0].classes
    nearest, spread = [], []
    for batch in DataLoader(images, batch_size=10):
        embeddings = network_output(net, batch["image"])
        for emb, semantic, instance in zip(embeddings, batch["semantic"], batch["instance"]):
            for cls in classes:
                means = []
                for _, pixels in object_embeddings(emb, semantic, instance, cls, min_pixels):
                    means.append(pixels.mean(1))
                    spread.append(float((pixels - means[-1][:, None]).norm(dim=0).mean()))
                if len(means) > 1:
                    distances = torch.cdist(torch.stack(means), torch.stack(means)).fill_diagonal_(float("inf"))
                    nearest.extend(distances.min(1).values.tolist())
    return float(torch.tensor(nearest).median()), sum(spread) / max(len(spread), 1)


def touching_objects(checkpoint: Path, images: Subset, min_pixels: int = 30, reach: int = 2) -> dict[str, float]:
    """On ground truth: how far apart the mean embeddings of touching same-class objects (masks within `reach`
    pixels) lie (median, and the share below delta_d), their number, and for a joint (spatial) embedding the mean
    distance of an object's pixels from its mean in the spatial part (the last two channels) and the median
    distance of the touching objects' pixel centroids times the scale (where zero offsets would put their means)."""
    predictor = PanopticPredictor.from_checkpoints(None, [checkpoint], masks="gt")
    net, settings = predictor.instance_nets[0], predictor.clustering[0]
    spatial = isinstance(net, SpatialEmbeddingNet)
    distances, centroid_distances, spread = [], [], []
    for batch in DataLoader(images, batch_size=10):
        embeddings = network_output(net, batch["image"])
        for emb, semantic, instance in zip(embeddings, batch["semantic"], batch["instance"]):
            positions = pixel_coordinates(*semantic.shape, like=emb)
            for cls in settings.classes:
                objects = object_embeddings(emb, semantic, instance, cls, min_pixels)
                if spatial:
                    spread += [float((p[-2:] - p[-2:].mean(1, keepdim=True)).norm(dim=0).mean()) for _, p in objects]
                near = [F.max_pool2d(m[None, None].float(), 2 * reach + 1, 1, reach)[0, 0] > 0 for m, _ in objects]
                for a, (_, pixels_a) in enumerate(objects):
                    for b in range(a + 1, len(objects)):
                        if (near[a] & objects[b][0]).any():
                            distances.append(float((pixels_a.mean(1) - objects[b][1].mean(1)).norm()))
                            centres = [positions[:, objects[k][0]].mean(1) for k in (a, b)]
                            centroid_distances.append(float((centres[0] - centres[1]).norm()))
    d = torch.tensor(distances)
    scale = net.scale if spatial else float("nan")
    return {"pairs": len(distances), "median": float(d.median()),
            "below_delta_d": float((d < settings.delta_d).float().mean()),
            "spatial_spread": sum(spread) / len(spread) if spread else float("nan"),
            "centroids": scale * float(torch.tensor(centroid_distances).median())}


@torch.no_grad()
def kinds_in_truth_masks(checkpoint: Path, images: Subset, **clustering_overrides) -> dict[str, float]:
    """Pseudo-instances per image by kind (`kinds_per_image`) of an instance checkpoint clustered inside the
    ground-truth semantic masks (its stored clustering settings, but `clustering_overrides`)."""
    predictor = PanopticPredictor.from_checkpoints(None, [checkpoint], masks="gt", **clustering_overrides)
    classes = predictor.clustering[0].classes

    def pairs():
        for batch in DataLoader(images, batch_size=10):
            truths = source_instance_labels(batch["semantic"], batch["instance"], classes)
            for pred, truth in zip(predictor.predict(batch["image"], batch["semantic"]), truths):
                yield pred["instances"], truth

    return kinds_per_image(pairs(), len(images))


def compare_embeddings(checkpoints: list[Path], images: Subset, **clustering_overrides) -> None:
    """Print one row per checkpoint: true, merged, fragment and other pseudo-instances per image, precision and
    recall, clustered inside the ground-truth masks (the embedding alone, no semantic branch); then the distances
    of touching same-class objects (`touching_objects`)."""
    print(f"Pseudo-instances per target train image in ground-truth masks ({len(images)} images):")
    print(f"| checkpoint {KINDS_HEADER}\n|---|---:|---:|---:|---:|---:|---:|")
    for checkpoint in checkpoints:
        print(f"| {checkpoint} | {kinds_cells(kinds_in_truth_masks(checkpoint, images, **clustering_overrides))}",
              flush=True)
    print("\nTouching same-class ground-truth objects (within 2 px) in the same images:")
    print_touching_objects(checkpoints, images)


def print_touching_objects(checkpoints: list[Path], images: Subset) -> None:
    """One row of `touching_objects` per checkpoint."""
    print("| checkpoint | pairs | median distance of their means | share below delta_d | spatial spread | "
          "centroids x scale |\n|---|---:|---:|---:|---:|---:|")
    for checkpoint in checkpoints:
        t = touching_objects(checkpoint, images)
        print(f"| {checkpoint} | {t['pairs']} | {t['median']:.2f} | {t['below_delta_d']:.2f} | "
              f"{t['spatial_spread']:.2f} | {t['centroids']:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=Path("runs/panoptic_seeds"))
    parser.add_argument("--data", type=Path, default=Path("data/toy"))
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--checkpoints", type=Path, nargs="*")
    parser.add_argument("--stability-bandwidth", type=float, help="also apply the stability filter at this bandwidth")
    parser.add_argument("--compare", type=Path, nargs="+", metavar="CKPT",
                        help="only compare these instance checkpoints (e.g. appearance-only and joint embedding) "
                             "inside ground-truth masks on target train images")
    parser.add_argument("--bandwidth", type=float,
                        help="with --compare: cluster at this bandwidth instead of each checkpoint's own")
    parser.add_argument("--source", type=Path,
                        help="with --compare: also measure the touching objects on the first 200 images of this "
                             "SYNTHIA-format folder (e.g. unseen source images)")
    args = parser.parse_args()
    if args.compare:
        overrides = {} if args.bandwidth is None else {"bandwidth": args.bandwidth}
        compare_embeddings(args.compare, evenly_spaced(CityscapesDataset(args.data / "cityscapes", "train"),
                                                       args.images), **overrides)
        if args.source is not None:
            print(f"\nThe same on {args.source}:")
            print_touching_objects(args.compare, Subset(SynthiaDataset(args.source), range(200)))
        return
    run = args.runs / f"seed{args.seed}"
    teacher = pseudo_labeller(args.seed, run / "instance_baseline" / "final.ckpt",
                              run / "semantic_self_train" / "final.ckpt")
    train = evenly_spaced(CityscapesDataset(args.data / "cityscapes", "train"), args.images)
    stability = "" if args.stability_bandwidth is None else f", stability bandwidth {args.stability_bandwidth}"
    print(f"Pseudo-instances per target train image (seed {args.seed}, {len(train)} images{stability}):")
    print("| min confidence | true | false | precision | false: merged objects | false: fragments | false: other |\n"
          "|---:|---:|---:|---:|---:|---:|---:|")
    for threshold, kinds in pseudo_label_counts(teacher, train, args.stability_bandwidth).items():
        true, false = kinds["true"], sum(kinds.values()) - kinds["true"]
        print(f"| {threshold:.1f} | {true:.2f} | {false:.2f} | {true / max(true + false, 1e-9):.2f} | "
              f"{kinds['merge']:.2f} | {kinds['fragment']:.2f} | {kinds['other']:.2f} |")
    val = evenly_spaced(CityscapesDataset(args.data / "cityscapes", "val"), args.images)
    checkpoints = args.checkpoints or [run / stage / "final.ckpt" for stage in ("instance_baseline",
                                                                                "instance_self_train")]
    print(f"\nSeparation of ground-truth instances on target val ({len(val)} images):")
    print("| checkpoint | nearest same-class instance (median) | pixel to instance mean |\n|---|---:|---:|")
    for checkpoint in checkpoints:
        nearest, spread = separation(checkpoint, val)
        print(f"| {checkpoint} | {nearest:.2f} | {spread:.2f} |")


if __name__ == "__main__":
    main()
