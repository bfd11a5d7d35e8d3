"""W&B for a lab: entity, group, tags, name and log_model reach the W&B run, a killed and resumed run continues
the same W&B run (offline here), and a bad `logger.kind` is refused with one line."""

import shutil
from pathlib import Path

import pytest
import wandb
from conftest import tiny_overrides

from panoptic_st.cli import main
from panoptic_st.config import load_config
from panoptic_st.loggers import RUN_ID_FILE, wandb_offline, wandb_run_id, wandb_run_name
from panoptic_st.training import train

TINY = tiny_overrides("data.batch_size=2", "torch_threads=1", "trainer.checkpoint_every_n_steps=1")


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch) -> list:
    """W&B offline (no API key, no sweep agent), its files under tmp_path; returns the runs `wandb.init` starts."""
    for key in ("WANDB_API_KEY", "WANDB_RUN_ID", "WANDB_SWEEP_ID", "WANDB_MODE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    runs = []
    init = wandb.init
    monkeypatch.setattr(wandb, "init", lambda *args, **kwargs: runs.append(init(*args, **kwargs)) or runs[-1])
    return runs


def semantic_baseline(toy_root: Path, out: Path, *overrides: str):
    """The toy semantic baseline for a few steps, logged to W&B."""
    return load_config("toy/semantic_baseline", [f"data.root={toy_root}", *TINY, "trainer.max_steps=2",
                                                 f"output_dir={out}", "logger.kind=wandb", *overrides])


def offline_run_ids(out: Path) -> list[str]:
    """The run ids of the offline W&B run folders (`offline-run-<time>-<id>`) in a run's output folder, in order."""
    return [path.name.rsplit("-", 1)[1] for path in sorted((out / "wandb").glob("offline-run-*"))]


def test_a_killed_and_resumed_offline_run_keeps_its_wandb_run_id(toy_root, tmp_path, offline_wandb,
                                                                  kill_training_at):
    out = tmp_path / "run"
    with kill_training_at(2):
        train(semantic_baseline(toy_root, out, "trainer.max_steps=4"))
    wandb.finish(exit_code=1)  # what the killed process leaves behind: a crashed run
    first_id = (out / RUN_ID_FILE).read_text()
    assert (out / "checkpoints" / "last.ckpt").is_file()

    result = train(semantic_baseline(toy_root, out, "trainer.max_steps=4", "trainer.resume=true"))
    assert result["metrics"]["val/miou19"] >= 0.0
    assert [run.id for run in offline_wandb] == [first_id, first_id]
    assert offline_run_ids(out) == [first_id, first_id]
    assert (out / RUN_ID_FILE).read_text() == first_id

    shutil.rmtree(out / "checkpoints")  # a fresh run in the same folder starts a new W&B run
    train(semantic_baseline(toy_root, out, "trainer.max_steps=1"))
    new_id = (out / RUN_ID_FILE).read_text()
    assert new_id != first_id and offline_wandb[-1].id == new_id
    assert sorted(offline_run_ids(out)) == sorted([first_id, first_id, new_id])


def test_entity_group_tags_name_and_log_model_reach_the_wandb_run(toy_root, tmp_path, offline_wandb):
    out = tmp_path / "run"
    train(semantic_baseline(toy_root, out, "logger.entity=lab-entity", "logger.group=ablation-group",
                            "logger.tags=[tag-one,tag-two]", "logger.name=lab-run-name", "logger.log_model=true",
                            "logger.project=lab-project"))
    (run,) = offline_wandb
    assert (run.entity, run.project, run.group, run.name) == (
        "lab-entity", "lab-project", "ablation-group", "lab-run-name")
    assert tuple(run.tags) == ("tag-one", "tag-two")
    assert run.config["logger"]["group"] == "ablation-group"
    (record,) = (out / "wandb").glob(f"offline-run-*-{run.id}/run-{run.id}.wandb")
    wandb.teardown()  # the W&B service has written the whole run
    written = record.read_bytes()  # what `wandb sync` uploads
    for value in (b"lab-entity", b"lab-project", b"ablation-group", b"tag-one", b"tag-two", b"lab-run-name",
                  f"model-{run.id}".encode()):  # log_model: the checkpoint artifact
        assert value in written, value


def test_run_name_defaults_to_the_experiment_and_sweep_agent_runs_are_named_by_wandb(offline_wandb, monkeypatch):
    cfg = load_config("toy/semantic_baseline")
    named = load_config("toy/semantic_baseline", ["logger.name=mine"])
    assert (wandb_run_name(cfg), wandb_run_name(named), wandb_offline()) == ("toy_semantic_baseline", "mine", True)
    monkeypatch.setenv("WANDB_SWEEP_ID", "abc")  # set by `wandb agent` for the runs it starts
    assert (wandb_run_name(cfg), wandb_run_name(named), wandb_offline()) == (None, "mine", False)


def test_a_sweep_agent_run_keeps_the_agents_run_id_and_a_fresh_run_gets_a_new_one(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_RUN_ID", raising=False)
    (tmp_path / RUN_ID_FILE).write_text("old12345")
    resume_without_checkpoint = load_config("toy/semantic_baseline", ["trainer.resume=true"])
    fresh = wandb_run_id(resume_without_checkpoint, tmp_path)  # nothing to resume: a new W&B run
    assert fresh != "old12345" and (tmp_path / RUN_ID_FILE).read_text() == fresh
    monkeypatch.setenv("WANDB_RUN_ID", "agent123")  # `wandb agent` assigns the run id
    assert wandb_run_id(resume_without_checkpoint, tmp_path) == "agent123"
    assert (tmp_path / RUN_ID_FILE).read_text() == "agent123"


def test_an_unknown_logger_kind_is_one_error_line_naming_the_kinds(toy_root, tmp_path, capsys):
    code = main(["train", "toy/semantic_baseline", f"data.root={toy_root}", *TINY, "trainer.max_steps=1",
                 f"output_dir={tmp_path}", "logger.kind=wandbb"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err == "error: config key 'logger.kind' must be one of csv, tensorboard, wandb, got 'wandbb' (did you mean wandb?)"
    assert not (tmp_path / "logs").exists() and not (tmp_path / "final.ckpt").exists()
