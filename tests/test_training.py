"""Stages run through `train()` on tiny data: checkpoints chain, BN stays frozen, the teacher is saved."""

from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides

from panoptic_st.checkpoints import CheckpointError, load_checkpoint_state, network_from_checkpoint
from panoptic_st.config import load_config
from panoptic_st.prediction import evaluate
from panoptic_st.training import train

TINY = tiny_overrides()


@pytest.fixture(scope="module")
def semantic_runs(toy_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    common = [f"data.root={toy_root}", *TINY]
    base = train(load_config("toy/semantic_baseline", [*common, "trainer.max_steps=3", f"output_dir={out}/b"]))
    self_train = train(load_config("toy/semantic_selftrain", [
        *common, "trainer.max_steps=2", f"output_dir={out}/s", f"semantic.init_checkpoint={base['checkpoint']}",
        "semantic.adabn_init=false"]))
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


def test_evaluate_with_adabn_changes_the_score(semantic_runs):
    base, _, common = semantic_runs
    cfg = load_config("toy/semantic_baseline", common)
    plain = evaluate(cfg, base["checkpoint"])
    adapted = evaluate(cfg, base["checkpoint"], adabn_first=True)
    assert plain["metrics"].keys() == adapted["metrics"].keys()
    assert plain["metrics"]["val/miou19"] != adapted["metrics"]["val/miou19"]
    checkpoint = Path(base["checkpoint"])
    assert {p.name for p in checkpoint.parent.glob("*.json")} >= {"final.eval.json", "final.eval_adabn.json"}


def test_adabn_init_starts_self_training_from_target_batchnorm_statistics(semantic_runs, tmp_path):
    base, _, common = semantic_runs
    run = train(load_config("toy/semantic_selftrain", [
        *common, "trainer.max_steps=2", f"output_dir={tmp_path}", "semantic.adabn_init=true",
        f"semantic.init_checkpoint={base['checkpoint']}"]))
    before = load_checkpoint_state(base["checkpoint"])["state_dict"]
    after = load_checkpoint_state(run["checkpoint"])["state_dict"]
    bn_keys = [k for k in before if k.startswith("net.") and k.endswith(("running_mean", "running_var"))]
    assert all(not torch.equal(before[k], after[k]) for k in bn_keys)
    for key in bn_keys:
        torch.testing.assert_close(after["teacher." + key], after[key])
        weight = key.replace("running_mean", "weight").replace("running_var", "bias")
        assert torch.equal(before[weight], after[weight]), weight


def test_adabn_init_is_refused_outside_self_training(toy_root, tmp_path):
    cfg = load_config("toy/semantic_baseline", [f"data.root={toy_root}", *TINY, "semantic.adabn_init=true",
                                                f"output_dir={tmp_path}"])
    with pytest.raises(ValueError, match="adabn_init"):
        train(cfg)


def test_frozen_semantic_network_is_channels_last_with_the_trained_outputs(semantic_runs):
    base, _, _ = semantic_runs
    frozen = network_from_checkpoint(base["checkpoint"], "semantic")
    convs = [m.weight for m in frozen.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not any(p.requires_grad for p in frozen.parameters()) and not frozen.training
    contiguous = network_from_checkpoint(base["checkpoint"], "semantic").to(memory_format=torch.contiguous_format)
    images = torch.rand(2, 3, 64, 128)
    with torch.no_grad():
        assert torch.allclose(frozen(images), contiguous(images), atol=1e-5)


def test_checkpoint_of_another_architecture_is_refused(semantic_runs, tmp_path):
    base, _, common = semantic_runs
    cfg = load_config("toy/semantic_selftrain", [*common, "semantic.arch=deeplabv3plus", f"output_dir={tmp_path}",
                                                 f"semantic.init_checkpoint={base['checkpoint']}"])
    with pytest.raises(CheckpointError, match="arch='deeplabv2'"):
        train(cfg)


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


def test_source_renormalisation_maps_source_statistics_onto_the_target():
    from panoptic_st.ops.images import IMAGENET_MEAN, IMAGENET_STD, renormalisation

    mu_s, sd_s = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.1, 0.3])
    mu_t, sd_t = torch.tensor([0.3, 0.5, 0.6]), torch.tensor([0.1, 0.2, 0.15])
    mean, std = renormalisation(mu_s, sd_s, mu_t, sd_t)
    x = torch.rand(3, 50)  # a source image, normalised with the new constants ...
    matched = (x - mu_s[:, None]) / sd_s[:, None] * sd_t[:, None] + mu_t[:, None]  # ... equals the target-like
    imagenet = (matched - torch.tensor(IMAGENET_MEAN)[:, None]) / torch.tensor(IMAGENET_STD)[:, None]
    torch.testing.assert_close((x - mean[:, None]) / std[:, None], imagenet)
    same = renormalisation(mu_s, sd_s, mu_s, sd_s)
    torch.testing.assert_close(same[0], torch.tensor(IMAGENET_MEAN))


def test_guided_refinement_and_renorm_run_in_self_training(semantic_runs, tmp_path):
    base, _, common = semantic_runs
    result = train(load_config("toy/semantic_selftrain", [
        *common, "trainer.max_steps=1", f"output_dir={tmp_path}", f"semantic.init_checkpoint={base['checkpoint']}",
        "semantic.guided_refinement=gt", "semantic.source_renorm=true", "semantic.renorm_images=4"]))
    state = load_checkpoint_state(result["checkpoint"])["state_dict"]
    assert not torch.allclose(state["source_mean"], torch.tensor([0.485, 0.456, 0.406]))
