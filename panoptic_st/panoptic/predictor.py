"""Checkpoints -> the prediction contract, the one output of every producer in the project.

One dict per image (tensors on the predictor's device):

- ``semantic``   [H, W] long, trainIds;
- ``confidence`` [H, W] float, the probability of the predicted class;
- ``instances``  [H, W] long, 0 = none, instances 1..K;
- ``segments``   dict of [K] tensors ``id`` (1..K), ``class`` (trainId), ``score`` (mean probability of the class
  inside the instance), ``area`` (pixels): row k-1 describes instance k;
- ``panoptic``   [H, W] long, ``class * 1000 + index`` (stuff: ``class * 1000``, void: -1), see ``merge_panoptic``;
- ``meta``       the dataset item's ``meta`` (``name``, ``image_path``), when predicting batches of a dataset.

A semantic-only predictor fills ``semantic`` and ``confidence``. Semantic masks come from the semantic network, or
(``masks="gt"``) from the batch's ground truth, to score an instance model alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from panoptic_st.checkpoints import instance_network_from_checkpoint, network_from_checkpoint
from panoptic_st.instance.pseudo_labels import ClusteringSettings, cluster_instances
from panoptic_st.ops.classes import max_over_classes
from panoptic_st.ops.images import normalize
from panoptic_st.ops.segments import renumber_segments
from panoptic_st.panoptic.merge import merge_panoptic

MASKS = ("semantic", "gt")


class PanopticPredictor(L.LightningModule):
    """A semantic network and optional instance networks (disjoint class sets) that predict the contract."""

    def __init__(self, semantic_net: nn.Module | None, instance_nets: Sequence[nn.Module] = (),
                 clustering: Sequence[ClusteringSettings] = (), scale: float = 1.0, masks: str = "semantic") -> None:
        super().__init__()
        if masks not in MASKS:
            raise ValueError(f"masks must be one of {MASKS}, got {masks!r}")
        if masks == "semantic" and semantic_net is None:
            raise ValueError("a predictor without a semantic network needs masks='gt'")
        if len(instance_nets) != len(clustering):
            raise ValueError(f"{len(instance_nets)} instance networks but {len(clustering)} clustering settings")
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        owned = [set(s.classes) for s in clustering]
        for i, classes in enumerate(owned):
            for j, earlier in enumerate(owned[:i]):
                if classes & earlier:
                    raise ValueError(f"instance models {j} and {i} share classes {sorted(classes & earlier)}")
        self.semantic_net = semantic_net
        self.instance_nets = nn.ModuleList(instance_nets)
        self.clustering = tuple(clustering)
        self.scale = scale
        self.masks = masks

    @classmethod
    def from_checkpoints(cls, semantic: str | Path | None, instances: Sequence[str | Path] = (), *,
                         scale: float = 1.0, masks: str = "semantic", **clustering_overrides) -> PanopticPredictor:
        """Networks and clustering settings from checkpoints; `clustering_overrides` (e.g. bandwidth=1.0,
        max_points=None) replace the settings stored in the instance checkpoints."""
        semantic_net = network_from_checkpoint(semantic, "semantic") if semantic is not None else None
        nets, settings = [], []
        for path in instances:
            net, stored = instance_network_from_checkpoint(path)
            nets.append(net)
            settings.append(stored.__class__(**{**stored.__dict__, **clustering_overrides}))
        return cls(semantic_net, nets, settings, scale=scale, masks=masks)

    @torch.inference_mode()
    def predict(self, images: Tensor, semantic: Tensor | None = None) -> list[dict]:
        """The contract for each image of [B, 3, H, W] in [0, 1] (see `predict_images`)."""
        return predict_images(images, self.semantic_net, self.instance_nets, self.clustering, semantic, self.scale)

    def predict_step(self, batch: dict, batch_idx: int = 0) -> list[dict]:
        """The contract of each image of a dataset batch, with its `meta`."""
        results = self.predict(batch["image"], batch["semantic"] if self.masks == "gt" else None)
        meta = batch.get("meta", {})
        for b, result in enumerate(results):
            result["meta"] = {key: values[b] for key, values in meta.items()}
        return results


def network_output(net: nn.Module, images: Tensor, scale: float = 1.0) -> Tensor:
    """Float32 output of `net` for images in [0, 1] at their own size, the input resized by `scale` first."""
    height, width = images.shape[-2:]
    x = normalize(images)
    if scale != 1.0:
        x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    out = net(x.contiguous(memory_format=torch.channels_last)).float()
    if out.shape[-2:] != (height, width):
        out = F.interpolate(out, size=(height, width), mode="bilinear", align_corners=False)
    return out


def predict_images(images: Tensor, semantic_net: nn.Module | None, instance_nets: Sequence[nn.Module] = (),
                   clustering: Sequence[ClusteringSettings] = (), semantic: Tensor | None = None,
                   scale: float = 1.0) -> list[dict]:
    """The contract for each image of [B, 3, H, W] in [0, 1]; `semantic` [B, H, W] trainIds replaces the semantic
    network's masks (ground-truth masks: confidence 1, instance scores 1)."""
    if semantic is None:
        probs = network_output(semantic_net, images, scale).softmax(dim=1)
        confidence, semantic = max_over_classes(probs)
    else:
        probs, confidence = None, torch.ones(semantic.shape, device=semantic.device)
    results = [{"semantic": s, "confidence": c} for s, c in zip(semantic, confidence)]
    if not len(instance_nets):
        return results
    embeddings = [network_output(net, images, scale) for net in instance_nets]
    for b, result in enumerate(results):
        parts = [instance_segments(e[b], semantic[b], None if probs is None else probs[b], settings)
                 for e, settings in zip(embeddings, clustering)]
        instances, segments = combine_instances(parts)
        result.update(instances=instances, segments=segments, panoptic=merge_panoptic(semantic[b], instances))
    return results


def instance_segments(embeddings: Tensor, semantic: Tensor, probs: Tensor | None,
                      settings: ClusteringSettings) -> tuple[Tensor, dict[str, Tensor]]:
    """Instances 1..K [H, W] and their segments from one image's embeddings [D, H, W] clustered inside the
    semantic map [H, W]; scores are the mean probability of each instance's class in `probs` [C, H, W] (1 without)."""
    clustered, class_table = cluster_instances(embeddings, semantic, settings, settings.max_points)
    instances, ids = renumber_segments(clustered)
    count = ids.numel()
    area = torch.bincount(instances.flatten(), minlength=count + 1)[1:]
    classes = class_table[ids]
    if probs is None:
        score = torch.ones(count, device=semantic.device)
    else:
        pixel_class = torch.cat([classes.new_zeros(1), classes])[instances]
        class_prob = probs.gather(0, pixel_class[None].clamp_max(probs.shape[0] - 1))[0]
        score = (torch.bincount(instances.flatten(), class_prob.flatten(), minlength=count + 1)[1:]
                 / area.clamp_min(1)).float()
    segments = {"id": torch.arange(1, count + 1, device=semantic.device), "class": classes, "score": score,
                "area": area}
    return instances, segments


def combine_instances(parts: Sequence[tuple[Tensor, dict[str, Tensor]]]) -> tuple[Tensor, dict[str, Tensor]]:
    """One instance map and segment table from several models' (instances, segments) of one image: instances
    renumbered 1..K (models in order); where instances overlap, the higher score keeps the pixel (ties: the earlier
    model); an instance left without pixels is dropped."""
    if len(parts) == 1:
        return parts[0]
    shape, device = parts[0][0].shape, parts[0][0].device
    fused = torch.zeros(shape, dtype=torch.long, device=device)
    best = torch.full(shape, float("-inf"), device=device)
    classes, scores, offset = [], [], 0
    for instances, segments in parts:
        if instances.shape != shape:
            raise ValueError(f"instance maps of one image differ in size: {tuple(shape)} vs {tuple(instances.shape)}")
        for k, score in enumerate(segments["score"].tolist(), start=1):
            wins = (instances == k) & (score > best)
            fused[wins] = offset + k
            best[wins] = score
        classes.append(segments["class"])
        scores.append(segments["score"])
        offset += len(segments["score"])
    area = torch.bincount(fused.flatten(), minlength=offset + 1)[1:]
    present = area > 0
    remap = torch.zeros(offset + 1, dtype=torch.long, device=device)
    remap[1:][present] = torch.arange(1, int(present.sum()) + 1, device=device)
    count = int(present.sum())
    return remap[fused], {"id": torch.arange(1, count + 1, device=device), "class": torch.cat(classes)[present],
                          "score": torch.cat(scores)[present], "area": area[present]}


def ap_input(prediction: dict) -> dict:
    """The `InstanceAP` prediction mapping of one contract dict."""
    segments = prediction["segments"]
    return {"instances": prediction["instances"], "labels": segments["class"], "scores": segments["score"]}


__all__ = ["MASKS", "PanopticPredictor", "ap_input", "combine_instances", "instance_segments",
           "network_output", "predict_images"]
