"""Typed configuration: dataclass schema, YAML experiment files and `key=value` overrides.

An experiment file may list `defaults:` (YAML files relative to itself, to `configs/` or to `configs/experiments/`)
merged before it.
Every value is validated against the schema; a typo or a wrong type fails with one line that names the key,
the expected type and the closest valid keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


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
    # and every pixel takes its nearest mode (prediction and validation cluster every pixel). 512 on the toy keeps
    # pseudo-labelling under 25% of a step with unchanged true/false positives; None clusters every pixel.
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


# Trainer arguments that `training.build_trainer` sets itself (objects, or settings with their own key above).
MANAGED_TRAINER_ARGUMENTS = {"self", "logger", "callbacks", "plugins", "default_root_dir", "use_distributed_sampler",
                             "enable_progress_bar", "enable_checkpointing", "model_registry"}


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


class ConfigError(ValueError):
    """A user-caused configuration error, with a one-line message."""


def _schema_keys(schema: type = ExperimentConfig, prefix: str = "") -> dict[str, str]:
    """Every dotted key of the schema with its type name."""
    keys: dict[str, str] = {}
    for f in dataclasses.fields(schema):
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(f.type) or (isinstance(f.default_factory, type)
                                                and dataclasses.is_dataclass(f.default_factory)):
            keys.update(_schema_keys(f.default_factory, f"{name}."))
        else:
            keys[name] = str(f.type).replace("typing.", "")
    return keys


SCHEMA_KEYS = _schema_keys()


def _closest(key: str) -> str:
    matches = difflib.get_close_matches(key, SCHEMA_KEYS, n=3, cutoff=0.5)
    if not matches:
        leaf = key.rsplit(".", 1)[-1]
        matches = [k for k in SCHEMA_KEYS if k.rsplit(".", 1)[-1] == leaf][:3]
    if not matches:
        return "valid top-level keys: " + ", ".join(f.name for f in dataclasses.fields(ExperimentConfig))
    return "closest valid keys: " + ", ".join(f"{m} ({SCHEMA_KEYS[m]})" for m in matches)


def _explain(err: OmegaConfBaseException, origin: str) -> ConfigError:
    key = str(getattr(err, "full_key", "") or getattr(err, "key", "") or "?")
    if isinstance(err, (ConfigKeyError, ConfigAttributeError)):
        return ConfigError(f"{origin}: unknown config key '{key}'; {_closest(key)}")
    if isinstance(err, ValidationError):
        expected = SCHEMA_KEYS.get(re.sub(r"\[\d+\]$", "", key), "?")
        value = getattr(err, "value", None)
        return ConfigError(
            f"{origin}: config key '{key}' expects {expected}, got {value!r}; {_closest(key)}"
        )
    return ConfigError(f"{origin}: {str(err).splitlines()[0]}")


def _route_lightning_arguments(part: DictConfig) -> DictConfig:
    """Move `trainer.<key>` entries that are not TrainerConfig fields into `trainer.lightning`."""
    trainer = part.get("trainer") if isinstance(part, DictConfig) else None
    if not isinstance(trainer, DictConfig):
        return part
    fields = {f.name for f in dataclasses.fields(TrainerConfig)}
    for key in [k for k in trainer if k not in fields]:
        if "lightning" not in trainer:
            trainer.lightning = {}
        trainer.lightning[key] = trainer.pop(key)
    return part


def lightning_trainer_arguments() -> set[str]:
    """The `lightning.Trainer` arguments a config may set (all but the ones the framework sets itself)."""
    import inspect

    import lightning

    return set(inspect.signature(lightning.Trainer.__init__).parameters) - MANAGED_TRAINER_ARGUMENTS


def _check_lightning_arguments(trainer: DictConfig) -> None:
    """Every `trainer.lightning` key must be a Trainer argument (Lightning is imported only when there are any)."""
    if not trainer.lightning:
        return
    valid = lightning_trainer_arguments()
    for key in trainer.lightning:
        if key in valid:
            continue
        if key in MANAGED_TRAINER_ARGUMENTS:
            raise ConfigError(f"'trainer.{key}' is set by panoptic-st itself and cannot be configured")
        declared = {k.removeprefix("trainer."): t for k, t in SCHEMA_KEYS.items() if k.startswith("trainer.")}
        known = {**{name: "Lightning Trainer argument" for name in valid}, **declared}
        close = difflib.get_close_matches(str(key), known, n=3, cutoff=0.5)
        hint = ", ".join(f"trainer.{m} ({known[m]})" for m in close) or "see `lightning.Trainer` for the arguments"
        raise ConfigError(f"unknown config key 'trainer.{key}'; closest valid keys: {hint}")


def _merge(base: DictConfig, other: Any, origin: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, _route_lightning_arguments(other))
    except OmegaConfBaseException as err:
        raise _explain(err, origin) from None


def resolve_experiment_path(name_or_path: str) -> Path:
    """An experiment file given as a path or as a name under `configs/experiments/`."""
    candidates = [Path(name_or_path), CONFIG_DIR / "experiments" / name_or_path,
                  CONFIG_DIR / "experiments" / f"{name_or_path}.yaml", CONFIG_DIR / name_or_path]
    for path in candidates:
        if path.is_file():
            return path
    root = CONFIG_DIR / "experiments"
    known = sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))
    close = difflib.get_close_matches(str(name_or_path).removesuffix(".yaml"), known, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}?" if close else f"{len(known)} experiments under {root}"
    raise ConfigError(f"experiment '{name_or_path}' not found; {hint}")


def _load_yaml_chain(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[Path, DictConfig]]:
    """The YAML file and its `defaults:` (recursively), in merge order."""
    if path in seen:
        raise ConfigError(f"{path}: circular defaults")
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # noqa: BLE001 - YAML parse errors come in several types
        raise ConfigError(f"{path}: cannot parse YAML ({str(err).splitlines()[0]})") from None
    chain: list[tuple[Path, DictConfig]] = []
    for ref in cfg.pop("defaults", []) or []:
        options = [path.parent / ref, CONFIG_DIR / ref, CONFIG_DIR / "experiments" / ref]
        ref_path = next((p for p in options if p.is_file()), None)
        if ref_path is None:
            raise ConfigError(f"{path}: defaults entry '{ref}' not found (looked in {path.parent}, {CONFIG_DIR})")
        chain.extend(_load_yaml_chain(ref_path, seen + (path,)))
    chain.append((path, cfg))
    return chain


def parse_overrides(overrides: list[str]) -> DictConfig:
    """`key=value` strings (the form W&B sweep agents pass; a leading `--` is accepted) as a config."""
    cleaned = []
    for item in overrides:
        item = item.removeprefix("--")
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        cleaned.append(item)
    try:
        return OmegaConf.from_dotlist(cleaned)
    except OmegaConfBaseException as err:
        raise ConfigError(f"overrides: {str(err).splitlines()[0]}") from None


DATASET_NAMES = ("synthia", "gta5", "mixed", "cityscapes")
SEMANTIC_ARCHS = ("deeplabv2", "deeplabv3", "deeplabv3plus")
OPTIMIZERS = ("sgd", "adamw")
STAGES = ("semantic", "instance")
MODES = ("baseline", "self_train")
LOGGER_KINDS = ("csv", "tensorboard", "wandb")
NONFINITE_ACTIONS = ("stop", "skip")


def _require(ok: bool, key: str, rule: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"config key '{key}' must be {rule}, got {value!r}")


def _is_pair(value: Any, low: float) -> bool:
    return (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, (int, float)) and math.isfinite(v) and v >= low for v in value))


def validate(cfg: ExperimentConfig) -> None:
    """Value checks the schema's types cannot express; the first failure raises one line naming the key."""
    d = cfg.data
    for key in ("batch_size", "target_batch_size", "val_batch_size"):
        _require(getattr(d, key) >= 1, f"data.{key}", "at least 1", getattr(d, key))
    _require(d.num_workers >= 0, "data.num_workers", "at least 0", d.num_workers)
    _require(d.max_items is None or d.max_items >= 1, "data.max_items", "at least 1 (or null)", d.max_items)
    _require(d.source_mix is None or 0.0 <= d.source_mix <= 1.0, "data.source_mix", "in [0, 1] (or null)",
             d.source_mix)
    _require(d.target in DATASET_NAMES, "data.target", f"one of {', '.join(DATASET_NAMES)}", d.target)
    _require(bool(d.sources) and all(s in DATASET_NAMES for s in d.sources), "data.sources",
             f"a non-empty list of {', '.join(DATASET_NAMES)}", d.sources)
    for key in ("crop", "target_size"):
        _require(_is_pair(getattr(d, key), 1), f"data.{key}", "[height, width], both at least 1", getattr(d, key))
    for key in ("source_scale", "target_scale"):
        value = getattr(d, key)
        _require(_is_pair(value, 1e-6) and value[0] <= value[1], f"data.{key}", "[low, high] with 0 < low <= high",
                 value)
    _require(cfg.stage in STAGES, "stage", f"one of {', '.join(STAGES)}", cfg.stage)
    _require(cfg.semantic.arch in SEMANTIC_ARCHS, "semantic.arch", f"one of {', '.join(SEMANTIC_ARCHS)}",
             cfg.semantic.arch)
    _require(cfg.semantic.optimizer in OPTIMIZERS, "semantic.optimizer", f"one of {', '.join(OPTIMIZERS)}",
             cfg.semantic.optimizer)
    for branch in ("semantic", "instance"):
        part = getattr(cfg, branch)
        _require(math.isfinite(part.lr) and part.lr > 0, f"{branch}.lr", "a finite number > 0", part.lr)
        _require(part.mode in MODES, f"{branch}.mode", f"one of {', '.join(MODES)}", part.mode)
    _require(cfg.logger.kind in LOGGER_KINDS, "logger.kind", f"one of {', '.join(LOGGER_KINDS)}", cfg.logger.kind)
    t = cfg.trainer
    _require(t.max_steps >= 1, "trainer.max_steps", "at least 1 (a run trains a fixed number of steps)", t.max_steps)
    _require(t.on_nonfinite in NONFINITE_ACTIONS, "trainer.on_nonfinite", f"one of {', '.join(NONFINITE_ACTIONS)}",
             t.on_nonfinite)
    _require(not (t.resume and t.overwrite), "trainer.overwrite",
             "false when trainer.resume=true (resume continues the run, overwrite starts it over)", t.overwrite)


def load_config(experiment: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Schema defaults <- experiment YAML chain <- overrides, validated and resolved."""
    cfg = OmegaConf.structured(ExperimentConfig)
    if experiment is not None:
        for path, part in _load_yaml_chain(resolve_experiment_path(str(experiment))):
            cfg = _merge(cfg, part, str(path))
    if overrides:
        cfg = _merge(cfg, parse_overrides(overrides), "override")
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise _explain(err, "interpolation") from None
    _check_lightning_arguments(cfg.trainer)
    config = OmegaConf.to_object(cfg)
    validate(config)
    return config


def to_yaml(cfg: ExperimentConfig) -> str:
    """The full resolved config as YAML (saved beside every run)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def to_dict(cfg: ExperimentConfig) -> dict:
    """Plain nested dict (for loggers and checkpoints)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
