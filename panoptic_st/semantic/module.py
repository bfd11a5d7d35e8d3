"""Semantic branch LightningModule: source-only baseline and SAC self-training (one readable step).

Batches follow `PanopticDataModule`: a plain item batch in `source` mode, {"source": ..., "target": ...} in
`adapt` mode. Images arrive in [0, 1]; the module normalises them before every network call. Target labels are
never used for training, only by validation.
"""

from __future__ import annotations

import lightning as L
import torch
from torchmetrics.aggregation import SumMetric

from panoptic_st.config import SemanticConfig
from panoptic_st.data.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from panoptic_st.evaluation.semantic import SemanticIoU
from panoptic_st.guards import count_nonfinite, validation_scores
from panoptic_st.models.batchnorm import freeze_batchnorm
from panoptic_st.models.deeplab import build_deeplab, param_groups
from panoptic_st.models.teacher import MomentumTeacher
from panoptic_st.ops.classes import max_over_classes
from panoptic_st.ops.geometry import warp_labels
from panoptic_st.ops.images import IMAGENET_MEAN, IMAGENET_STD, normalize, renormalisation
from panoptic_st.ops.networks import parameter_distance
from panoptic_st.ops.segments import fill_segments_with_majority_label, keep_random_segments
from panoptic_st.panoptic.predictor import predict_images
from panoptic_st.semantic.losses import focal_target_loss, source_cross_entropy, target_weight
from panoptic_st.semantic.pseudo_labels import (
    ClassPrior,
    adaptive_thresholds,
    fuse_views,
    make_views,
    photometric_noise,
    pseudo_labels,
)

MODES = ("baseline", "self_train")
GUIDANCE = ("none", "gt")


class SemanticModule(L.LightningModule):
    """DeepLab trained on the source (`baseline`) or self-trained on the target with SAC (`self_train`)."""

    def __init__(self, cfg: SemanticConfig, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        if cfg.mode not in MODES:
            raise ValueError(f"semantic.mode must be one of {MODES}, got '{cfg.mode}'")
        if cfg.guided_refinement not in GUIDANCE:
            raise ValueError(f"semantic.guided_refinement must be one of {GUIDANCE}, got '{cfg.guided_refinement}'")
        self.cfg = cfg
        self.save_hyperparameters({"branch": "semantic", "arch": cfg.arch, "encoder": cfg.encoder,
                                   "output_stride": cfg.output_stride, "num_classes": num_classes,
                                   "mode": cfg.mode})
        self.net = build_deeplab(cfg.arch, cfg.encoder, num_classes, cfg.output_stride, cfg.encoder_weights_file)
        self.teacher: MomentumTeacher | None = None
        self.prior: ClassPrior | None = None
        if cfg.mode == "self_train":
            freeze_batchnorm(self.net)
            self.teacher = MomentumTeacher(self.net, cfg.teacher_momentum, cfg.teacher_interval)
            self.prior = ClassPrior(num_classes, cfg.prior_momentum)
        self.register_buffer("source_mean", torch.tensor(IMAGENET_MEAN))
        self.register_buffer("source_std", torch.tensor(IMAGENET_STD))
        self.val_iou = SemanticIoU(num_classes)
        self.val_nonfinite = SumMetric()
        self.step_losses: dict[str, torch.Tensor] = {}
        self.media_sample: dict[str, torch.Tensor] = {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of the student for target-domain images in [0, 1]."""
        return self.net(normalize(images))

    def source_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for source images, normalised with the (optionally re-normalised) source statistics."""
        return self.net(normalize(images, self.source_mean.tolist(), self.source_std.tolist()))

    def match_source_statistics(self, source: tuple[torch.Tensor, torch.Tensor],
                                target: tuple[torch.Tensor, torch.Tensor]) -> None:
        """SAC source re-normalisation: source images are from now on normalised so that their channel statistics
        (mean, std) match the target's; the constants are buffers, so checkpoints keep them."""
        mean, std = renormalisation(*source, *target)
        self.source_mean.copy_(mean)
        self.source_std.copy_(std)

    def on_fit_start(self) -> None:
        if self.teacher is not None and not self.teacher.initialised:
            self.teacher.update(self.net, 0)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        source = batch.get("source", batch)
        loss = source_cross_entropy(self.source_logits(source["image"]), source["semantic"])
        self.step_losses = {"train/loss_source": loss}
        self.log("train/loss_source", loss, prog_bar=True)
        if self.cfg.mode == "baseline" and self.cfg.bn_adapt and "target" in batch:
            with torch.no_grad():
                self(batch["target"]["image"])
        if self.cfg.mode == "self_train":
            guide = batch["target"]["instance"] if self.cfg.guided_refinement == "gt" else None
            target_loss = self.self_training_loss(batch["target"]["image"], guide)
            weight = target_weight(self.cfg, self.global_step)
            self.step_losses["train/loss_target"] = target_loss
            self.log("train/loss_target", target_loss, prog_bar=True)
            self.log("train/target_weight", weight)
            loss = loss + weight * target_loss
        self.log("train/loss", loss)
        return loss

    def self_training_loss(self, images: torch.Tensor, guide_instances: torch.Tensor | None = None) -> torch.Tensor:
        """SAC: teacher on clean views -> fused pseudo-labels -> focal loss of the student on noisy views.

        With `guide_instances` [B, H, W] (thesis ch. 8.5, GT variant), a random `guided_fraction` of them is warped
        into the views and overlaid on the pseudo-labels, each mask taking its majority label.
        """
        cfg = self.cfg
        views, affines = make_views(images, cfg.group_size, tuple(cfg.zoom))
        with torch.no_grad():
            probs, valid = fuse_views(self.teacher(normalize(views)), affines, cfg.group_size)
            prior = self.prior.observe(probs)
            maxima = max_over_classes(probs)
            theta = adaptive_thresholds(probs, prior, cfg.threshold_scale, cfg.threshold_min, cfg.prior_tau,
                                        maxima)
            labels, confidence = pseudo_labels(probs, theta, maxima=maxima)
            labels[~valid] = IGNORE_INDEX
            if guide_instances is not None:
                chosen = torch.stack([keep_random_segments(g, cfg.guided_fraction, exact_count=True)
                                      for g in guide_instances])
                view_instances = warp_labels(chosen.repeat_interleave(cfg.group_size, dim=0), affines)
                labels = fill_segments_with_majority_label(labels, view_instances)
        student_views = photometric_noise(views) if cfg.photometric_noise else views
        logits = self(student_views)
        loss = focal_target_loss(logits, labels, confidence, prior, cfg.focal_gamma)
        self.media_sample = {"image": views[0].detach(), "pseudo_labels": labels[0],
                             "prediction": logits[0].detach().argmax(dim=0)}
        self.log_pseudo_label_statistics(labels, theta, prior)
        return loss

    def log_pseudo_label_statistics(self, labels: torch.Tensor, theta: torch.Tensor, prior: torch.Tensor) -> None:
        """Per-class pseudo-label coverage, mean thresholds and prior, on the steps the logger writes."""
        if self._trainer is None or (self.global_step + 1) % max(self.trainer.log_every_n_steps, 1):
            return
        coverage = torch.bincount(labels.flatten(), minlength=256)[:NUM_CLASSES].float() / labels.numel()
        stats = {"pseudo/coverage_all": coverage.sum()}
        for c, name in enumerate(CLASS_NAMES):
            stats[f"pseudo/coverage/{name}"] = coverage[c]
            stats[f"pseudo/threshold/{name}"] = theta[:, c].mean()
            stats[f"pseudo/prior/{name}"] = prior[c]
        self.log_dict(stats)

    def optimizer_step(self, *args, **kwargs) -> None:
        """The teacher follows right after each optimizer step, so every checkpoint holds the updated teacher."""
        super().optimizer_step(*args, **kwargs)
        if self.teacher is not None and self.teacher.update(self.net, self.global_step + 1):
            self.log("train/teacher_student_distance", parameter_distance(self.teacher.net, self.net))

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch["image"])
        self.val_nonfinite.update(count_nonfinite(logits))
        self.val_iou.update(logits.argmax(dim=1), batch["semantic"])

    def on_validation_epoch_end(self) -> None:
        """mIoU over the classes with pixels; a class without any has NaN IoU; NaN everything if logits were not
        finite (`val/nonfinite` counts them)."""
        result = self.val_iou.compute()
        scores = {f"val/miou{n}": result[f"miou_{n}"] for n in (19, 16, 13)}
        scores.update({f"val/iou/{name}": result["iou"][c] for c, name in enumerate(CLASS_NAMES)})
        self.log_dict(validation_scores(scores, self.val_nonfinite.compute()))
        self.val_iou.reset()
        self.val_nonfinite.reset()

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        """The semantic keys of the prediction contract, one dict per image."""
        return predict_images(batch["image"], self.net)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        cfg = self.cfg
        groups = param_groups(self.net, cfg.lr, cfg.weight_decay, cfg.head_lr_mult)
        groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in groups]
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
        if cfg.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=cfg.lr)
        raise ValueError(f"semantic.optimizer must be 'sgd' or 'adamw', got '{cfg.optimizer}'")
