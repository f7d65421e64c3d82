"""The companion notebook pix2pix.ipynb: committed without outputs, and runs top to bottom.

The run uses the notebook's own budget variables (PIX2PIX_NB_*) for one epoch on 128 digits with
8-filter nets, in a fresh `python3` kernel (ipykernel from the same environment, no kernel spec to
install) whose working directory is the repository root, as in Jupyter.
"""
import json
import os

import pytest

pytestmark = pytest.mark.slow  # the learner's subset leaves it out: -m "not slow"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "pix2pix.ipynb")
TINY_BUDGET = {"PIX2PIX_NB_EPOCHS": "1", "PIX2PIX_NB_LIMIT": "128", "PIX2PIX_NB_FILTERS": "8"}


def test_notebook_is_committed_without_outputs():
    with open(NOTEBOOK, encoding="utf-8") as f:
        notebook = json.load(f)
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code_cells, "the notebook has no code cells"
    for i, cell in enumerate(code_cells):
        assert cell["outputs"] == [] and cell["execution_count"] is None, (
            f"code cell {i} has outputs; strip them: jupyter nbconvert --clear-output --inplace pix2pix.ipynb")


def test_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    out = tmp_path / "out"
    for name, value in {**TINY_BUDGET, "PIX2PIX_NB_OUT": str(out), "CUDA_VISIBLE_DEVICES": ""}.items():
        monkeypatch.setenv(name, value)  # the kernel inherits this process's environment
    monkeypatch.delenv("MPLBACKEND", raising=False)  # let ipykernel pick its inline backend: figures as outputs
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, kernel_name="python3", timeout=300,
                            resources={"metadata": {"path": ROOT}})  # path: the kernel's working directory
    client.execute()  # raises CellExecutionError, with the cell's traceback, at the first failing cell

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == 6, f"expected 6 pictures (digits, holes, patches, samples, losses, own hole), " \
                               f"got {len(pictures)}"
    for name in ("samples/epoch_001.png", "samples.gif", "losses.png", "history.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name  # written into PIX2PIX_NB_OUT
    history = json.loads((out / "history.json").read_text())
    assert len(history["val_l1"]) == 1  # the budget variables reached the notebook: one epoch
