"""W&B sweeps: every file in configs/sweeps validates, broken ones are refused with one line, grid and random
sweeps expand as W&B's would, W&B is used only when reachable, and an offline grid sweep trains each point."""

from pathlib import Path

import pytest
import torch
import wandb
import yaml
from conftest import tiny_overrides

from panoptic_st.cli import main
from panoptic_st.config import CONFIG_DIR, ConfigError, load_config
from panoptic_st.instance.pseudo_labels import METHODS as CLUSTERING_METHODS
from panoptic_st.sweeps import (
    command_parts,
    expand,
    grid_points,
    load_sweep_file,
    random_points,
    run_sweep,
    validate_sweep,
)
from panoptic_st.training import train

SWEEP_FILES = sorted((CONFIG_DIR / "sweeps").glob("*.yaml"))
STUDIES = ("consistency_weight", "source_mix", "clustering", "margin_decay")
BENCHMARKS = {"synthia": "synthia/instance_selftrain", "toy": "toy/instance_selftrain"}
TINY = tiny_overrides("data.check_on_setup=false", "trainer.max_steps=2", "torch_threads=1")


def write_sweep(path: Path, **changes) -> Path:
    """A valid grid sweep over the toy instance baseline, with `changes` applied to its top-level keys."""
    spec = {"method": "grid", "metric": {"name": "val/ap50", "goal": "maximize"},
            "parameters": {"instance.lr": {"values": [0.001, 0.0005]}},
            "command": ["panoptic-st", "train", "toy/instance_baseline", "${args_no_hyphens}"]}
    path.write_text(yaml.safe_dump({**spec, **changes}))
    return path


@pytest.fixture
def no_wandb_server(monkeypatch):
    """W&B disabled; creating a sweep on the server fails the test."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setattr(wandb, "sweep", lambda *args, **kwargs: pytest.fail("wandb.sweep called offline"))


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.stem)
def test_every_sweep_file_validates_and_logs_the_instance_metric_to_wandb(path):
    sweep = validate_sweep(path)
    assert "${args_no_hyphens}" in sweep.spec["command"]
    assert "logger.kind=wandb" in sweep.fixed
    assert (sweep.metric, sweep.goal) == ("val/ap50", "maximize")


@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_each_thesis_study_has_a_sweep_over_its_values(benchmark):
    specs = {study: load_sweep_file(CONFIG_DIR / "sweeps" / f"{benchmark}_{study}.yaml") for study in STUDIES}
    assert {command_parts(spec["command"])[0] for spec in specs.values()} == {BENCHMARKS[benchmark]}
    assert specs["consistency_weight"]["parameters"] == {
        "instance.consistency_weight": {"values": [0.0, 0.01, 0.1, 1.0]}}
    assert specs["source_mix"]["parameters"] == {"data.source_mix": {"values": [0.0, 0.25, 0.5, 0.75]}}
    assert set(specs["clustering"]["parameters"]["instance.clustering"]["values"]) == set(CLUSTERING_METHODS)
    assert set(specs["margin_decay"]["parameters"]) == {"instance.margin_epsilon", "instance.margin_decay"}


@pytest.mark.parametrize("changes, message", [
    ({"parameters": {"instance.consistency_wieght": {"values": [0.1]}}},
     "unknown config key 'instance.consistency_wieght'"),
    ({"parameters": {"instance.min_size": {"values": [10, "big"]}}}, "'instance.min_size' expects int"),
    ({"method": "hyperband"}, "method must be one of grid, random, bayes"),
    ({"paramters": {"instance.lr": {"values": [0.1]}}}, "unknown top-level key(s) paramters"),
    ({"parameters": {"instance.lr": {"vals": [0.1]}}}, "parameter 'instance.lr': unknown spec key(s) vals"),
    ({"parameters": {"instance.lr": {"values": []}}}, "values must be a non-empty list"),
    ({"parameters": {"instance.lr": {"distribution": "uniform", "min": 0.1}}},
     "distribution uniform needs max"),
    ({"parameters": {"instance.lr": {"distribution": "gaussian"}}}, "unknown distribution 'gaussian'"),
    ({"parameters": {"instance.lr": {"min": 0.1, "max": 0.01}}}, "min must be below max"),
    ({"parameters": {"instance.lr": {"min": "low", "max": 0.01}}}, "min and max must be numbers"),
    ({"parameters": {"instance.lr": 0.1}}, "parameter 'instance.lr' must be a mapping"),
    ({"parameters": {"instance.lr": {"values": [0.1, 0.2], "probabilities": [0.5, 0.6]}}},
     "probabilities must be one per value and sum to 1"),
    ({"method": "bayes", "metric": None}, "method 'bayes' needs a metric"),
    ({"command": ["panoptic-st", "train", "toy/instance_baseline"]}, "command must be a list like"),
    ({"command": ["panoptic-st", "train", "toy/no_such", "${args_no_hyphens}"]},
     "experiment 'toy/no_such' not found"),
])
def test_broken_sweep_is_refused_with_one_line_naming_the_problem(tmp_path, changes, message):
    path = write_sweep(tmp_path / "broken.yaml", **changes)
    with pytest.raises(ConfigError) as info:
        validate_sweep(path)
    text = str(info.value)
    assert message in text and str(path) in text
    assert "\n" not in text


def test_cli_reports_a_broken_sweep_as_one_error_line(tmp_path, capsys):
    path = write_sweep(tmp_path / "typo.yaml", parameters={"instance.consistency_wieght": {"values": [0.1]}})
    assert main(["sweep", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and err.count("\n") == 0
    assert "instance.consistency_weight (float)" in err  # the closest valid key


def test_grid_expansion_is_the_cartesian_product():
    points = grid_points({"a": {"values": [1, 2]}, "b": {"values": ["x", "y", "z"]}, "c": {"value": 0.5}})
    assert points == [{"a": a, "b": b, "c": 0.5} for a in (1, 2) for b in "xyz"]
    with pytest.raises(ConfigError, match="grid sweeps need 'values' or 'value'.*'d' has distribution"):
        grid_points({"d": {"min": 0.0, "max": 1.0}})


def test_dry_run_lists_the_grid_points_of_a_sweep_named_by_its_file(no_wandb_server, capsys):
    assert main(["sweep", "toy_clustering", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6
    assert lines[0] == "[1/6] instance.clustering=meanshift+ instance.margin_epsilon=0.0"
    assert lines[-1] == "[6/6] instance.clustering=agglomerative instance.margin_epsilon=0.5"


def test_random_expansion_is_seeded_and_samples_its_distributions():
    params = {"instance.margin_epsilon": {"distribution": "uniform", "min": 0.0, "max": 1.0},
              "instance.margin_decay": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2},
              "instance.clustering": {"values": ["meanshift+", "agglomerative"]},
              "instance.min_size": {"values": [10, 50], "probabilities": [0.9, 0.1]}}
    points = random_points(params, 200, seed=3)
    assert points == random_points(params, 200, seed=3)
    assert points != random_points(params, 200, seed=4)
    assert all(0.0 <= p["instance.margin_epsilon"] <= 1.0 for p in points)
    assert all(1e-4 <= p["instance.margin_decay"] <= 1e-2 for p in points)
    assert {p["instance.clustering"] for p in points} == {"meanshift+", "agglomerative"}
    below_geometric_middle = sum(p["instance.margin_decay"] < 1e-3 for p in points)
    assert 70 < below_geometric_middle < 130  # log-uniform: half of them; uniform would give about 18
    assert 160 < sum(p["instance.min_size"] == 10 for p in points) < 200
    with pytest.raises(ConfigError, match="q_uniform are only sampled by W&B"):
        random_points({"instance.lr": {"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.1}}, 2)


def test_random_sweep_offline_runs_count_or_run_cap_samples(tmp_path):
    sweep = validate_sweep(CONFIG_DIR / "sweeps" / "toy_margin_decay.yaml")
    assert len(expand(sweep)) == sweep.spec["run_cap"]
    assert expand(sweep, count=3) == expand(sweep)[:3]
    uncapped = validate_sweep(write_sweep(tmp_path / "random.yaml", method="random"))
    with pytest.raises(ConfigError, match="needs --count N"):
        expand(uncapped)


def test_with_an_api_key_the_sweep_is_created_on_wandb_and_an_agent_runs_it(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    calls = {}
    monkeypatch.setattr(wandb, "sweep", lambda spec, entity=None, project=None: calls.update(
        spec=spec, entity=entity, project=project) or "s1")
    monkeypatch.setattr(wandb, "agent", lambda sweep_id, entity=None, project=None, count=None: calls.update(
        agent=(sweep_id, entity, project, count)))
    path = write_sweep(tmp_path / "online.yaml", method="bayes")
    assert run_sweep(path, count=5) == "s1"
    assert calls["spec"] == yaml.safe_load(path.read_text())
    assert calls["project"] == "panoptic_st"  # the experiment's logger.project
    assert calls["agent"] == ("s1", None, "panoptic_st", 5)

    assert run_sweep(path, overrides=["data.root=/lab/data", "logger.entity=lab", "logger.project=study"]) == "s1"
    assert calls["spec"]["command"] == ["panoptic-st", "train", "toy/instance_baseline", "data.root=/lab/data",
                                        "logger.entity=lab", "logger.project=study", "${args_no_hyphens}"]
    assert (calls["entity"], calls["project"]) == ("lab", "study")
    assert calls["agent"] == ("s1", "lab", "study", None)


OFFLINE_ENVIRONMENTS = {"no key": {}, "disabled": {"WANDB_MODE": "disabled"},
                        "key but offline": {"WANDB_API_KEY": "0" * 40, "WANDB_MODE": "offline"}}


@pytest.mark.parametrize("env", OFFLINE_ENVIRONMENTS.values(), ids=OFFLINE_ENVIRONMENTS.keys())
def test_bayes_sweep_without_the_wandb_server_is_a_clear_error(env, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(wandb, "sweep", lambda *args, **kwargs: pytest.fail("wandb.sweep called offline"))
    assert main(["sweep", str(write_sweep(tmp_path / "bayes.yaml", method="bayes"))]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "method 'bayes' needs the W&B server" in err


@pytest.fixture
def restore_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def test_offline_grid_sweep_trains_every_point_with_its_overrides(toy_root, tmp_path, no_wandb_server,
                                                                  restore_threads, monkeypatch, capsys):
    metric = load_sweep_file(CONFIG_DIR / "sweeps" / "toy_consistency_weight.yaml")["metric"]
    command = ["panoptic-st", "train", "toy/instance_baseline", f"data.root={toy_root}", *TINY,
               "logger.kind=wandb", "${args_no_hyphens}"]
    path = write_sweep(tmp_path / "two.yaml", metric=metric, command=command)
    inits = []
    init = wandb.init
    monkeypatch.setattr(wandb, "init", lambda *args, **kwargs: inits.append(kwargs) or init(*args, **kwargs))
    out = tmp_path / "runs"

    assert main(["sweep", str(path), "--out", str(out)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert [line.split("  ")[0] for line in lines] == ["[1/2] instance.lr=0.001", "[2/2] instance.lr=0.0005"]
    assert all(" val/ap50=0." in line for line in lines)  # the metric the shipped sweeps optimise is logged
    for run, lr in zip(("00", "01"), (0.001, 0.0005)):
        saved = load_config(out / run / "config.yaml")
        assert (saved.instance.lr, saved.logger.kind, saved.trainer.max_steps) == (lr, "wandb", 2)
        assert saved.logger.name == f"two-{run}"
        assert (out / run / "final.ckpt").is_file()
    assert [init["name"] for init in inits] == ["two-00", "two-01"]  # one W&B run per point, each named

    assert main(["sweep", str(path), "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("reusing the finished run") == 2  # a restarted sweep trains no point


def test_shipped_sweep_runs_with_command_line_overrides_for_every_run(toy_root, tmp_path, no_wandb_server,
                                                                     restore_threads):
    semantic = load_config("toy/semantic_baseline", [f"data.root={toy_root}", *TINY, "trainer.max_steps=1",
                                                     f"output_dir={tmp_path / 'semantic'}"])
    checkpoint = train(semantic)["checkpoint"]
    out = tmp_path / "sweep"
    assert main(["sweep", "toy_source_mix", f"data.root={toy_root}", *TINY, "instance.init_checkpoint=null",
                 f"instance.semantic_checkpoint={checkpoint}", "trainer.limit_val_batches=0", "--count", "1",
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["00"]
    saved = load_config(out / "00" / "config.yaml")
    assert saved.data.root == str(toy_root)  # the command-line override
    assert saved.data.source_mix == 0.0  # the first grid point
    assert (saved.trainer.max_steps, saved.instance.semantic_checkpoint) == (2, checkpoint)
    assert saved.logger.name == "toy_source_mix-00"
    assert (out / "00" / "final.ckpt").is_file()


@pytest.mark.parametrize("override, message", [
    ("data.source_mix=0.5", "override 'data.source_mix' is a parameter of sweep"),
    ("output_dir=/tmp/one", "override 'output_dir' is set per sweep run"),
    ("logger.name=same", "override 'logger.name' is set per sweep run"),
    ("data.rot=/data", "unknown config key 'data.rot'"),
])
def test_an_override_the_sweep_cannot_take_is_one_error_line(override, message, no_wandb_server, capsys):
    assert main(["sweep", "toy_source_mix", override, "--dry-run"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and err.count("\n") == 0 and message in err


def test_sweep_help_names_its_options(capsys):
    with pytest.raises(SystemExit) as info:
        main(["sweep", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: panoptic-st sweep" in out
    for option in ("--count", "--project", "--seed", "--out", "--dry-run"):
        assert option in out
