"""Stages run through `train()` on tiny data: checkpoints chain, BN stays frozen, the teacher is saved."""

import pytest
import torch

from panoptic_st.checkpoints import CheckpointError, load_checkpoint_state
from panoptic_st.config import load_config
from panoptic_st.training import evaluate, train

TINY = ["data.num_workers=0", "data.crop=[64,128]", "data.target_size=[64,128]", "data.batch_size=4",
        "data.val_batch_size=6", "trainer.progress_bar=false", "trainer.log_every_n_steps=1"]


@pytest.fixture(scope="module")
def semantic_runs(toy_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    common = [f"data.root={toy_root}", *TINY]
    base = train(load_config("toy/semantic_baseline", [*common, "trainer.max_steps=3", f"output_dir={out}/b"]))
    self_train = train(load_config("toy/semantic_selftrain", [
        *common, "trainer.max_steps=2", f"output_dir={out}/s", f"semantic.init_checkpoint={base['checkpoint']}"]))
    return base, self_train, common


def test_baseline_writes_checkpoint_and_metrics(semantic_runs):
    base, _, _ = semantic_runs
    for key in ("val/miou19", "val/miou16", "val/miou13", "train/loss_source"):
        assert key in base["metrics"]
    assert 0.0 <= base["metrics"]["val/miou19"] <= 1.0
    state = load_checkpoint_state(base["checkpoint"])
    assert state["hyper_parameters"]["branch"] == "semantic"


def test_self_training_keeps_batchnorm_frozen_and_saves_teacher_and_prior(semantic_runs):
    base, self_train, _ = semantic_runs
    before = load_checkpoint_state(base["checkpoint"])["state_dict"]
    after = load_checkpoint_state(self_train["checkpoint"])["state_dict"]
    bn_keys = [k for k in before if k.startswith("net.") and k.endswith("running_mean")]
    assert bn_keys
    for key in bn_keys:
        assert torch.equal(before[key], after[key]), key
        weight = key.replace("running_mean", "weight")
        assert torch.equal(before[weight], after[weight]), weight
    assert any(k.startswith("teacher.") for k in after) and bool(after["prior.initialised"])
    assert "pseudo/coverage_all" in self_train["metrics"] and "train/loss_target" in self_train["metrics"]


def test_evaluate_with_adabn_changes_only_batchnorm_statistics(semantic_runs):
    base, _, common = semantic_runs
    cfg = load_config("toy/semantic_baseline", [*common, f"output_dir={base['checkpoint']}.eval"])
    plain = evaluate(cfg, base["checkpoint"])
    adapted = evaluate(cfg, base["checkpoint"], adabn_first=True)
    assert plain["metrics"].keys() == adapted["metrics"].keys()
    assert plain["metrics"]["val/miou19"] != adapted["metrics"]["val/miou19"]


def test_checkpoint_of_another_architecture_is_refused(semantic_runs):
    base, _, common = semantic_runs
    cfg = load_config("toy/semantic_baseline", [*common, "semantic.arch=deeplabv3plus"])
    with pytest.raises(CheckpointError, match="arch='deeplabv2'"):
        evaluate(cfg, base["checkpoint"])


def test_instance_stages_chain_into_self_training(semantic_runs, toy_root, tmp_path):
    _, self_train, common = semantic_runs
    base = train(load_config("toy/instance_baseline", [
        *common, "trainer.max_steps=2", f"output_dir={tmp_path}/ib", "trainer.limit_val_batches=0"]))
    result = train(load_config("toy/instance_selftrain", [
        *common, "trainer.max_steps=2", f"output_dir={tmp_path}/is", "trainer.limit_val_batches=0",
        f"instance.init_checkpoint={base['checkpoint']}", f"instance.semantic_checkpoint={self_train['checkpoint']}"]))
    metrics = result["metrics"]
    assert "train/target_loss" in metrics and "pseudo/instances_per_image" in metrics
    state = load_checkpoint_state(result["checkpoint"])["state_dict"]
    assert not any(k.startswith("semantic_net.") for k in state)
