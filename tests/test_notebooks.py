"""The notebooks run top to bottom with small settings, in a kernel on this interpreter, and show their results."""

from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CELL_TIMEOUT = 300
KERNEL = "panoptic-st-tests"
PQ_COLUMNS = ["model", "SQ", "RQ", "PQ", "PQ+", "SQ th", "RQ th", "PQ th", "SQ st", "RQ st", "PQ st", "PQ-16",
              "mIoU-19", "AP50"]

pytestmark = pytest.mark.slow


def venv_kernel(tmp_path: Path) -> KernelManager:
    """A kernel manager for ipykernel on this interpreter (the venv's python), whatever kernels are installed."""
    kernels = tmp_path / "kernels"
    write_kernel_spec(kernels / KERNEL)
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))


def run_notebook(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    """Execute a notebook with the small settings (its temporary files under tmp_path); raises on a failing cell."""
    monkeypatch.setenv("PANOPTIC_ST_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, km=venv_kernel(tmp_path),
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return notebook


def tagged(notebook: nbformat.NotebookNode, tag: str) -> nbformat.NotebookNode:
    """The one cell carrying `tag`."""
    cells = [c for c in notebook.cells if tag in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{len(cells)} cells tagged {tag}"
    return cells[0]


def stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def table_rows(text: str) -> dict[str, list[str]]:
    """Markdown table lines -> {first cell: other cells}."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def png_count(cell: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell.outputs)


@pytest.mark.parametrize("name", ["tour.ipynb", "extend_a_branch.ipynb"])
def test_notebooks_are_saved_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_tour_shows_every_step_and_the_panoptic_table(tmp_path, monkeypatch):
    notebook = run_notebook("tour.ipynb", tmp_path, monkeypatch)
    rows = table_rows(stdout(tagged(notebook, "pq-table")))
    assert list(rows) == PQ_COLUMNS[:1] + ["baseline", "self-trained"]
    assert rows["model"] == PQ_COLUMNS[1:]
    for model in ("baseline", "self-trained"):
        assert len(rows[model]) == len(PQ_COLUMNS) - 1
        assert all(0.0 <= float(v) <= 100.0 for v in rows[model])
    stats = stdout(tagged(notebook, "pseudo-label-stats"))
    assert "pixels with a pseudo-label" in stats and "accuracy of the pseudo-labels" in stats
    assert "pseudo-labelled share of target pixels" in stdout(tagged(notebook, "thresholds"))
    assert "true positives" in stdout(tagged(notebook, "pseudo-instances"))
    for tag in ("pseudo-labels", "thresholds", "embeddings", "pseudo-instances", "panoptic-figures"):
        assert png_count(tagged(notebook, tag)) >= 1, tag


def test_extend_a_branch_compares_both_models(tmp_path, monkeypatch):
    notebook = run_notebook("extend_a_branch.ipynb", tmp_path, monkeypatch)
    rows = table_rows(stdout(tagged(notebook, "comparison")))
    assert list(rows) == ["model", "unmodified", "+ neighbour term"]
    columns = rows["model"]
    assert columns[:2] == ["val/ap", "val/ap50"] and "train/source_smooth" in columns
    smooth = columns.index("train/source_smooth")
    assert rows["unmodified"][smooth] == "-"
    assert float(rows["+ neighbour term"][smooth]) > 0.0
    for model in ("unmodified", "+ neighbour term"):
        assert 0.0 <= float(rows[model][0]) <= 1.0 and 0.0 <= float(rows[model][1]) <= 1.0
