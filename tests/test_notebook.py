"""notebooks/tutorial.ipynb runs top to bottom (nbclient, a real kernel, real MNIST, one epoch)."""

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "tutorial.ipynb"
TUTORIAL_STEPS = ("Load", "Inspect", "Normalize", "Flatten", "One-hot", "Build", "Compile", "Fit", "Evaluate", "mistakes")


def test_the_notebook_follows_the_tutorials_steps_in_order():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    headings = [cell.source.splitlines()[0] for cell in notebook.cells
                if cell.cell_type == "markdown" and cell.source.startswith("## ")]
    positions = [next(index for index, heading in enumerate(headings) if step.lower() in heading.lower())
                 for step in TUTORIAL_STEPS]
    assert positions == sorted(positions), headings
    # Plots come from digitlab's report module, not from pyplot in the notebook.
    assert not any("pyplot" in cell.source for cell in notebook.cells if cell.cell_type == "code")


@pytest.mark.slow
@pytest.mark.network
def test_the_notebook_runs_with_one_epoch_and_prints_the_tutorials_figures(tmp_path, monkeypatch):
    # A kernel of this very Python (the venv's), whatever other kernels the machine has.
    kernel_dir = tmp_path / "jupyter" / "kernels" / "digitlab-test"
    kernel_dir.mkdir(parents=True)
    (kernel_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "digitlab test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("DIGITLAB_NOTEBOOK_EPOCHS", "1")

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, kernel_name="digitlab-test", timeout=300,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell

    text = "\n".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                     for output in cell.get("outputs", []) if output.get("output_type") == "stream")
    assert "1 epochs" in text
    assert "training images: (60000, 28, 28) uint8" in text and "test images:     (10000, 28, 28) uint8" in text
    assert "(60000, 784) (10000, 784)" in text
    assert "label 5 -> [0. 0. 0. 0. 0. 1. 0. 0. 0. 0.]" in text
    test_accuracy = float(re.search(r"Test accuracy: ([0-9.]+)%", text).group(1))
    assert 94.0 < test_accuracy < 99.5  # one epoch of the tutorial's network
    images = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if "image/png" in output.get("data", {})]
    assert len(images) == 3  # first images, confusion matrix, mistakes
