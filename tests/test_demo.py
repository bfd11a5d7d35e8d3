"""The demo end to end on the session's tiny toy data (one step per stage): its stages chain through their
checkpoints, and it reports the seconds of every stage, printed and in `results.json`."""

import json

import pytest
from conftest import tiny_overrides

from panoptic_st import pipeline
from panoptic_st.config import load_config

STAGES = ("semantic_baseline", "semantic_self_train", "instance_baseline", "instance_self_train")


def test_demo_schedule_lives_in_the_toy_configs():
    steps = {stage.name: load_config(stage.experiment).trainer.max_steps for stage in pipeline.DEMO_STAGES}
    assert tuple(steps) == STAGES == tuple(pipeline.QUICK_STEPS)
    assert all(pipeline.QUICK_STEPS[name] < steps[name] for name in STAGES)


def test_stage_clock_prints_and_keeps_the_seconds_of_each_part_in_order(capsys):
    clock = pipeline.StageClock()
    for name in ("toy data", "train semantic_baseline"):
        with clock.timing(name):
            pass
    assert list(clock.seconds) == ["toy data", "train semantic_baseline"]
    assert capsys.readouterr().out.splitlines() == ["[time] toy data: 0.0 s", "[time] train semantic_baseline: 0.0 s"]
    assert clock.table().splitlines()[2:] == ["| toy data | 0.0 |", "| train semantic_baseline | 0.0 |"]


@pytest.mark.slow
def test_quick_demo_reports_the_seconds_of_every_stage(toy_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pipeline, "QUICK_STEPS", dict.fromkeys(STAGES, 1))
    out = tmp_path / "demo"
    pipeline.run_demo(out, toy_root, quick=True, overrides=tiny_overrides("data.check_on_setup=false"))
    printed = capsys.readouterr().out
    summary = json.loads((out / "results.json").read_text())
    expected = ["toy data", "data check", *(f"train {s}" for s in STAGES), "evaluate baseline",
                "evaluate self-trained", "figures"]
    assert list(summary["stage_seconds"]) == expected
    assert all(seconds >= 0 for seconds in summary["stage_seconds"].values())
    assert all(f"[time] {name}: " in printed for name in expected)
    assert "## Time per stage" in (out / "report.md").read_text()
    chained = load_config(out / "instance_self_train" / "config.yaml").instance
    assert chained.init_checkpoint == summary["stages"]["instance_baseline"]["checkpoint"]
    assert chained.semantic_checkpoint == summary["stages"]["semantic_self_train"]["checkpoint"]
