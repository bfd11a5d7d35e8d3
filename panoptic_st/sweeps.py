"""W&B sweeps over `panoptic-st train` runs (files in `configs/sweeps/`, in W&B's sweep-config format).

Online (`WANDB_API_KEY` set, `WANDB_MODE` not offline/disabled) the sweep is created on W&B and an agent runs
its command, passing every sampled parameter as a `key=value` override. Offline, grid and random sweeps are
expanded here and their runs trained one after another in this process, with the overrides an agent passes:
no interpreter start-up per run, one-line config errors, the metric straight from `train()`, and a restarted
sweep reuses the runs that finished. Bayes search needs the W&B server.

`key=value` overrides given to `run_sweep` apply to every run: after the file's fixed ones (so they win over
them), before the sampled parameters, which they may not set.
"""

from __future__ import annotations

import itertools
import math
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from panoptic_st.config import CONFIG_DIR, ConfigError, load_config

# W&B's sweep-config schema (as in its `sweeps` package, which wandb installs only with the `sweeps` extra).
METHODS = ("grid", "random", "bayes")
LOCAL_METHODS = ("grid", "random")
GOALS = ("minimize", "maximize")
TOP_LEVEL_KEYS = {"program", "command", "method", "metric", "metrics", "parameters", "early_terminate",
                  "name", "description", "project", "entity", "run_cap", "controller", "scheduler", "job",
                  "image_uri", "apiVersion", "kind"}
ARG_MACROS = ("${args_no_hyphens}", "${args}")
# Config keys that the sweep sets per run, so that runs neither share an output folder nor a W&B run name.
PER_RUN_KEYS = {"output_dir": "each run has its own folder (offline: under --out)",
                "logger.name": "each run is named <sweep name>-NN offline, by W&B online"}
PARAMETER_SPEC_KEYS = {"value", "values", "probabilities", "distribution", "min", "max", "mu", "sigma", "q",
                       "a", "b", "parameters"}
RANGE = ("min", "max")
DISTRIBUTION_ARGS: dict[str, tuple[str, ...]] = {
    "constant": ("value",), "categorical": ("values",),
    "categorical_w_probabilities": ("values", "probabilities"), "int_uniform": RANGE, "uniform": RANGE,
    "q_uniform": RANGE, "log_uniform": RANGE, "log_uniform_values": RANGE, "q_log_uniform": RANGE,
    "q_log_uniform_values": RANGE, "inv_log_uniform": RANGE, "inv_log_uniform_values": RANGE, "normal": (),
    "q_normal": (), "log_normal": (), "q_log_normal": (), "beta": (), "q_beta": (),
}
SAMPLERS: dict[str, Callable[[random.Random, dict], Any]] = {
    "constant": lambda rng, spec: spec["value"],
    "categorical": lambda rng, spec: rng.choice(spec["values"]),
    "categorical_w_probabilities": lambda rng, spec: rng.choices(spec["values"], spec["probabilities"])[0],
    "int_uniform": lambda rng, spec: rng.randint(spec["min"], spec["max"]),
    "uniform": lambda rng, spec: rng.uniform(spec["min"], spec["max"]),
    "log_uniform": lambda rng, spec: math.exp(rng.uniform(spec["min"], spec["max"])),
    "log_uniform_values": lambda rng, spec: math.exp(rng.uniform(math.log(spec["min"]),
                                                                 math.log(spec["max"]))),
    "normal": lambda rng, spec: rng.gauss(spec.get("mu", 0.0), spec.get("sigma", 1.0)),
    "log_normal": lambda rng, spec: math.exp(rng.gauss(spec.get("mu", 0.0), spec.get("sigma", 1.0))),
}


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file: its W&B config and the `panoptic-st train` command it runs."""

    path: Path
    spec: dict
    experiment: str
    fixed: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.spec.get("name") or self.path.stem

    @property
    def method(self) -> str:
        return self.spec["method"]

    @property
    def parameters(self) -> dict[str, dict]:
        return self.spec["parameters"]

    @property
    def metric(self) -> str | None:
        return (self.spec.get("metric") or {}).get("name")

    @property
    def goal(self) -> str:
        return (self.spec.get("metric") or {}).get("goal", "minimize")


def override(key: str, value: Any) -> str:
    """A parameter value as the W&B agent's `${args_no_hyphens}` passes it."""
    return f"{key}={value}"


def resolve_sweep_path(name_or_path: str | Path) -> Path:
    """A sweep file given as a path or as a name under `configs/sweeps/`."""
    sweeps = CONFIG_DIR / "sweeps"
    for path in (Path(name_or_path), sweeps / name_or_path, sweeps / f"{name_or_path}.yaml"):
        if path.is_file():
            return path
    known = ", ".join(sorted(p.stem for p in sweeps.glob("*.yaml"))) or "none"
    raise ConfigError(f"sweep file '{name_or_path}' not found; sweeps in {sweeps}: {known}")


def load_sweep_file(path: str | Path) -> dict:
    """The sweep file as a mapping (read with plain YAML: `${...}` are W&B macros, not interpolations)."""
    try:
        spec = yaml.safe_load(resolve_sweep_path(path).read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: cannot parse YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: a sweep file must be a mapping (method, metric, parameters, command)")
    return spec


def validate_sweep(path: str | Path) -> Sweep:
    """Check a sweep file against W&B's sweep-config rules and every parameter against the config schema."""
    path = resolve_sweep_path(path)
    spec = load_sweep_file(path)
    try:
        _check_top_level(spec)
        _check_metric(spec)
        for key, param in spec["parameters"].items():
            _check_parameter(key, param)
        experiment, fixed = command_parts(spec.get("command"))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    sweep = Sweep(path, spec, experiment, fixed)
    _check_config_keys(sweep)
    return sweep


def _check_top_level(spec: dict) -> None:
    unknown = sorted(set(spec) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {', '.join(unknown)}; "
                          f"valid keys: {', '.join(sorted(TOP_LEVEL_KEYS))}")
    if spec.get("method") not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {spec.get('method')!r}")
    if not isinstance(spec.get("parameters"), dict) or not spec["parameters"]:
        raise ConfigError("'parameters' must map config keys to parameter specs")


def _check_metric(spec: dict) -> None:
    metric = spec.get("metric")
    if metric is None:
        if spec["method"] == "bayes":
            raise ConfigError("method 'bayes' needs a metric: {name: ..., goal: minimize|maximize}")
        return
    if not isinstance(metric, dict) or not isinstance(metric.get("name"), str):
        raise ConfigError("metric must be a mapping with a 'name' (a logged metric such as val/ap50)")
    if metric.get("goal", "minimize") not in GOALS:
        raise ConfigError(f"metric goal must be one of {', '.join(GOALS)}, got {metric.get('goal')!r}")


def distribution(param: dict) -> str:
    """The parameter's W&B distribution, inferred as W&B does when not given."""
    if "distribution" in param:
        return param["distribution"]
    if "value" in param:
        return "constant"
    if "values" in param:
        return "categorical_w_probabilities" if "probabilities" in param else "categorical"
    return "int_uniform" if all(isinstance(param.get(k), int) for k in RANGE) else "uniform"


def _check_parameter(key: str, param: Any) -> None:
    if not isinstance(param, dict):
        raise ConfigError(f"parameter '{key}' must be a mapping such as {{values: [...]}}, got {param!r}")
    if "parameters" in param:
        raise ConfigError(f"parameter '{key}': nested parameters are not supported; use dotted config keys")
    unknown = sorted(set(param) - PARAMETER_SPEC_KEYS)
    if unknown:
        raise ConfigError(f"parameter '{key}': unknown spec key(s) {', '.join(unknown)}")
    name = distribution(param)
    if name not in DISTRIBUTION_ARGS:
        raise ConfigError(f"parameter '{key}': unknown distribution {name!r}; "
                          f"one of {', '.join(DISTRIBUTION_ARGS)}")
    missing = [arg for arg in DISTRIBUTION_ARGS[name] if arg not in param]
    if missing:
        raise ConfigError(f"parameter '{key}': distribution {name} needs {' and '.join(missing)}")
    if "values" in param:
        _check_values(key, param)
    bounds = [param[k] for k in RANGE if k in param]
    if not all(isinstance(bound, (int, float)) for bound in bounds):
        raise ConfigError(f"parameter '{key}': min and max must be numbers, got {bounds}")
    if len(bounds) == 2 and not bounds[0] < bounds[1]:
        raise ConfigError(f"parameter '{key}': min must be below max, got {bounds[0]} and {bounds[1]}")


def _check_values(key: str, param: dict) -> None:
    values = param["values"]
    if not isinstance(values, list) or not values:
        raise ConfigError(f"parameter '{key}': values must be a non-empty list, got {values!r}")
    weights = param.get("probabilities")
    if weights is not None and (len(weights) != len(values) or not math.isclose(sum(weights), 1.0)):
        raise ConfigError(f"parameter '{key}': probabilities must be one per value and sum to 1")


def command_parts(command: Any) -> tuple[str, tuple[str, ...]]:
    """(experiment, fixed `key=value` overrides) of a sweep command
    `[..., train, EXPERIMENT, key=value ..., ${args_no_hyphens}]`."""
    usage = "command must be a list like [panoptic-st, train, EXPERIMENT, key=value ..., ${args_no_hyphens}]"
    if not isinstance(command, list) or "train" not in command or not any(m in command for m in ARG_MACROS):
        raise ConfigError(usage)
    rest = [str(part) for part in command[command.index("train") + 1:] if part not in ARG_MACROS]
    if not rest or "=" in rest[0]:
        raise ConfigError(usage)
    return rest[0], tuple(rest[1:])


def representative_values(param: dict) -> list[Any]:
    """Values that the parameter's config key must accept: the listed values, else the range ends."""
    if "values" in param:
        return list(param["values"])
    if "value" in param:
        return [param["value"]]
    if "min" in param and "max" in param:
        return [param["min"], param["max"]]
    return [float(param.get("mu", 0.0))]


def _check_config_keys(sweep: Sweep) -> None:
    try:
        load_config(sweep.experiment, list(sweep.fixed))
    except ConfigError as err:
        raise ConfigError(f"{sweep.path}: command: {err}") from None
    for key, param in sweep.parameters.items():
        for value in representative_values(param):
            try:
                load_config(sweep.experiment, [*sweep.fixed, override(key, value)])
            except ConfigError as err:
                raise ConfigError(f"{sweep.path}: parameter '{key}' = {value!r}: {err}") from None


def grid_points(parameters: dict[str, dict]) -> list[dict[str, Any]]:
    """Every combination of the parameters' values (cartesian product, first parameter varying slowest)."""
    choices = {}
    for key, param in parameters.items():
        if "values" not in param and "value" not in param:
            raise ConfigError(f"grid sweeps need 'values' or 'value' for every parameter; '{key}' has "
                              f"distribution {distribution(param)}")
        choices[key] = representative_values(param)
    return [dict(zip(choices, combo)) for combo in itertools.product(*choices.values())]


def random_points(parameters: dict[str, dict], count: int, seed: int = 0) -> list[dict[str, Any]]:
    """`count` samples of the parameters; the same seed gives the same samples."""
    unsupported = sorted({distribution(p) for p in parameters.values()} - SAMPLERS.keys())
    if unsupported:
        raise ConfigError(f"distribution(s) {', '.join(unsupported)} are only sampled by W&B (run online); "
                          f"offline: {', '.join(SAMPLERS)}")
    rng = random.Random(seed)
    return [{key: SAMPLERS[distribution(p)](rng, p) for key, p in parameters.items()} for _ in range(count)]


def expand(sweep: Sweep, count: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """The runs of a grid or random sweep (at most `count`), for running without the W&B server."""
    if sweep.method not in LOCAL_METHODS:
        raise ConfigError(f"{sweep.path}: method '{sweep.method}' needs the W&B server; set WANDB_API_KEY "
                          f"(and WANDB_MODE neither offline nor disabled) or use method grid or random")
    if sweep.method == "grid":
        return grid_points(sweep.parameters)[:count]
    count = count or sweep.spec.get("run_cap")
    if not count:
        raise ConfigError(f"{sweep.path}: a random sweep run offline needs --count N (or a run_cap)")
    return random_points(sweep.parameters, count, seed)


def wandb_online() -> bool:
    """Whether W&B can be reached: an API key in the environment and WANDB_MODE not offline or disabled."""
    return bool(os.environ.get("WANDB_API_KEY")) and os.environ.get("WANDB_MODE", "online") not in (
        "offline", "disabled", "dryrun")


def override_key(item: str) -> str:
    """The config key of a `key=value` override."""
    return item.removeprefix("--").split("=", 1)[0]


def check_overrides(sweep: Sweep, overrides: list[str]) -> None:
    """Refuse overrides that the config rejects, that set a swept parameter, or a key set per run."""
    try:
        load_config(sweep.experiment, [*sweep.fixed, *overrides])
    except ConfigError as err:
        raise ConfigError(f"{sweep.path}: {err}") from None
    for key in map(override_key, overrides):
        if key in sweep.parameters:
            raise ConfigError(f"override '{key}' is a parameter of sweep {sweep.path}; drop the override or "
                              "edit the sweep file")
        if key in PER_RUN_KEYS:
            raise ConfigError(f"override '{key}' is set per sweep run ({PER_RUN_KEYS[key]})")


def command_with_overrides(command: list, overrides: list[str]) -> list:
    """The sweep command with `overrides` placed after its fixed ones, before the agent's parameters."""
    at = next(i for i, part in enumerate(command) if part in ARG_MACROS)
    return [*command[:at], *overrides, *command[at:]]


def run_online(sweep: Sweep, count: int | None = None, project: str | None = None,
               overrides: list[str] | None = None) -> str:
    """Create the sweep on W&B (its command given `overrides`) and run an agent here; returns the sweep id."""
    import wandb

    overrides = list(overrides or [])
    logger = load_config(sweep.experiment, [*sweep.fixed, *overrides]).logger
    project = project or sweep.spec.get("project") or logger.project
    entity = sweep.spec.get("entity") or logger.entity
    spec = {**sweep.spec, "command": command_with_overrides(sweep.spec["command"], overrides)}
    sweep_id = wandb.sweep(spec, entity=entity, project=project)
    wandb.agent(sweep_id, entity=entity, project=project, count=count)
    return sweep_id


def point_overrides(point: dict[str, Any]) -> list[str]:
    """One run's parameter values as `key=value` overrides."""
    return [override(key, value) for key, value in point.items()]


def run_offline(sweep: Sweep, points: list[dict[str, Any]], out_dir: str | Path,
                overrides: list[str] | None = None) -> list[dict]:
    """Train the runs one after another into `out_dir/NN`, named `<sweep name>-NN`, each with `overrides` (a run
    that already finished is reused); prints one line per run with its parameters and the sweep metric, and
    returns [{overrides, name, output_dir, metric}]."""
    from panoptic_st.training import train_or_reuse

    runs = []
    for i, point in enumerate(points):
        parameters = point_overrides(point)
        run_dir, name = Path(out_dir) / f"{i:02d}", f"{sweep.name}-{i:02d}"
        cfg = load_config(sweep.experiment, [*sweep.fixed, *(overrides or []), *parameters,
                                             f"output_dir={run_dir}", f"logger.name={name}"])
        result = train_or_reuse(cfg)
        value = result["metrics"].get(sweep.metric) if sweep.metric else None
        runs.append({"overrides": parameters, "name": name, "output_dir": str(run_dir), "metric": value})
        print(f"[{i + 1}/{len(points)}] {' '.join(parameters)}  {sweep.metric or 'metric'}="
              f"{'n/a' if value is None else f'{value:.4f}'}  ({run_dir})", flush=True)
    _print_best(sweep, runs)
    return runs


def _print_best(sweep: Sweep, runs: list[dict]) -> None:
    scored = [run for run in runs if run["metric"] is not None]
    if not scored:
        return
    pick = max if sweep.goal == "maximize" else min
    best = pick(scored, key=lambda run: run["metric"])
    print(f"best ({sweep.goal} {sweep.metric}): {' '.join(best['overrides'])}  "
          f"{sweep.metric}={best['metric']:.4f}  ({best['output_dir']})")


def run_sweep(path: str | Path, count: int | None = None, project: str | None = None, seed: int = 0,
              out_dir: str | Path | None = None, dry_run: bool = False,
              overrides: list[str] | None = None) -> list[dict] | str:
    """Validate a sweep file and `key=value` overrides for every run, then run it on W&B (online) or here
    (offline); `dry_run` only lists the runs."""
    if count is not None and count < 1:
        raise ConfigError(f"--count must be at least 1, got {count}")
    sweep = validate_sweep(path)
    overrides = list(overrides or [])
    check_overrides(sweep, overrides)
    if wandb_online() and not dry_run:
        return run_online(sweep, count, project, overrides)
    points = expand(sweep, count, seed)
    if dry_run:
        runs = [{"overrides": point_overrides(point)} for point in points]
        for i, run in enumerate(runs):
            print(f"[{i + 1}/{len(runs)}] {' '.join(run['overrides'])}")
        return runs
    return run_offline(sweep, points, out_dir or Path("runs/sweeps") / sweep.path.stem, overrides)
