"""`run_chain`: every chain of training stages (demo, workflows, thesis launchers, toy scripts) passes the final
checkpoints of earlier stages along in one place."""

from pathlib import Path

from panoptic_st.stages import Stage, run_chain


def recorded(calls: list[tuple[str, list[str]]]):
    """A stage runner that records (experiment, overrides) and 'writes' `<output_dir>/final.ckpt`."""
    def run(stage: Stage, overrides: list[str]) -> dict:
        calls.append((stage.experiment, overrides))
        return {"checkpoint": str(stage.output_dir / "final.ckpt")}

    return run


def test_each_stage_starts_from_the_checkpoints_of_the_stages_it_names(tmp_path: Path):
    stages = [Stage("toy/semantic_baseline", output_dir=tmp_path / "sb", name="sb"),
              Stage("toy/semantic_selftrain", "sb", output_dir=tmp_path / "ss", name="ss"),
              Stage("toy/instance_selftrain", "ib", "ss", overrides=("instance.lr=0.1",), output_dir=tmp_path / "is")]
    calls: list[tuple[str, list[str]]] = []
    done = {"ib": {"checkpoint": "/elsewhere/ib.ckpt"}}
    results = run_chain(stages, recorded(calls), common=["seed=3", "instance.lr=0.2"], done=done)
    assert [experiment for experiment, _ in calls] == [s.experiment for s in stages]
    assert calls[0][1] == [f"output_dir={tmp_path / 'sb'}", "seed=3", "instance.lr=0.2"]
    assert calls[1][1] == [f"output_dir={tmp_path / 'ss'}", f"semantic.init_checkpoint={tmp_path / 'sb' / 'final.ckpt'}",
                           "seed=3", "instance.lr=0.2"]
    assert calls[2][1] == [f"output_dir={tmp_path / 'is'}", "instance.lr=0.1", "instance.init_checkpoint=/elsewhere/ib.ckpt",
                           f"instance.semantic_checkpoint={tmp_path / 'ss' / 'final.ckpt'}", "seed=3", "instance.lr=0.2"]
    assert set(results) == {"ib", "sb", "ss", "toy/instance_selftrain"}


def test_finished_stages_are_not_run_again(tmp_path: Path):
    calls: list[tuple[str, list[str]]] = []
    stages = [Stage("toy/semantic_baseline", output_dir=tmp_path / "sb")]
    done = {"toy/semantic_baseline": {"checkpoint": "/old/final.ckpt"}}
    assert run_chain(stages, recorded(calls), done=done) == done and calls == []
