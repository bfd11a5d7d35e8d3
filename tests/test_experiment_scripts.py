"""Every script under `experiments/` (the benchmarks aside) runs as `python experiments/...py`: the code scripts
share comes from the installed package, not from each other through `sys.path`."""

import runpy
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
SCRIPTS = sorted([*EXPERIMENTS.glob("*.py"), *(EXPERIMENTS / "thesis").glob("*.py")])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(EXPERIMENTS)))
def test_script_prints_its_usage(script: Path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(script), run_name="__main__")
    assert stopped.value.code == 0
    assert capsys.readouterr().out.startswith("usage: ")
