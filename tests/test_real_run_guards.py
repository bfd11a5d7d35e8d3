"""What a real run needs before it starts: encoder weights, dataset roots, valid Lightning Trainer arguments; and
what a cluster run relies on: a wall-time stop that can be resumed, the best checkpoint kept."""

import csv
from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides

from panoptic_st.cli import main
from panoptic_st.config import load_config
from panoptic_st.errors import RunStopped
from panoptic_st.training import build_trainer, train

TINY = tiny_overrides("data.batch_size=2")


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


@pytest.mark.parametrize("experiment, stage", [("synthia/deeplabv2_baseline", "semantic"),
                                               ("gta5/deeplabv3plus_baseline", "semantic"),
                                               ("synthia/instance_baseline", "instance")])
def test_a_real_config_without_encoder_weights_refuses_to_start(experiment, stage, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RESNET101_WEIGHTS", raising=False)
    assert main(["train", experiment, f"output_dir={tmp_path}/run"]) == 1
    err = one_line_error(capsys)
    assert f"{stage}.encoder_weights_file=FILE" in err and f"{stage}.allow_random_init=true" in err
    assert "torchvision" in err and "resnet101-" in err and "timm" in err
    assert not (tmp_path / "run").exists()


def test_a_wrong_weights_path_names_the_setting(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RESNET101_WEIGHTS", str(tmp_path / "resnet101.pth"))
    assert main(["train", "synthia/deeplabv2_baseline", f"output_dir={tmp_path}/run"]) == 1
    assert f"semantic.encoder_weights_file={tmp_path}/resnet101.pth: file not found" in one_line_error(capsys)


def test_a_missing_dataset_root_names_the_override(tmp_path, capsys):
    assert main(["train", "synthia/deeplabv2_baseline", "semantic.allow_random_init=true",
                 f"data.root={tmp_path}/nowhere", f"output_dir={tmp_path}/run"]) == 1
    err = one_line_error(capsys)
    assert f"{tmp_path}/nowhere/SYNTHIA/RAND_CITYSCAPES is not a folder" in err and "data.synthia_root=DIR" in err


def test_dataset_roots_come_from_the_environment(monkeypatch):
    assert load_config("gta5/deeplabv2_baseline").data.gta5_root == "/datasets/GTA5"
    monkeypatch.setenv("PANOPTIC_ST_DATA", "/scratch/me")
    cfg = load_config("gta5/deeplabv2_baseline")
    assert (cfg.data.gta5_root, cfg.data.cityscapes_root) == ("/scratch/me/GTA5", "/scratch/me/cityscapes")


def test_any_lightning_trainer_argument_is_accepted_and_typos_get_the_closest_name(capsys):
    cfg = load_config("toy/semantic_baseline", ["trainer.max_time=00:12:00:00", "trainer.sync_batchnorm=true",
                                                "trainer.fast_dev_run=true", "trainer.limit_val_batches=1"])
    assert cfg.trainer.lightning == {"max_time": "00:12:00:00", "sync_batchnorm": True, "fast_dev_run": True}
    assert main(["train", "toy/semantic_baseline", "trainer.max_tme=00:00:00:30"]) == 1
    assert "unknown config key 'trainer.max_tme'; closest valid keys: trainer.max_time" in one_line_error(capsys)
    assert main(["train", "toy/semantic_baseline", "trainer.callbacks=[]"]) == 1
    assert "'trainer.callbacks' is set by panoptic-st itself" in one_line_error(capsys)


def test_limit_val_batches_keeps_lightnings_int_and_float_meaning(tmp_path):
    for value, expected in (("1", 1), ("0.5", 0.5), ("1.0", 1.0)):
        cfg = load_config("toy/semantic_baseline", [f"trainer.limit_val_batches={value}"])
        limit = build_trainer(cfg, tmp_path).limit_val_batches
        assert limit == expected and type(limit) is type(expected)


def test_a_run_stopped_by_max_time_saves_its_state_and_resumes_with_a_new_time_budget(toy_root, tmp_path, capsys):
    common = ["toy/semantic_baseline", f"data.root={toy_root}", *TINY, f"output_dir={tmp_path}", "logger.kind=csv"]
    assert main(["train", *common, "trainer.max_steps=100000", "trainer.max_time=00:00:00:02"]) == 3
    err = capsys.readouterr().err
    assert "stopped: stopped at step" in err and "trainer.resume=true" in err
    assert not (tmp_path / "final.ckpt").exists()
    stopped_at = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    assert stopped_at > 0
    result = train(load_config(common[0], [*common[1:], f"trainer.max_steps={stopped_at + 1}",
                                           "trainer.max_time=00:00:00:02", "trainer.resume=true"]))
    assert torch.load(result["checkpoint"], weights_only=False)["global_step"] == stopped_at + 1


def test_fast_dev_run_saves_nothing(toy_root, tmp_path):
    with pytest.raises(RunStopped, match="fast_dev_run"):
        train(load_config("toy/semantic_baseline", [f"data.root={toy_root}", *TINY, f"output_dir={tmp_path}",
                                                    "trainer.fast_dev_run=true"]))
    assert not list(tmp_path.rglob("*.ckpt"))


def test_gradient_accumulation_takes_two_batches_per_step(toy_root, tmp_path):
    train(load_config("toy/semantic_baseline", [f"data.root={toy_root}", *TINY, f"output_dir={tmp_path}",
                                                "trainer.max_steps=2", "trainer.accumulate_grad_batches=2"]))
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    batches = state["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["processed"]
    assert (state["global_step"], batches) == (2, 4)


def test_deterministic_training_repeats_bit_for_bit(toy_root, tmp_path):
    weights = []
    try:
        for run in ("a", "b"):
            result = train(load_config("toy/semantic_baseline", [
                f"data.root={toy_root}", *TINY, f"output_dir={tmp_path / run}", "trainer.max_steps=2",
                "trainer.deterministic=true"]))
            assert torch.are_deterministic_algorithms_enabled()
            weights.append(torch.load(result["checkpoint"], weights_only=False)["state_dict"])
    finally:
        torch.use_deterministic_algorithms(False)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def validation_scores(run_dir: Path) -> list[float]:
    """Every logged val/miou19 of a run's CSV log."""
    with next(run_dir.glob("logs/**/metrics.csv")).open() as file:
        return [float(row["val/miou19"]) for row in csv.DictReader(file) if row.get("val/miou19")]


def test_the_best_checkpoint_by_the_validation_metric_is_kept_beside_last(toy_root, tmp_path):
    train(load_config("toy/semantic_baseline", [f"data.root={toy_root}", *TINY, f"output_dir={tmp_path}",
                                                "trainer.max_steps=3", "trainer.val_check_interval=1"]))
    scores = validation_scores(tmp_path)
    assert len(scores) == 3
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=False)
    assert best["global_step"] == 1 + scores.index(max(scores))
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
