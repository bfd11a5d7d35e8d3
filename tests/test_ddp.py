"""Self-training under DDP on 2 CPU processes (gloo): identical teachers, metrics over the whole split."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides

from panoptic_st.config import load_config
from panoptic_st.prediction import evaluate
from panoptic_st.training import train

SCRIPT = Path(__file__).with_name("ddp_script.py")
TINY = tiny_overrides("data.batch_size=2", "data.target_batch_size=1", "data.val_batch_size=3")
DDP = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp", "torch_threads=1"]


def run_ddp(experiment: str, overrides: list[str], out: Path) -> dict:
    """Train under DDP in a fresh interpreter (Lightning relaunches it once per process)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, str(SCRIPT), experiment, *overrides, *DDP, f"output_dir={out}"]
    done = subprocess.run(args, check=False, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


def assert_same_teacher_on_every_process(out: Path) -> dict:
    states = [torch.load(out / f"teacher_rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert int(states[0]["world_size"]) == 2
    first_batches = [set(s.pop("first_batch")) for s in states]
    assert first_batches[0] and not first_batches[0] & first_batches[1], "both processes trained on the same images"
    val_shards = [s.pop("val_images") for s in states]
    assert sum(val_shards) == 6 and max(val_shards) - min(val_shards) <= 1, val_shards
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    return states[0]


@pytest.fixture(scope="module")
def stages(toy_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    common = [f"data.root={toy_root}", *TINY]
    semantic = train(load_config("toy/semantic_baseline", [*common, "trainer.max_steps=2", f"output_dir={out}/sb"]))
    instance = train(load_config("toy/instance_baseline", [*common, "trainer.max_steps=2", "trainer.limit_val_batches=0",
                                                           f"output_dir={out}/ib"]))
    return out, common, semantic["checkpoint"], instance["checkpoint"]


@pytest.mark.slow
def test_semantic_self_training_under_ddp(stages):
    out, common, semantic, _ = stages
    overrides = [*common, "trainer.max_steps=3", f"semantic.init_checkpoint={semantic}",
                 "semantic.teacher_momentum=0.5"]
    result = run_ddp("toy/semantic_selftrain", overrides, out / "ss")
    teacher = assert_same_teacher_on_every_process(out / "ss")
    initial = torch.load(semantic, weights_only=True)["state_dict"]
    moved = [k for k in initial if k.startswith("net.") and "weight" in k
             and not torch.equal(initial[k], teacher["teacher." + k])]
    assert moved, "the teacher never followed the student"
    assert bool(teacher["prior.initialised"])
    single = evaluate(load_config("toy/semantic_selftrain", overrides), result["checkpoint"])
    for key in ("val/miou19", "val/miou16", "val/miou13"):
        assert result["metrics"][key] == pytest.approx(single["metrics"][key], abs=1e-6), key


@pytest.mark.slow
def test_instance_self_training_under_ddp(stages):
    out, common, semantic, instance = stages
    overrides = [*common, "trainer.max_steps=3", f"instance.init_checkpoint={instance}",
                 f"instance.semantic_checkpoint={semantic}"]
    result = run_ddp("toy/instance_selftrain", overrides, out / "is")
    assert_same_teacher_on_every_process(out / "is")
    single = evaluate(load_config("toy/instance_selftrain", overrides), result["checkpoint"],
                      masks=f"semantic:{semantic}")
    for key in ("val/ap", "val/ap50"):
        assert result["metrics"][key] == pytest.approx(single["metrics"][key], abs=1e-6), key
