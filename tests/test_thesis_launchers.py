"""The thesis-table launchers (`experiments/thesis/`, their code in `panoptic_st/experiments/thesis/`): their
`--dry-run` prints runnable `panoptic-st` commands that chain the stages through their checkpoints, on fake dataset
roots.

Every printed command's experiment and overrides go through `load_config`; commands of one experiment that set the
same keys (they differ only in generated paths and source shares) are loaded once, to keep the test fast.
"""

from __future__ import annotations

import importlib
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from panoptic_st.config import ExperimentConfig, load_config

ARCHS = ("deeplabv2", "deeplabv3", "deeplabv3plus")


@dataclass(frozen=True)
class Printed:
    """One printed command: section, launcher prefix, verb, experiment, checkpoint, overrides and loaded config."""

    section: str
    prefix: tuple[str, ...]
    verb: str
    experiment: str
    checkpoint: str | None
    overrides: dict[str, str]
    cfg: ExperimentConfig


@pytest.fixture()
def roots(tmp_path: Path) -> dict[str, Path]:
    """Empty stand-ins for the three dataset roots."""
    paths = {name: tmp_path.resolve() / "datasets" / name for name in ("synthia", "gta5", "cityscapes")}
    for path in paths.values():
        path.mkdir(parents=True)
    return paths


def launcher(name: str):
    """The module behind a launcher script of `experiments/thesis/`."""
    return importlib.import_module(f"panoptic_st.experiments.thesis.{name}")


def run_launcher(name: str, roots: dict[str, Path], capsys, *extra: str) -> tuple[int, str, str]:
    """Exit code, standard output and standard error of a launcher run on the fake roots."""
    code = launcher(name).main([*(f"--{k}={v}" for k, v in roots.items()), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def printed_commands(output: str):
    """(section, launcher prefix, arguments after `panoptic-st`) of every printed command."""
    section = ""
    for line in output.splitlines():
        if line.startswith("#"):
            section = line[2:]
            continue
        tokens = shlex.split(line)
        at = tokens.index("panoptic-st")
        yield section, tuple(tokens[:at]), tokens[at + 1:]


def tool_commands(output: str) -> dict[str, list[list[str]]]:
    """{section: [arguments of each `panoptic-st predict` / `eval` command]}."""
    found: dict[str, list[list[str]]] = {}
    for section, _, arguments in printed_commands(output):
        if arguments[0] in ("predict", "eval"):
            found.setdefault(section, []).append(arguments)
    return found


def parse(output: str) -> list[Printed]:
    """Every printed train / evaluate command, with its config loaded by `load_config` (a bad experiment or key
    fails here); `evaluate`'s `--masks=` flag is kept under the key `--masks`."""
    printed = []
    loaded: dict[tuple[str, tuple[str, ...]], ExperimentConfig] = {}
    for section, prefix, arguments in printed_commands(output):
        if arguments[0] in ("predict", "eval"):
            continue
        verb, experiment, rest = arguments[0], arguments[1], arguments[2:]
        checkpoint = rest.pop(0) if verb == "evaluate" else None
        flags = dict(item.split("=", 1) for item in rest if item.startswith("--"))
        rest = [item for item in rest if not item.startswith("--")]
        assert verb in ("train", "evaluate") and all("=" in item for item in rest), arguments
        overrides = dict(item.split("=", 1) for item in rest)
        key = (experiment, tuple(overrides))
        if key not in loaded:
            loaded[key] = load_config(experiment, rest)
        printed.append(Printed(section, prefix, verb, experiment, checkpoint, {**overrides, **flags},
                               loaded[key]))
    return printed


def final_checkpoint(command: Printed) -> str:
    """The checkpoint a training command writes."""
    return str(Path(command.overrides["output_dir"]) / "final.ckpt")


def check_data_roots(printed: list[Printed], roots: dict[str, Path]) -> None:
    """Every command reads the datasets from the given roots."""
    for p in printed:
        assert p.overrides["data.synthia_root"] == str(roots["synthia"])
        assert p.overrides["data.gta5_root"] == str(roots["gta5"])
        assert p.overrides["data.cityscapes_root"] == str(roots["cityscapes"])


def check_evaluations(printed: list[Printed]) -> None:
    """Every evaluation scores the final checkpoint of a training command of the same experiment (and writes beside
    it, not into a run folder of its own)."""
    trained = {(p.experiment, final_checkpoint(p)) for p in printed if p.verb == "train"}
    evaluations = [p for p in printed if p.verb == "evaluate"]
    assert evaluations
    for p in evaluations:
        assert (p.experiment, p.checkpoint) in trained and "output_dir" not in p.overrides


def test_semantic_table_chains_baseline_selftraining_and_evaluation(roots, tmp_path, capsys):
    code, output, _ = run_launcher("semantic_table", roots, capsys, f"--out={tmp_path}", "--dry-run")
    printed = parse(output)
    assert code == 0
    check_data_roots(printed, roots)
    check_evaluations(printed)
    train = {p.experiment: p for p in printed if p.verb == "train"}
    assert set(train) == {f"{s}/{a}_{k}" for s in ("synthia", "gta5", "mixed") for a in ARCHS
                          for k in ("baseline", "selftrain")}
    for name, p in train.items():
        if name.endswith("_selftrain"):
            assert p.cfg.semantic.mode == "self_train"
            assert p.overrides["semantic.init_checkpoint"] == final_checkpoint(train[name[:-9] + "baseline"])
    assert len({p.overrides["output_dir"] for p in train.values()}) == len(train)


def test_instance_table_runs_every_workflow_at_every_source_share(roots, tmp_path, capsys):
    semantic = tmp_path / "semantic.ckpt"
    code, output, _ = run_launcher("instance_table", roots, capsys, f"--out={tmp_path}", "--dry-run",
                                   "--benchmark=toy", f"--semantic-checkpoint={semantic}")
    printed = parse(output)
    assert code == 0
    check_data_roots(printed, roots)
    check_evaluations(printed)
    sections = {p.section for p in printed if p.section.startswith("workflow ")}
    assert sections == {f"workflow {w}, {m}% source" for w in ("all_classes", "icm", "base", "ccm")
                        for m in (0, 25, 50, 75)}
    baselines = [final_checkpoint(p) for p in printed if p.verb == "train" and p.cfg.instance.mode == "baseline"]
    assert len(baselines) == len(set(baselines)) == 4
    for p in printed:
        if p.verb == "evaluate":
            assert p.overrides["--masks"] == f"semantic:{semantic}"
        elif p.cfg.instance.mode == "self_train":
            share = int(p.section.split(", ")[1].removesuffix("% source"))
            assert p.overrides["instance.init_checkpoint"] in baselines
            assert p.overrides["instance.semantic_checkpoint"] == str(semantic)
            assert float(p.overrides["data.source_mix"]) == share / 100


def test_panoptic_table_predicts_and_scores_baseline_and_selftrained_pairs(roots, tmp_path, capsys):
    code, output, _ = run_launcher("panoptic_table", roots, capsys, f"--out={tmp_path}", "--dry-run",
                                   "--benchmark=toy")
    printed = parse(output)
    assert code == 0
    check_data_roots(printed, roots)
    trained = {final_checkpoint(p): p for p in printed}
    rows = {section.removeprefix("panoptic "): commands for section, commands in tool_commands(output).items()}
    assert set(rows) == {f"{m} {a}" for m in ("baseline", "self-trained") for a in ARCHS}
    for row, (predict, *evals) in rows.items():
        flags = dict(zip(predict[1::2], predict[2::2]))
        assert predict[0] == "predict" and flags["--root"] == str(roots["cityscapes"]) and flags["--split"] == "val"
        semantic, instance = trained[flags["--semantic"]], trained[flags["--instance"]]
        mode = "baseline" if row.startswith("baseline") else "self_train"
        assert semantic.cfg.stage == "semantic" and semantic.cfg.semantic.mode == mode
        assert instance.cfg.stage == "instance" and instance.cfg.instance.mode == mode
        assert semantic.experiment == f"mixed/{row.split()[-1]}_{'baseline' if mode == 'baseline' else 'selftrain'}"
        if mode == "self_train":
            assert instance.overrides["instance.semantic_checkpoint"] == final_checkpoint(semantic)
            assert semantic.overrides["semantic.init_checkpoint"] in trained
        assert sorted(e[1] for e in evals) == ["instance", "panoptic", "semantic"]
        for command in evals:
            assert any(arg.startswith(flags["--out"]) for arg in command), command


def test_panoptic_dry_run_needs_no_dataset_folders(tmp_path, capsys):
    missing = {name: tmp_path / "nowhere" / name for name in ("synthia", "gta5", "cityscapes")}
    code, output, _ = run_launcher("panoptic_table", missing, capsys, f"--out={tmp_path}", "--dry-run",
                                   "--archs=deeplabv2")
    assert code == 0 and "panoptic-st predict" in output


def test_multi_gpu_flags_launcher_prefix_and_overrides_reach_every_training_command(roots, tmp_path, capsys):
    code, output, _ = run_launcher("semantic_table", roots, capsys, f"--out={tmp_path}", "--dry-run",
                                   "--sources=mixed", "--devices=4", "--nodes=2", "--launcher=srun --cpu-bind=none",
                                   "trainer.max_steps=7")
    printed = parse(output)
    assert code == 0 and len(printed) == 12
    for p in printed:
        if p.verb == "train":
            assert p.prefix == ("srun", "--cpu-bind=none")
            assert (p.cfg.trainer.devices, p.cfg.trainer.num_nodes, p.cfg.trainer.strategy) == (4, 2, "ddp")
            assert p.cfg.trainer.max_steps == 7
        else:
            assert p.prefix == ()


def test_a_misspelt_override_fails_before_anything_runs(roots, tmp_path, capsys):
    out = tmp_path / "out"
    code, output, error = run_launcher("semantic_table", roots, capsys, f"--out={out}",
                                       "--sources=gta5", "--archs=deeplabv2", "data.num_workrs=2")
    assert code == 1 and output == "" and not out.exists()
    assert "data.num_workers" in error


def test_a_benchmark_without_instance_workflow_configs_is_refused(roots, tmp_path, capsys):
    code, output, error = run_launcher("instance_table", roots, capsys, f"--out={tmp_path}",
                                       "--dry-run", "--benchmark=nowhere")
    assert code == 1 and output == ""
    assert "nowhere" in error and "toy" in error


def test_the_semantic_plan_prints_on_a_login_node_without_any_dataset(tmp_path, capsys):
    missing = {name: tmp_path / "nowhere" / name for name in ("synthia", "gta5", "cityscapes")}
    code, output, error = run_launcher("semantic_table", missing, capsys, f"--out={tmp_path}/out",
                                       "--nodes=2", "--devices=4", "--launcher=srun", "--dry-run")
    printed = parse(output)
    assert (code, error) == (0, "") and len(printed) == 3 * 3 * 4
    assert all(p.prefix == ("srun",) for p in printed if p.verb == "train")
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_rehearsal_runs_the_semantic_table_on_native_size_data(tmp_path, capsys):
    from panoptic_st.data.toy import make_toy

    data = tmp_path / "native"
    make_toy(data, native_size=True, n_source=2, n_target=1, n_val=1, workers=1, progress=False)
    rehearse = launcher("rehearse")
    out = tmp_path / "rehearsal"
    code = rehearse.main(["--data", str(data), "--out", str(out), "--scope", "quick", "--tables", "semantic",
                          "--encoder", "mobilenetv3_large_100", "data.batch_size=1", "data.target_batch_size=1",
                          "data.val_batch_size=1", "data.num_workers=0"])
    assert code == 0
    report = (out / "rehearsal.md").read_text()
    for stage in ("train mixed/deeplabv2_baseline", "train mixed/deeplabv2_selftrain",
                  "evaluate mixed/deeplabv2_baseline", "evaluate mixed/deeplabv2_selftrain"):
        assert f"`{stage}`" in report, stage
    scores = json.loads((out / "semantic" / "mixed_deeplabv2_selftrain" / "final.eval.json").read_text())
    assert 0.0 <= scores["metrics"]["val/miou19"] <= 1.0
