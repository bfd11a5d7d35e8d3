"""Reading and checking configuration input: experiment lookup, YAML `defaults:` chains, `key=value` overrides,
one-line errors that name the key and the closest valid keys, and the value checks the schema's types cannot
express. The schema itself (the dataclasses) and `load_config` are in `panoptic_st.config`."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

if TYPE_CHECKING:
    from panoptic_st.config import ExperimentConfig

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class ConfigError(ValueError):
    """A user-caused configuration error, with a one-line message."""


# Trainer arguments that `training.build_trainer` sets itself (objects, or settings with their own key above).
MANAGED_TRAINER_ARGUMENTS = {"self", "logger", "callbacks", "plugins", "default_root_dir", "use_distributed_sampler",
                             "enable_progress_bar", "enable_checkpointing", "model_registry"}



@functools.cache
def schema_keys(schema: type, prefix: str = "") -> dict[str, str]:
    """Every dotted key of a dataclass schema with its type name."""
    keys: dict[str, str] = {}
    for f in dataclasses.fields(schema):
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(f.type) or (isinstance(f.default_factory, type)
                                                and dataclasses.is_dataclass(f.default_factory)):
            keys.update(schema_keys(f.default_factory, f"{name}."))
        else:
            keys[name] = str(f.type).replace("typing.", "")
    return keys


def _closest(key: str, schema: type) -> str:
    keys = schema_keys(schema)
    matches = difflib.get_close_matches(key, keys, n=3, cutoff=0.5)
    if not matches:
        leaf = key.rsplit(".", 1)[-1]
        matches = [k for k in keys if k.rsplit(".", 1)[-1] == leaf][:3]
    if not matches:
        return "valid top-level keys: " + ", ".join(f.name for f in dataclasses.fields(schema))
    return "closest valid keys: " + ", ".join(f"{m} ({keys[m]})" for m in matches)


def explain(err: OmegaConfBaseException, origin: str, schema: type) -> ConfigError:
    """A one-line `ConfigError` for an OmegaConf error: the key, what it expects and the closest valid keys."""
    key = str(getattr(err, "full_key", "") or getattr(err, "key", "") or "?")
    if isinstance(err, (ConfigKeyError, ConfigAttributeError)):
        return ConfigError(f"{origin}: unknown config key '{key}'; {_closest(key, schema)}")
    if isinstance(err, ValidationError):
        expected = schema_keys(schema).get(re.sub(r"\[\d+\]$", "", key), "?")
        value = getattr(err, "value", None)
        return ConfigError(
            f"{origin}: config key '{key}' expects {expected}, got {value!r}; {_closest(key, schema)}"
        )
    return ConfigError(f"{origin}: {str(err).splitlines()[0]}")


def route_lightning_arguments(part: DictConfig, trainer_fields: set[str]) -> DictConfig:
    """Move `trainer.<key>` entries that are not `trainer_fields` (TrainerConfig's) into `trainer.lightning`."""
    trainer = part.get("trainer") if isinstance(part, DictConfig) else None
    if not isinstance(trainer, DictConfig):
        return part
    for key in [k for k in trainer if k not in trainer_fields]:
        if "lightning" not in trainer:
            trainer.lightning = {}
        trainer.lightning[key] = trainer.pop(key)
    return part


def lightning_trainer_arguments() -> set[str]:
    """The `lightning.Trainer` arguments a config may set (all but the ones the framework sets itself)."""
    import inspect

    import lightning

    return set(inspect.signature(lightning.Trainer.__init__).parameters) - MANAGED_TRAINER_ARGUMENTS


def check_lightning_arguments(trainer: DictConfig, schema: type) -> None:
    """Every `trainer.lightning` key must be a Trainer argument (Lightning is imported only when there are any)."""
    if not trainer.lightning:
        return
    valid = lightning_trainer_arguments()
    for key in trainer.lightning:
        if key in valid:
            continue
        if key in MANAGED_TRAINER_ARGUMENTS:
            raise ConfigError(f"'trainer.{key}' is set by panoptic-st itself and cannot be configured")
        declared = {k.removeprefix("trainer."): t for k, t in schema_keys(schema).items() if k.startswith("trainer.")}
        known = {**{name: "Lightning Trainer argument" for name in valid}, **declared}
        close = difflib.get_close_matches(str(key), known, n=3, cutoff=0.5)
        hint = ", ".join(f"trainer.{m} ({known[m]})" for m in close) or "see `lightning.Trainer` for the arguments"
        raise ConfigError(f"unknown config key 'trainer.{key}'; closest valid keys: {hint}")


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


def load_yaml_chain(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[Path, DictConfig]]:
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
        chain.extend(load_yaml_chain(ref_path, seen + (path,)))
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


def _require_choice(value: Any, choices: Sequence[str], key: str) -> None:
    """Refuse a value outside `choices` in one line naming the key, the choices and the closest one."""
    close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]}?)" if close else ""
    if value not in choices:
        raise ConfigError(f"config key '{key}' must be one of {', '.join(choices)}, got {value!r}{hint}")


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
    _require_choice(d.target, DATASET_NAMES, "data.target")
    _require(bool(d.sources) and all(s in DATASET_NAMES for s in d.sources), "data.sources",
             f"a non-empty list of {', '.join(DATASET_NAMES)}", d.sources)
    for key in ("crop", "target_size"):
        _require(_is_pair(getattr(d, key), 1), f"data.{key}", "[height, width], both at least 1", getattr(d, key))
    for key in ("source_scale", "target_scale"):
        value = getattr(d, key)
        _require(_is_pair(value, 1e-6) and value[0] <= value[1], f"data.{key}", "[low, high] with 0 < low <= high",
                 value)
    _require_choice(cfg.stage, STAGES, "stage")
    _require_choice(cfg.semantic.arch, SEMANTIC_ARCHS, "semantic.arch")
    _require_choice(cfg.semantic.optimizer, OPTIMIZERS, "semantic.optimizer")
    for branch in ("semantic", "instance"):
        part = getattr(cfg, branch)
        _require(math.isfinite(part.lr) and part.lr > 0, f"{branch}.lr", "a finite number > 0", part.lr)
        _require_choice(part.mode, MODES, f"{branch}.mode")
    i = cfg.instance
    _require(math.isfinite(i.spatial_scale) and i.spatial_scale > 0, "instance.spatial_scale", "a finite number > 0",
             i.spatial_scale)
    _require(i.spatial_bandwidth is None or i.spatial_bandwidth > 0, "instance.spatial_bandwidth", "> 0 (or null)",
             i.spatial_bandwidth)
    _require(math.isfinite(i.offset_weight) and i.offset_weight >= 0, "instance.offset_weight", "a finite number >= 0",
             i.offset_weight)
    _require(i.offset_weight == 0 or i.spatial_embedding, "instance.offset_weight",
             "0 unless instance.spatial_embedding=true (the term acts on the spatial part)", i.offset_weight)
    _require(0.0 <= i.paste_neighbours <= 1.0, "instance.paste_neighbours", "a probability in [0, 1]",
             i.paste_neighbours)
    _require_choice(cfg.logger.kind, LOGGER_KINDS, "logger.kind")
    t = cfg.trainer
    _require(t.max_steps >= 1, "trainer.max_steps", "at least 1 (a run trains a fixed number of steps)", t.max_steps)
    _require_choice(t.on_nonfinite, NONFINITE_ACTIONS, "trainer.on_nonfinite")
    _require(not (t.resume and t.overwrite), "trainer.overwrite",
             "false when trainer.resume=true (resume continues the run, overwrite starts it over)", t.overwrite)


