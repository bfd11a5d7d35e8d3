"""Exact resume: a crashed run resumed from its last checkpoint ends where an uninterrupted run ends."""

import itertools

import pytest
import torch
from conftest import tiny_overrides

from panoptic_st.checkpoints import load_checkpoint_state
from panoptic_st.config import ConfigError, load_config
from panoptic_st.data.datamodule import PanopticDataModule
from panoptic_st.data.sampling import StepBatchSampler, importance_probabilities
from panoptic_st.resume import AtomicCheckpointIO
from panoptic_st.semantic.module import SemanticModule
from panoptic_st.training import train

TINY = tiny_overrides("data.batch_size=2", "data.target_batch_size=1", "trainer.checkpoint_every_n_steps=2",
                      "semantic.prior_momentum=0.5", "semantic.teacher_momentum=0.5")


class SimulatedCrash(RuntimeError):
    pass


@pytest.fixture(scope="module")
def baseline(toy_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("resume")
    cfg = load_config("toy/semantic_baseline", [f"data.root={toy_root}", *TINY, "trainer.max_steps=2",
                                                f"output_dir={out}/base"])
    return train(cfg)["checkpoint"]


def _self_train_cfg(toy_root, out, baseline, *extra):
    return load_config("toy/semantic_selftrain", [
        f"data.root={toy_root}", *TINY, "trainer.max_steps=5", f"output_dir={out}",
        f"semantic.init_checkpoint={baseline}", "semantic.adabn_init=false", *extra])


def _crash_at_step(monkeypatch, step: int) -> None:
    original = SemanticModule.training_step

    def crashing(self, batch, batch_idx):
        if self.global_step == step:
            raise SimulatedCrash(f"killed at step {step}")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(SemanticModule, "training_step", crashing)


def test_self_training_resumed_after_a_crash_ends_like_an_uninterrupted_run(toy_root, tmp_path, baseline,
                                                                            monkeypatch):
    uninterrupted = train(_self_train_cfg(toy_root, tmp_path / "full", baseline))
    crashed_dir = tmp_path / "crashed"
    with monkeypatch.context() as patch:
        _crash_at_step(patch, 3)
        with pytest.raises(SimulatedCrash):
            train(_self_train_cfg(toy_root, crashed_dir, baseline))
    assert load_checkpoint_state(crashed_dir / "checkpoints" / "last.ckpt")["global_step"] == 2
    resumed = train(_self_train_cfg(toy_root, crashed_dir, baseline, "trainer.resume=true"))

    full = load_checkpoint_state(uninterrupted["checkpoint"])
    again = load_checkpoint_state(resumed["checkpoint"])
    assert full["global_step"] == again["global_step"] == 5
    assert full["state_dict"].keys() == again["state_dict"].keys()
    for key, value in full["state_dict"].items():
        assert torch.equal(value, again["state_dict"][key]), key
    assert any(k.startswith("teacher.net.") for k in full["state_dict"])
    assert bool(full["state_dict"]["prior.initialised"])
    full_last = load_checkpoint_state(tmp_path / "full" / "checkpoints" / "last.ckpt")
    again_last = load_checkpoint_state(crashed_dir / "checkpoints" / "last.ckpt")
    assert full_last["global_step"] == again_last["global_step"] == 4  # saved every 2 steps, after the resume
    for a, b in zip(full_last["optimizer_states"][0]["state"].values(),
                    again_last["optimizer_states"][0]["state"].values()):
        for name in a:
            assert torch.equal(a[name], b[name]), name
    assert uninterrupted["metrics"]["val/miou19"] == resumed["metrics"]["val/miou19"]


def test_a_killed_run_is_not_started_over_unless_overwrite_and_then_from_scratch(toy_root, tmp_path, baseline,
                                                                                   monkeypatch):
    with monkeypatch.context() as patch:
        _crash_at_step(patch, 3)
        with pytest.raises(SimulatedCrash):
            train(_self_train_cfg(toy_root, tmp_path / "run", baseline, "seed=1"))
    with pytest.raises(ConfigError, match=r"unfinished run .* rerun with trainer.resume=true to continue it"):
        train(_self_train_cfg(toy_root, tmp_path / "run", baseline, "trainer.max_steps=3"))
    rerun = train(_self_train_cfg(toy_root, tmp_path / "run", baseline, "trainer.max_steps=3", "trainer.overwrite=true"))
    fresh = train(_self_train_cfg(toy_root, tmp_path / "fresh", baseline, "trainer.max_steps=3"))
    rerun_state = load_checkpoint_state(rerun["checkpoint"])["state_dict"]
    fresh_state = load_checkpoint_state(fresh["checkpoint"])["state_dict"]
    assert all(torch.equal(fresh_state[k], rerun_state[k]) for k in fresh_state)


def test_an_interrupted_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 1}, path)

    def dies_halfway(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full / process killed during the write")

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(OSError):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "global_step": 2}, path)
    state = load_checkpoint_state(path)
    assert state["global_step"] == 1 and torch.equal(state["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_the_batch_stream_is_a_function_of_seed_and_step():
    stream = StepBatchSampler(size=10, batch_size=3, seed=4)
    first = list(itertools.islice(iter(stream), 8))
    resumed = list(itertools.islice(iter(StepBatchSampler(size=10, batch_size=3, seed=4, start_batch=5)), 3))
    assert resumed == first[5:]
    indices = [i for batch in first for i, _ in batch]
    assert sorted(indices[:10]) == list(range(10)) and sorted(indices[10:20]) == list(range(10))
    assert indices[:10] != indices[10:20]
    assert first != list(itertools.islice(iter(StepBatchSampler(size=10, batch_size=3, seed=5)), 8))
    shards = [list(itertools.islice(iter(StepBatchSampler(10, 3, 4, rank=r, world_size=2)), 4)) for r in (0, 1)]
    single = list(itertools.islice(iter(StepBatchSampler(10, 6, 4)), 4))
    assert [a + b for a, b in zip(*shards)] == single


def test_training_batches_do_not_depend_on_the_number_of_workers(toy_root):
    def batches(workers: int) -> list[torch.Tensor]:
        cfg = load_config("toy/semantic_baseline", [f"data.root={toy_root}", *TINY, f"data.num_workers={workers}"])
        dm = PanopticDataModule(cfg.data, "source", seed=3)
        dm.setup()
        return [b["image"] for b in itertools.islice(iter(dm.train_dataloader()), 3)]

    for a, b in zip(batches(0), batches(2)):
        assert torch.equal(a, b)


def test_importance_probabilities_mix_uniform_and_each_images_share_of_the_class():
    counts = torch.tensor([[2, 0], [6, 0]])  # class 0 predicted 2 and 6 px; class 1 nowhere
    probs = importance_probabilities(counts, uniform=0.25)
    torch.testing.assert_close(probs, torch.tensor([[0.3125, 0.6875], [0.5, 0.5]], dtype=torch.float64))


def test_importance_sampling_draws_class_by_class_and_resumes_exactly():
    probs = torch.eye(3, dtype=torch.float64)[[2, 0, 1]]  # class 0 only in image 2, class 1 in 0, class 2 in 1
    stream = StepBatchSampler(size=3, batch_size=4, seed=1, class_probabilities=probs)
    batches = list(itertools.islice(iter(stream), 3))
    assert [i for batch in batches for i, _ in batch] == [2, 0, 1] * 4
    resumed = next(iter(StepBatchSampler(3, 4, 1, start_batch=2, class_probabilities=probs)))
    assert resumed == batches[2]


def test_self_training_with_importance_sampling_saves_the_probabilities(toy_root, tmp_path, baseline):
    run = train(_self_train_cfg(toy_root, tmp_path, baseline, "trainer.max_steps=2",
                                "semantic.importance_sampling=true"))
    state = load_checkpoint_state(run["checkpoint"])["PanopticDataModule"]["target_class_probabilities"]
    assert state.shape == (19, 12)
    torch.testing.assert_close(state.sum(dim=1), torch.ones(19, dtype=torch.float64))
