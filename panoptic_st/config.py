"""Typed configuration: dataclass schema, YAML experiment files and `key=value` overrides.

An experiment file may list `defaults:` (YAML files relative to itself, to `configs/` or to `configs/experiments/`)
merged before it.
Every value is validated against the schema; a typo or a wrong type fails with one line that names the key,
the expected type and the closest valid keys (reading, messages and value checks: `panoptic_st.config_parsing`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from panoptic_st.config_parsing import (
    CONFIG_DIR,
    DATASET_NAMES,
    LOGGER_KINDS,
    MANAGED_TRAINER_ARGUMENTS,
    MODES,
    NONFINITE_ACTIONS,
    OPTIMIZERS,
    SEMANTIC_ARCHS,
    STAGES,
    ConfigError,
    check_lightning_arguments,
    explain,
    lightning_trainer_arguments,
    load_yaml_chain,
    parse_overrides,
    resolve_experiment_path,
    route_lightning_arguments,
    schema_keys,
    validate,
)

__all__ = [
    "CONFIG_DIR",
    "DATASET_NAMES",
    "LOGGER_KINDS",
    "MANAGED_TRAINER_ARGUMENTS",
    "MODES",
    "NONFINITE_ACTIONS",
    "OPTIMIZERS",
    "SCHEMA_KEYS",
    "SEMANTIC_ARCHS",
    "STAGES",
    "ConfigError",
    "DataConfig",
    "ExperimentConfig",
    "InstanceConfig",
    "LoggerConfig",
    "SemanticConfig",
    "TrainerConfig",
    "lightning_trainer_arguments",
    "load_config",
    "parse_overrides",
    "resolve_experiment_path",
    "to_dict",
    "to_yaml",
    "validate",
]


@dataclass
class DataConfig:
    """Datasets, augmentation and loading."""

    root: str = "data/toy"
    sources: list[str] = field(default_factory=lambda: ["synthia"])
    target: str = "cityscapes"
    synthia_root: str = "${data.root}/synthia"
    gta5_root: str = "${data.root}/gta5"
    cityscapes_root: str = "${data.root}/cityscapes"
    train_split: str = "train"
    val_split: str = "val"
    crop: list[int] = field(default_factory=lambda: [96, 192])
    source_scale: list[float] = field(default_factory=lambda: [0.5, 1.0])
    target_size: list[int] = field(default_factory=lambda: [96, 192])
    target_scale: list[float] = field(default_factory=lambda: [1.0, 1.1])
    flip: bool = True
    batch_size: int = 8
    target_batch_size: int = 2
    source_mix: float | None = None
    val_batch_size: int = 8
    num_workers: int = 2
    max_items: int | None = None
    check_on_setup: bool = True


@dataclass
class SemanticConfig:
    """Semantic branch (DeepLab + SAC self-training)."""

    arch: str = "deeplabv2"
    encoder: str = "resnet101"
    output_stride: int = 8
    encoder_weights_file: str | None = None
    # Training refuses to start a randomly initialised encoder (no weights file, no init checkpoint) unless True.
    allow_random_init: bool = False
    mode: str = "baseline"
    init_checkpoint: str | None = None
    lr: float = 2.5e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    head_lr_mult: float = 10.0
    optimizer: str = "sgd"
    bn_adapt: bool = False
    adabn_init: bool = False
    teacher_momentum: float = 0.99
    teacher_interval: int = 100
    group_size: int = 4
    zoom: list[float] = field(default_factory=lambda: [0.5, 1.0])
    photometric_noise: bool = True
    target_weight: float = 5.0
    target_rampup_steps: int = 0
    focal_gamma: float = 3.0
    threshold_min: float = 0.2
    threshold_scale: float = 0.75
    prior_momentum: float = 0.99
    prior_tau: float = 1e-3
    source_renorm: bool = False
    renorm_images: int = 200
    importance_sampling: bool = False
    importance_uniform: float = 0.25
    guided_refinement: str = "none"
    guided_fraction: float = 0.3


@dataclass
class InstanceConfig:
    """Instance branch (embedding U-Net + SPOCO-style self-training)."""

    encoder: str = "resnet101"
    embedding_dim: int = 8
    encoder_weights_file: str | None = None
    # Training refuses to start a randomly initialised encoder (no weights file, no init checkpoint) unless True.
    allow_random_init: bool = False
    mode: str = "baseline"
    init_checkpoint: str | None = None
    semantic_checkpoint: str | None = None
    classes: list[str] = field(default_factory=lambda: ["all"])
    lr: float = 1e-3
    weight_decay: float = 1e-5
    delta_v: float = 0.5
    delta_d: float = 2.0
    pull_weight: float = 1.0
    push_weight: float = 1.0
    reg_weight: float = 1e-3
    dice_weight: float = 1.0
    unlabelled_push_weight: float = 1.0
    consistency_weight: float = 0.1
    # The momentum network's view for the consistency loss is the input rotated by a uniform angle in
    # [0, consistency_max_angle) degrees (SPOCO: 180; 0 gives it the student's own view).
    consistency_max_angle: float = 180.0
    # Self-training keeps the student's BatchNorm layers frozen at the initial (source) statistics, as the semantic
    # branch's SAC does; False lets them follow the target batches.
    freeze_batchnorm: bool = False
    teacher_momentum: float = 0.999
    margin_epsilon: float = 0.0
    margin_decay: float = 1e-3
    clustering: str = "meanshift+"
    bandwidth: float = 0.5
    min_size: int = 50
    # Training pseudo-labels: mean-shift finds its modes on at most this many evenly spaced pixels per class mask
    # and every pixel takes its nearest mode (prediction and validation cluster every pixel); None clusters every
    # pixel. What it costs and changes on the toy: docs/results.md.
    pseudo_label_max_points: int | None = None
    postprocess_kernel: int = 3
    # Training pseudo-labels: a pseudo-instance is kept only if the semantic network's mean probability of its
    # class inside it reaches this confidence (0 keeps all); dropped ones become unlabelled pixels.
    pseudo_label_min_confidence: float = 0.0
    # Training pseudo-labels: a pseudo-instance whose embeddings split into two or more clusters of `min_size`
    # pixels when clustered again at this finer bandwidth is dropped (unlabelled); None keeps all.
    pseudo_label_stability_bandwidth: float | None = None
    # Where self-training labels come from: "teacher" (the method) or "ground_truth", an oracle upper bound that
    # trains on the labelled target's own instances, each kept with probability `oracle_fraction` (a pseudo-labeller
    # of that recall and perfect precision). The oracle needs target instance labels (toy, Cityscapes train).
    pseudo_labels: str = "teacher"
    oracle_fraction: float = 1.0
    # Spatial embeddings (`panoptic_st/instance/spatial.py`): the U-Net also predicts a 2-d offset per pixel, and the
    # losses and the clustering act on [appearance, spatial_scale * (x, y) + offset], with (x, y) the pixel's column
    # and row. spatial_scale is in embedding units per pixel: pixels of one instance are pulled within
    # delta_v / spatial_scale pixels of its centre, and mean-shift+ keeps apart modes whose centres lie more than
    # delta_d / spatial_scale pixels apart.
    spatial_embedding: bool = False
    spatial_scale: float = 0.1
    # Mean-shift bandwidth in the joint space of spatial embeddings; None uses `bandwidth`.
    spatial_bandwidth: float | None = None
    # Weight of the centre-offset term with spatial embeddings (`losses.centre_offset_loss`, Panoptic-DeepLab's
    # offset loss): every labelled pixel's spatial embedding regressed (L1) to its instance's centre of mass,
    # without the pull's margin; 0 turns it off.
    offset_weight: float = 0.0
    # Source training: each labelled source instance is, with this probability, copied beside itself (touching or
    # partly covering it, re-lit), so that sparse source scenes show touching objects of one class
    # (`panoptic_st/instance/crowding.py`); 0 turns it off. What it did on the instance-gap toy: docs/results.md.
    paste_neighbours: float = 0.0


@dataclass
class TrainerConfig:
    """Lightning Trainer settings.

    Any other argument of `lightning.Trainer` (`max_time`, `deterministic`, `sync_batchnorm`, `fast_dev_run`...) may
    be given as `trainer.<name>` too: it is kept in `trainer.lightning` and checked against the Trainer's signature.
    `limit_val_batches` keeps Lightning's meaning: an int is a number of batches, a float a fraction.
    """

    max_steps: int = 1000
    val_check_interval: int | None = None
    limit_val_batches: Any = 1.0
    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = 10
    gradient_clip_val: float | None = None
    progress_bar: bool = True
    checkpoint_every_n_steps: int | None = None
    resume: bool = False
    # Start over an unfinished run in `output_dir` (its checkpoints are deleted) instead of refusing to.
    overwrite: bool = False
    # A non-finite loss or gradient: "stop" the run (exit code 4), or "skip" the step (counted in
    # `train/skipped_steps`). Non-finite weights always stop it.
    on_nonfinite: str = "stop"
    lightning: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoggerConfig:
    """Experiment logging: csv, tensorboard or wandb."""

    kind: str = "csv"
    project: str = "panoptic_st"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    name: str | None = None
    log_model: bool = False
    image_interval: int = 500


@dataclass
class ExperimentConfig:
    """One training or evaluation stage."""

    name: str = "experiment"
    stage: str = "semantic"
    seed: int = 0
    output_dir: str = "runs/${name}"
    torch_threads: int | None = None
    data: DataConfig = field(default_factory=DataConfig)
    semantic: SemanticConfig = field(default_factory=SemanticConfig)
    instance: InstanceConfig = field(default_factory=InstanceConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


SCHEMA_KEYS = schema_keys(ExperimentConfig)
"""Every dotted key of the schema with its type name."""


def _merge(base: DictConfig, other: Any, origin: str) -> DictConfig:
    trainer_fields = {f.name for f in dataclasses.fields(TrainerConfig)}
    try:
        return OmegaConf.merge(base, route_lightning_arguments(other, trainer_fields))
    except OmegaConfBaseException as err:
        raise explain(err, origin, ExperimentConfig) from None


def load_config(experiment: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Schema defaults <- experiment YAML chain <- overrides, validated and resolved."""
    cfg = OmegaConf.structured(ExperimentConfig)
    if experiment is not None:
        for path, part in load_yaml_chain(resolve_experiment_path(str(experiment))):
            cfg = _merge(cfg, part, str(path))
    if overrides:
        cfg = _merge(cfg, parse_overrides(overrides), "override")
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise explain(err, "interpolation", ExperimentConfig) from None
    check_lightning_arguments(cfg.trainer, ExperimentConfig)
    config = OmegaConf.to_object(cfg)
    validate(config)
    return config


def to_yaml(cfg: ExperimentConfig) -> str:
    """The full resolved config as YAML (saved beside every run)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def to_dict(cfg: ExperimentConfig) -> dict:
    """Plain nested dict (for loggers and checkpoints)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
