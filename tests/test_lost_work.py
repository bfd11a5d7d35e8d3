"""No lost work: an unfinished run is not started over unless told, a killed toy generation leaves no dataset that
`data check` accepts, and a run of no steps is refused."""

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_overrides

from panoptic_st.checkpoints import load_checkpoint_state
from panoptic_st.cli import main
from panoptic_st.config import ConfigError, load_config
from panoptic_st.data.check import FORMATS, check_dataset
from panoptic_st.data.toy import make_toy
from panoptic_st.training import train, train_or_reuse

TINY = tiny_overrides("trainer.checkpoint_every_n_steps=1", "trainer.max_steps=3")
TOY = ["--workers", "1", "--n-source", "3", "--n-target", "3", "--n-val", "2", "--height", "64", "--width", "128"]
KILLED_MAKE_TOY = """
import os, signal, sys
from panoptic_st.cli import main
from panoptic_st.data.toy import driver

make_one, made = driver._make_one, []

def killed_after_some_images(task):
    made.append(task)
    if len(made) > int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
    return make_one(task)

driver._make_one = killed_after_some_images
main(["data", "make-toy", "--out", sys.argv[1], "--seed", sys.argv[3], *sys.argv[4:]])
"""


def _overrides(toy_root: Path, out: Path, *extra: str) -> list[str]:
    return [f"data.root={toy_root}", *TINY, f"output_dir={out}", *extra]


def _killed_run(toy_root: Path, out: Path, kill_training_at) -> Path:
    """A baseline run that dies in step 3, after `last.ckpt` of step 2."""
    with kill_training_at(2):
        train(load_config("toy/semantic_baseline", _overrides(toy_root, out)))
    return out / "checkpoints" / "last.ckpt"


def test_rerunning_a_killed_run_without_resume_is_refused_with_how_to_resume(toy_root, tmp_path, kill_training_at,
                                                                             capsys):
    last = _killed_run(toy_root, tmp_path, kill_training_at)
    saved = last.read_bytes()
    assert main(["train", "toy/semantic_baseline", *_overrides(toy_root, tmp_path)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "unfinished run" in error and "trainer.resume=true" in error
    assert last.read_bytes() == saved and not (tmp_path / "final.ckpt").exists()

    resumed = train(load_config("toy/semantic_baseline", _overrides(toy_root, tmp_path, "trainer.resume=true")))
    assert load_checkpoint_state(resumed["checkpoint"])["global_step"] == 3
    with pytest.warns(UserWarning, match="exists and is not empty"):  # a finished run may be started over
        train(load_config("toy/semantic_baseline", _overrides(toy_root, tmp_path, "seed=1")))


def test_the_demo_resumes_an_unfinished_stage_of_the_same_config(toy_root, tmp_path, kill_training_at, capsys):
    _killed_run(toy_root, tmp_path, kill_training_at)
    result = train_or_reuse(load_config("toy/semantic_baseline", _overrides(toy_root, tmp_path)))
    assert f"resuming from {tmp_path / 'checkpoints' / 'last.ckpt'}" in capsys.readouterr().out
    assert load_checkpoint_state(result["checkpoint"])["global_step"] == 3


@pytest.mark.parametrize("steps", [0, -1])
def test_a_run_of_no_steps_is_refused(toy_root, tmp_path, steps):
    with pytest.raises(ConfigError, match=rf"^config key 'trainer.max_steps' must be at least 1 [^\n]*got {steps}$"):
        load_config("toy/semantic_baseline", _overrides(toy_root, tmp_path, f"trainer.max_steps={steps}"))


def _kill_make_toy(out: Path, after_images: int, seed: int) -> None:
    killed = subprocess.run([sys.executable, "-c", KILLED_MAKE_TOY, str(out), str(after_images), str(seed), *TOY],
                            check=False, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr


def _accepted(root: Path) -> set[tuple[str, str]]:
    """Every (folder under root, format) that `data check` accepts."""
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    return {(str(f.relative_to(root)), fmt) for f in folders for fmt in FORMATS if check_dataset(f, fmt).ok}


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_killed_make_toy_leaves_no_folder_that_data_check_accepts(tmp_path):
    _kill_make_toy(tmp_path / "toy", after_images=5, seed=0)
    assert _accepted(tmp_path) == set()

    earlier = tmp_path / "earlier"
    make_toy(earlier, seed=0, n_source=3, n_target=3, n_val=2, height=64, width=128, workers=1, progress=False)
    before = _digests(earlier)
    _kill_make_toy(earlier, after_images=5, seed=1)
    assert {k: v for k, v in _digests(earlier).items() if not k.startswith(".")} == before
    assert _accepted(earlier) == {("synthia", "synthia"), ("gta5", "gta5"), ("cityscapes", "cityscapes")}
