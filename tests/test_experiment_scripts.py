"""Every script under `experiments/` (the benchmarks aside) runs as `python experiments/...py`: the code scripts
share comes from the installed package, not from each other through `sys.path`."""

import runpy
import sys
from pathlib import Path

import pytest
import torch

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
SCRIPTS = sorted([*EXPERIMENTS.glob("*.py"), *(EXPERIMENTS / "thesis").glob("*.py")])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(EXPERIMENTS)))
def test_script_prints_its_usage(script: Path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(script), run_name="__main__")
    assert stopped.value.code == 0
    assert capsys.readouterr().out.startswith("usage: ")


def test_kinds_per_image_and_its_cells_count_a_true_a_merged_and_a_missed_object():
    from panoptic_st.experiments.toy import KINDS_HEADER, evenly_spaced, kinds_cells, kinds_per_image

    truth = torch.tensor([[1, 1, 2, 2, 3, 3, 0, 0]])
    pseudo = torch.tensor([[5, 5, 0, 0, 0, 0, 0, 0]])  # object 1 found; 2 and 3 missed
    merged = torch.tensor([[0, 0, 7, 7, 7, 7, 0, 0]])  # objects 2 and 3 in one pseudo-instance
    kinds = kinds_per_image([(pseudo, truth), (merged, truth)], images=2)
    assert kinds == {"true": 0.5, "merge": 0.5, "fragment": 0.0, "other": 0.0, "objects": 3.0}
    # precision 1 true of 2 found, recall 1 true of 6 objects
    assert kinds_cells(kinds) == "0.50 | 0.50 | 0.00 | 0.00 | 0.500 | 0.167 |"
    assert KINDS_HEADER.count("|") == kinds_cells(kinds).count("|") + 1
    assert list(evenly_spaced(list(range(10)), 3)) == [0, 3, 6]
