import subprocess
import sys

import pytest

from panoptic_st.cli import build_parser, main

COMMANDS = [["demo"], ["train"], ["evaluate"], ["sweep"], ["data"], ["data", "make-toy"], ["data", "check"], ["eval"],
            ["eval", "panoptic"], ["eval", "semantic"], ["eval", "instance"]]


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in ("demo", "train", "evaluate", "sweep", "data", "eval"):
        assert name in out
    assert "trainer.num_nodes" in out  # how to launch on several GPUs and nodes


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([*command, "--help"])
    assert info.value.code == 0
    assert "usage: panoptic-st " + " ".join(command) in capsys.readouterr().out


@pytest.mark.parametrize("command", [["train"], ["evaluate"], ["sweep"]], ids=" ".join)
def test_run_commands_show_how_to_launch_on_several_gpus_and_nodes(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    out = capsys.readouterr().out
    for text in ("trainer.strategy=ddp", "trainer.num_nodes=2", "srun", "torchrun"):
        assert text in out, text


def test_config_typo_on_the_command_line_is_one_line_error(capsys):
    assert main(["train", "toy/semantic_baseline", "semantic.encodr=resnet18"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "unknown config key 'semantic.encodr'" in err and "semantic.encoder (str)" in err


def test_make_toy_cli_writes_the_three_datasets(tmp_path, capsys):
    out = tmp_path / "toy"
    args = ["data", "make-toy", "--out", str(out), "--n-source", "3", "--n-target", "3", "--n-val", "2",
            "--height", "32", "--width", "64", "--workers", "1"]
    assert main(args) == 0
    assert {p.name for p in out.iterdir()} >= {"synthia", "gta5", "cityscapes"}
    assert f"in {out}" in capsys.readouterr().out


def test_make_toy_cli_writes_a_held_out_val_split_from_val_start(tmp_path):
    out = tmp_path / "heldout"
    args = ["data", "make-toy", "--out", str(out), "--n-source", "0", "--n-target", "1", "--n-val", "2",
            "--val-start", "3", "--height", "32", "--width", "64", "--workers", "1"]
    assert main(args) == 0
    assert (out / "cityscapes" / "val.txt").read_text().split() == [
        "leftImg8bit/val/frankfurt/frankfurt_000001_000019_leftImg8bit.png",
        "leftImg8bit/val/lindau/lindau_000001_000019_leftImg8bit.png"]


@pytest.mark.parametrize("argv", [["--help"], ["train", "toy/semantic_baseline", "semantic.optimizer=adamm"],
                                  ["train", "toy/semantic_basline"], ["eval", "panoptic", "--help"]], ids=" ".join)
def test_help_and_config_errors_answer_without_importing_torch(argv):
    code = ("import sys\nfrom panoptic_st.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code, *argv], check=False, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr[-500:]
