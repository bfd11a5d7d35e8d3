"""Divergence guard: a non-finite loss stops the run at its step (or skips the step), no checkpoint or teacher takes
non-finite weights, a run resumes from the last finite checkpoint, and validation reports a diverged network."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides

from panoptic_st.checkpoints import load_checkpoint_state
from panoptic_st.cli import main
from panoptic_st.config import ConfigError, load_config
from panoptic_st.errors import TrainingDiverged
from panoptic_st.guards import all_finite
from panoptic_st.instance.module import InstanceModule
from panoptic_st.models.teacher import MomentumTeacher
from panoptic_st.resume import AtomicCheckpointIO
from panoptic_st.semantic.module import SemanticModule
from panoptic_st.training import train

TINY = tiny_overrides("data.target_batch_size=1", "trainer.checkpoint_every_n_steps=2")
# The batch of the first non-finite step on the weights saved just before it diverges again whatever the learning
# rate: the runs below save every 2 steps, and the toy baseline at lr=1e6 diverges at step 4.
DDP_RUN_WITH_A_NAN_LOSS_ON_RANK_1 = """
import sys
from panoptic_st.cli import main
from panoptic_st.semantic.module import SemanticModule

training_step = SemanticModule.training_step

def nan_loss_on_rank_1_in_step_2(self, batch, batch_idx):
    loss = training_step(self, batch, batch_idx)
    return loss + loss.detach() * float("nan") if self.global_rank == 1 and self.global_step == 1 else loss

SemanticModule.training_step = nan_loss_on_rank_1_in_step_2
sys.exit(main(["train", *sys.argv[1:]]))
"""
DIVERGED = re.compile(r"^error: step (\d+): train/loss_source, [^\n]*not finite[^\n]*\n$")


def _overrides(toy_root: Path, out: Path, *extra: str) -> list[str]:
    return [f"data.root={toy_root}", *TINY, f"output_dir={out}", *extra]


def _finite(path: Path, prefix: str = "") -> dict:
    """The checkpoint's state, after asserting that its weights (those under `prefix`) and optimizer state are
    finite."""
    state = load_checkpoint_state(path)
    weights = [v for k, v in state["state_dict"].items() if k.startswith(prefix) and v.is_floating_point()]
    moments = [v for s in state.get("optimizer_states", []) for p in s["state"].values() for v in p.values()]
    assert weights and all(bool(t.isfinite().all()) for t in [*weights, *moments])
    return state


def test_a_diverging_run_stops_at_its_first_nonfinite_step_and_resumes_from_the_last_finite_checkpoint(
        toy_root, tmp_path, capsys):
    code = main(["train", "toy/semantic_baseline", *_overrides(toy_root, tmp_path, "semantic.lr=1e6",
                                                                 "trainer.max_steps=20")])
    error = capsys.readouterr().err
    assert code == TrainingDiverged.exit_code and DIVERGED.match(error), error
    diverged_at = int(DIVERGED.match(error).group(1))
    last = tmp_path / "checkpoints" / "last.ckpt"
    saved = _finite(last)["global_step"]
    assert saved == 2 * ((diverged_at - 1) // 2) and saved < diverged_at - 1
    assert not (tmp_path / "final.ckpt").exists()

    resumed = train(load_config("toy/semantic_baseline", _overrides(
        toy_root, tmp_path, "trainer.resume=true", f"trainer.max_steps={diverged_at + 2}")))
    assert _finite(Path(resumed["checkpoint"]))["global_step"] == diverged_at + 2


def test_self_training_that_diverges_keeps_its_last_finite_student_and_teacher(toy_root, tmp_path):
    baseline = train(load_config("toy/semantic_baseline", _overrides(toy_root, tmp_path / "base",
                                                                     "trainer.max_steps=2")))["checkpoint"]
    run = [f"semantic.init_checkpoint={baseline}", "semantic.adabn_init=false"]
    train(load_config("toy/semantic_selftrain", _overrides(toy_root, tmp_path, *run, "trainer.max_steps=2")))
    last = tmp_path / "checkpoints" / "last.ckpt"
    good = last.read_bytes()
    with pytest.raises(TrainingDiverged, match=r"^step \d+: train/loss_source, train/loss_target, "):
        train(load_config("toy/semantic_selftrain", _overrides(
            toy_root, tmp_path, *run, "trainer.resume=true", "trainer.max_steps=10", "semantic.lr=1e6")))
    assert last.read_bytes() == good
    assert _finite(last, "teacher.net.")["global_step"] == 2 and _finite(last, "net.")

    resumed = train(load_config("toy/semantic_selftrain", _overrides(
        toy_root, tmp_path, *run, "trainer.resume=true", "trainer.max_steps=4")))
    state = _finite(Path(resumed["checkpoint"]), "teacher.net.")
    assert state["global_step"] == 4


def _poisoned_once(method, call: int):
    """`method` with the images of its `call`-th call (1-based) multiplied by NaN."""
    calls = []

    def poisoned(self, images):
        calls.append(1)
        return method(self, images * float("nan") if len(calls) == call else images)

    return poisoned


def test_skip_drops_a_nonfinite_step_and_counts_it(toy_root, tmp_path, monkeypatch):
    monkeypatch.setattr(SemanticModule, "source_logits", _poisoned_once(SemanticModule.source_logits, 2))
    run = train(load_config("toy/semantic_baseline", _overrides(
        toy_root, tmp_path, "trainer.on_nonfinite=skip", "trainer.max_steps=4")))
    assert run["metrics"]["train/skipped_steps"] == 1.0
    assert _finite(Path(run["checkpoint"]))["global_step"] == 4  # weights and BatchNorm statistics


def test_the_instance_branch_names_its_nonfinite_loss_term(toy_root, tmp_path, monkeypatch):
    monkeypatch.setattr(InstanceModule, "forward", _poisoned_once(InstanceModule.forward, 1))
    cfg = load_config("toy/instance_baseline", _overrides(toy_root, tmp_path, "trainer.max_steps=3"))
    with pytest.raises(TrainingDiverged, match=r"^step 1: train/source_pull, [^\n]*train/source_loss, "):
        train(cfg)
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()


def test_validation_reports_a_network_with_nonfinite_outputs_as_undefined(toy_root, tmp_path, monkeypatch):
    healthy = train(load_config("toy/semantic_baseline", _overrides(toy_root, tmp_path / "ok", "trainer.max_steps=1")))
    assert healthy["metrics"]["val/nonfinite"] == 0.0 and 0.0 <= healthy["metrics"]["val/miou19"] <= 1.0
    absent = [k for k, v in healthy["metrics"].items() if k.startswith("val/iou/") and v is None]
    assert absent  # a class without pixels has no IoU, and leaves the mean defined

    monkeypatch.setattr(SemanticModule, "forward", _poisoned_once(SemanticModule.forward, 1))
    broken = train(load_config("toy/semantic_baseline", _overrides(toy_root, tmp_path / "nan", "trainer.max_steps=1")))
    assert broken["metrics"]["val/nonfinite"] > 0
    assert broken["metrics"]["val/miou19"] is None and broken["metrics"]["val/iou/road"] is None


def test_the_instance_validation_of_nonfinite_embeddings_is_undefined(toy_root, tmp_path, monkeypatch):
    validation_step = InstanceModule.validation_step

    def with_nonfinite_embeddings(self, batch, batch_idx):
        handle = self.net.register_forward_hook(lambda _net, _inputs, output: output * float("nan"))
        try:
            return validation_step(self, batch, batch_idx)
        finally:
            handle.remove()

    monkeypatch.setattr(InstanceModule, "validation_step", with_nonfinite_embeddings)
    run = train(load_config("toy/instance_baseline", _overrides(toy_root, tmp_path, "trainer.max_steps=1")))
    assert run["metrics"]["val/nonfinite"] > 0 and run["metrics"]["val/ap50"] is None


def test_a_checkpoint_with_a_nonfinite_tensor_is_not_written_over_a_good_one(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"net.w": torch.ones(2), "teacher.net.w": torch.ones(2)}}, path)
    good = path.read_bytes()
    for key in ("net.w", "teacher.net.w"):
        bad = {"state_dict": {"net.w": torch.ones(2), "teacher.net.w": torch.ones(2)}}
        bad["state_dict"][key] = torch.tensor([1.0, float("inf")])
        with pytest.raises(TrainingDiverged, match=f"refusing to write {path}: state_dict.{key} is not finite"):
            io.save_checkpoint(bad, path)
    moments = {"state_dict": {"net.w": torch.ones(2)}, "optimizer_states": [{"state": {0: {"m": torch.tensor(
        [float("nan")])}}}]}
    with pytest.raises(TrainingDiverged, match="optimizer_states.0.state.0.m"):
        io.save_checkpoint(moments, path)
    assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_the_teacher_refuses_a_nonfinite_student():
    student = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    teacher = MomentumTeacher(student, momentum=0.5, interval=1)
    teacher.update(student, 0)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    with torch.no_grad():
        student[1].running_var[0] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"^step 3: the student's 1.running_var is not finite"):
        teacher.update(student, 3)
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("setting", ["trainer.on_nonfinite=ignore", "trainer.resume=true trainer.overwrite=true"])
def test_contradictory_or_unknown_guard_settings_are_refused(toy_root, tmp_path, setting):
    with pytest.raises(ConfigError, match=r"^config key 'trainer\.(on_nonfinite|overwrite)'[^\n]*$"):
        load_config("toy/semantic_baseline", _overrides(toy_root, tmp_path, *setting.split()))


def test_under_ddp_a_nonfinite_loss_on_one_process_stops_every_process(toy_root, tmp_path):
    script = tmp_path / "ddp_nan.py"
    script.write_text(DDP_RUN_WITH_A_NAN_LOSS_ON_RANK_1)
    ddp = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp", "torch_threads=1",
           "trainer.checkpoint_every_n_steps=1", "trainer.max_steps=4"]
    done = subprocess.run([sys.executable, str(script), "toy/semantic_baseline",
                           *_overrides(toy_root, tmp_path / "run", *ddp)], check=False, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == TrainingDiverged.exit_code, done.stderr[-3000:]
    assert "error: step 2: train/loss not finite" in done.stderr  # the loss's gradient is finite: only rank 1 knows
    assert "error: step 2: a loss on another process not finite" in done.stderr
    assert _finite(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == 1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_all_finite_finds_any_nonfinite_value_and_accepts_large_finite_half_tensors(dtype):
    finite = torch.full((1000,), 60000.0 if dtype == torch.float16 else 1e30, dtype=dtype)
    assert all_finite([finite, torch.zeros(3)])
    for bad in ([float("nan")], [float("inf")], [float("-inf")], [float("inf"), float("-inf")]):
        broken = finite.clone()
        broken[: len(bad)] = torch.tensor(bad, dtype=dtype)
        assert not all_finite([torch.zeros(3), broken])
    assert all_finite([torch.zeros(2, dtype=torch.int64)])
