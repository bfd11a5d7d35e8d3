"""Instance branch LightningModule: embedding U-Net trained on source instances (`baseline`) or self-trained on
target pseudo-labels clustered inside a frozen semantic network's masks (`self_train`).

The semantic network comes from a semantic checkpoint through `panoptic_st.checkpoints` (never from the semantic
LightningModule). Without one, validation clusters inside the ground-truth semantic masks (as the thesis's
"GT semantic masks" numbers) and self-training is refused.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor
from torchmetrics.aggregation import SumMetric

from panoptic_st.checkpoints import network_from_checkpoint
from panoptic_st.config import InstanceConfig
from panoptic_st.data.labels import CLASS_NAMES
from panoptic_st.evaluation.instance import InstanceAP
from panoptic_st.guards import finite_outputs, validation_scores
from panoptic_st.instance.classes import resolve_classes, source_instance_labels
from panoptic_st.instance.crowding import paste_neighbours
from panoptic_st.instance.losses import margin_epsilon, sample_angles, spoco_loss
from panoptic_st.instance.pseudo_labels import (
    METHODS,
    ClusteringSettings,
    cluster_instances,
    drop_unconfident_instances,
    drop_unstable_instances,
)
from panoptic_st.instance.spatial import build_instance_network, joint_space_precision, rotate_back_embeddings
from panoptic_st.instance.statistics import PSEUDO_LABEL_KINDS, pseudo_label_kinds
from panoptic_st.models.batchnorm import freeze_batchnorm
from panoptic_st.models.teacher import MomentumTeacher
from panoptic_st.ops.classes import max_over_classes
from panoptic_st.ops.geometry import rotate
from panoptic_st.ops.images import normalize
from panoptic_st.ops.segments import keep_random_segments
from panoptic_st.panoptic.predictor import ap_input, predict_images

MODES = ("baseline", "self_train")
PSEUDO_LABEL_SOURCES = ("teacher", "ground_truth")


class InstanceModule(L.LightningModule):
    """SPOCO-style pixel-embedding branch with semantic-guided mean-shift pseudo-labels."""

    def __init__(self, cfg: InstanceConfig) -> None:
        super().__init__()
        if cfg.mode not in MODES:
            raise ValueError(f"instance.mode must be one of {MODES}, got '{cfg.mode}'")
        if cfg.mode == "self_train" and not cfg.semantic_checkpoint:
            raise ValueError("instance self-training needs instance.semantic_checkpoint (its pseudo-label masks)")
        if not 0.0 <= cfg.pseudo_label_min_confidence <= 1.0:
            raise ValueError(f"instance.pseudo_label_min_confidence must lie in [0, 1], got "
                             f"{cfg.pseudo_label_min_confidence}")
        if cfg.clustering not in METHODS:
            raise ValueError(f"instance.clustering must be one of {METHODS}, got '{cfg.clustering}'")
        if cfg.pseudo_labels not in PSEUDO_LABEL_SOURCES:
            raise ValueError(f"instance.pseudo_labels must be one of {PSEUDO_LABEL_SOURCES}, got '{cfg.pseudo_labels}'")
        if cfg.pseudo_label_stability_bandwidth is not None and cfg.pseudo_label_stability_bandwidth <= 0:
            raise ValueError(f"instance.pseudo_label_stability_bandwidth must be positive or null, got "
                             f"{cfg.pseudo_label_stability_bandwidth}")
        if not 0.0 <= cfg.consistency_max_angle <= 360.0:
            raise ValueError(f"instance.consistency_max_angle must lie in [0, 360], got {cfg.consistency_max_angle}")
        if not 0.0 < cfg.oracle_fraction <= 1.0:
            raise ValueError(f"instance.oracle_fraction must lie in (0, 1], got {cfg.oracle_fraction}")
        self.cfg = cfg
        self.classes = resolve_classes(list(cfg.classes))
        self.spatial_scale = cfg.spatial_scale if cfg.spatial_embedding else None
        joint_bandwidth = cfg.spatial_embedding and cfg.spatial_bandwidth is not None
        bandwidth = cfg.spatial_bandwidth if joint_bandwidth else cfg.bandwidth
        self.clustering = ClusteringSettings(self.classes, cfg.clustering, bandwidth, cfg.delta_d, cfg.min_size,
                                             cfg.postprocess_kernel)
        encoder = cfg.encoder if cfg.encoder.startswith("tu-") else f"tu-{cfg.encoder}"
        clustering = {**self.clustering.__dict__, "classes": list(self.classes)}
        self.save_hyperparameters({"branch": "instance", "encoder": encoder, "embedding_dim": cfg.embedding_dim,
                                   "classes": list(self.classes), "mode": cfg.mode, "clustering": clustering,
                                   "spatial_embedding": cfg.spatial_embedding, "spatial_scale": self.spatial_scale})
        self.net = build_instance_network(encoder, cfg.embedding_dim, cfg.encoder_weights_file, self.spatial_scale)
        if cfg.mode == "self_train" and cfg.freeze_batchnorm:
            freeze_batchnorm(self.net)
        self.teacher = MomentumTeacher(self.net, cfg.teacher_momentum, interval=1)
        self.semantic_net = (network_from_checkpoint(cfg.semantic_checkpoint, "semantic")
                             if cfg.semantic_checkpoint else None)
        self.val_ap = InstanceAP(thing_ids=self.classes, min_region_size=None)
        self.val_nonfinite = SumMetric()
        self.step_losses: dict[str, Tensor] = {}
        self.media_sample: dict[str, Tensor] = {}

    def forward(self, images: Tensor) -> Tensor:
        """Pixel embeddings [B, D, H, W] of images in [0, 1] (joint embeddings [B, D+2, H, W] with
        `instance.spatial_embedding`)."""
        return self.net(normalize(images))

    def state_dict(self, *args, **kwargs) -> dict:
        """Checkpoints hold the trained networks, not the frozen semantic network (it has its own file)."""
        state = super().state_dict(*args, **kwargs)
        return {k: v for k, v in state.items() if not k.startswith("semantic_net.")}

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        missing_ok = {k for k in super().state_dict() if k.startswith("semantic_net.")}
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        unexpected_missing = [k for k in result.missing_keys if k not in missing_ok]
        if strict and (unexpected_missing or result.unexpected_keys):
            raise RuntimeError(f"instance checkpoint mismatch: missing {unexpected_missing[:5]}, "
                               f"unexpected {result.unexpected_keys[:5]}")
        return result

    def on_fit_start(self) -> None:
        if not self.teacher.initialised:
            self.teacher.update(self.net, 0)

    def loss_terms(self, images: Tensor, labels: Tensor, consistency: bool) -> dict[str, Tensor]:
        """SPOCO losses of the student on one batch, with the momentum network's rotation consistency."""
        cfg = self.cfg
        emb = self(images)
        self.media_sample = {"image": images[0].detach(), "labels": labels[0], "embeddings": emb[0].detach()}
        emb_g = valid = None
        if consistency and cfg.consistency_weight > 0:
            angles = sample_angles(images.shape[0], max_angle=cfg.consistency_max_angle).to(images.device)
            emb_g, valid = rotate_back_embeddings(self.teacher(normalize(rotate(images, angles))), angles,
                                                  self.spatial_scale)
        eps = margin_epsilon(self.global_step, cfg.margin_epsilon, cfg.margin_decay)
        with joint_space_precision(self.spatial_scale is not None, images.device.type):
            return spoco_loss(emb, labels, emb_g, valid, delta_v=cfg.delta_v, delta_d=cfg.delta_d, epsilon=eps,
                              w_pull=cfg.pull_weight, w_push=cfg.push_weight, w_reg=cfg.reg_weight,
                              w_instance=cfg.dice_weight, w_unlabelled=cfg.unlabelled_push_weight,
                              w_consistency=cfg.consistency_weight, appearance_dim=cfg.embedding_dim,
                              w_offset=cfg.offset_weight,
                              spatial_scale=self.spatial_scale)

    @torch.inference_mode()
    def semantic_masks(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(argmax trainIds [B, H, W], probabilities [B, C, H, W]) of the frozen semantic network."""
        probs = self.semantic_net(normalize(images)).softmax(dim=1)
        return max_over_classes(probs)[1], probs

    @torch.no_grad()
    def pseudo_labels(self, images: Tensor) -> Tensor:
        """Instance pseudo-labels [B, H, W]: momentum embeddings clustered inside the predicted thing masks,
        without the instances the semantic network is not confident of (`instance.pseudo_label_min_confidence`)."""
        semantic, probs = self.semantic_masks(images)
        with torch.inference_mode():
            embeddings = self.teacher(normalize(images))
        maps = []
        for b in range(images.shape[0]):
            instances, classes = self.cluster(embeddings[b], semantic[b], self.cfg.pseudo_label_max_points)
            kept = drop_unconfident_instances(instances, classes, probs[b], self.cfg.pseudo_label_min_confidence)
            if self.cfg.pseudo_label_stability_bandwidth is not None:
                kept = drop_unstable_instances(kept, embeddings[b], self.cfg.pseudo_label_stability_bandwidth,
                                               self.cfg.min_size, self.cfg.pseudo_label_max_points)
            maps.append(kept)
        return torch.stack(maps)

    def oracle_labels(self, target: dict) -> Tensor:
        """Upper bound of the pseudo-labels: the target's ground-truth instances of the selected classes, each kept
        with probability `instance.oracle_fraction`."""
        truth = source_instance_labels(target["semantic"], target["instance"], self.classes)
        return torch.stack([keep_random_segments(t, self.cfg.oracle_fraction) for t in truth])

    def cluster(self, embeddings: Tensor, semantic: Tensor, max_points: int | None = None) -> tuple[Tensor, Tensor]:
        """Instance map and class table of one image, clustered class by class, then post-processed."""
        return cluster_instances(embeddings, semantic, self.clustering, max_points)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        parts: list[tuple[int, Tensor]] = []
        self.step_losses = {}
        source = batch.get("source") if "target" in batch else batch.get("source", batch)
        if source is not None:
            images = source["image"]
            labels = source_instance_labels(source["semantic"], source["instance"], self.classes)
            if self.cfg.paste_neighbours > 0:
                images, labels = paste_neighbours(images, labels, self.cfg.paste_neighbours, self.cfg.min_size)
            terms = self.loss_terms(images, labels, consistency=self.cfg.mode == "self_train")
            self.log_losses({f"train/source_{k}": v for k, v in terms.items()})
            parts.append((source["image"].shape[0], terms["loss"]))
        if self.cfg.mode == "self_train" and "target" in batch:
            target = batch["target"]
            pseudo = (self.pseudo_labels(target["image"]) if self.cfg.pseudo_labels == "teacher"
                      else self.oracle_labels(target))
            terms = self.loss_terms(target["image"], pseudo, consistency=True)
            self.log_losses({f"train/target_{k}": v for k, v in terms.items()})
            self.log_pseudo_label_statistics(pseudo, target)
            parts.append((target["image"].shape[0], terms["loss"]))
        total = sum(n for n, _ in parts)
        loss = sum(n * part for n, part in parts) / total
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def log_losses(self, terms: dict[str, Tensor]) -> None:
        """Log loss terms and keep them in `step_losses` for the divergence guard."""
        self.step_losses.update(terms)
        self.log_dict(terms)

    def log_pseudo_label_statistics(self, pseudo: Tensor, target: dict) -> None:
        """Pseudo-label counts, true/false positives and the false ones that merge objects or cover a fragment of one,
        against the target ground truth (monitoring only)."""
        truth = source_instance_labels(target["semantic"], target["instance"], self.classes)
        totals = dict.fromkeys(PSEUDO_LABEL_KINDS, 0)
        for b in range(pseudo.shape[0]):
            for kind, count in pseudo_label_kinds(pseudo[b], truth[b]).items():
                totals[kind] += count
        n, false = pseudo.shape[0], sum(totals.values()) - totals["true"]
        self.log_dict({"pseudo/instances_per_image": (totals["true"] + false) / n,
                       "pseudo/true_positives": totals["true"] / n, "pseudo/false_positives": false / n,
                       "pseudo/merges": totals["merge"] / n, "pseudo/fragments": totals["fragment"] / n})

    def optimizer_step(self, *args, **kwargs) -> None:
        """The momentum network follows right after each optimizer step (so checkpoints hold the updated one)."""
        super().optimizer_step(*args, **kwargs)
        self.teacher.update(self.net, self.global_step + 1)

    def predict(self, batch: dict) -> list[dict]:
        """The prediction contract of a batch: the student's embeddings clustered inside the semantic network's
        masks, or inside the ground-truth masks when the module has no semantic network."""
        semantic = None if self.semantic_net is not None else batch["semantic"]
        return predict_images(batch["image"], self.semantic_net, [self.net], [self.clustering], semantic)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        with finite_outputs(self.net) as counts:
            preds = self.predict(batch)
        self.val_nonfinite.update(sum(counts))
        self.val_ap.update([ap_input(p) for p in preds],
                           [{"semantic": s, "instance": i} for s, i in zip(batch["semantic"], batch["instance"])])

    def on_validation_epoch_end(self) -> None:
        """AP and AP50, overall and per class; NaN if embeddings were not finite (`val/nonfinite` counts them; they
        were clustered as zeros)."""
        result = self.val_ap.compute()
        scores = {"val/ap": result["ap"], "val/ap50": result["ap50"]}
        for train_id, per_class in result["per_class"].items():
            name = CLASS_NAMES[int(train_id)]
            scores.update({f"val/ap/{name}": float(per_class["ap"]), f"val/ap50/{name}": float(per_class["ap50"])})
        self.log_dict(validation_scores(scores, self.val_nonfinite.compute()))
        self.val_ap.reset()
        self.val_nonfinite.reset()

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        return self.predict(batch)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        steps = max(int(self.trainer.max_steps), 1) if self.trainer else 1
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
