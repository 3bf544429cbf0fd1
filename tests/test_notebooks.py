"""The notebooks in examples/notebooks run top to bottom in a real Jupyter kernel.

Each is executed by nbclient in an ipykernel started with THIS interpreter (a kernelspec
written into a temporary folder, so no ``python3`` kernel installed elsewhere on the
machine is picked up), with this checkout's ``src`` first on the kernel's path, in a
temporary working folder. The committed notebooks carry no outputs.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "examples" / "notebooks"
NAMES = ["01_lesson", "02_probe_your_model", "03_small_sweep"]
CELL_TIMEOUT = 120  # seconds; the slowest cell (the quick lesson) takes about 15 s


def execute(notebook: Path, tmp_path: Path) -> Any:
    """Run ``notebook`` in a fresh kernel; return it with its outputs."""
    kernels = tmp_path / "kernels"
    spec = kernels / "python3"
    spec.mkdir(parents=True)
    path = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "initlab tests",
                "language": "python",
                "env": {"PYTHONPATH": path},
            }
        )
    )
    specs = KernelSpecManager(kernel_dirs=[str(kernels)], ensure_native_kernel=False)
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    book = nbformat.read(notebook, as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    client = NotebookClient(
        book,
        km=manager,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(work)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on an error
    return book


def outputs(book: Any) -> tuple[str, str]:
    """All the text a reader sees (streams and text/plain) and all the HTML, joined."""
    text, html = [], []
    for cell in book.cells:
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                text.append(out["text"])
            elif out["output_type"] == "error":
                text.append("\n".join(out["traceback"]))
            else:
                data = out.get("data", {})
                text.append(data.get("text/plain", ""))
                html.append(data.get("text/html", ""))
    return "\n".join(text), "\n".join(html)


def test_the_kernel_is_this_interpreter_with_this_checkout(tmp_path: Path) -> None:
    book = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "import sys, initlab\nprint(sys.executable)\nprint(initlab.__file__)"
            )
        ]
    )
    nbformat.write(book, tmp_path / "kernel.ipynb")
    ran = execute(tmp_path / "kernel.ipynb", tmp_path)
    printed = ran.cells[0].outputs[0]["text"].split()
    assert Path(printed[0]).resolve() == Path(sys.executable).resolve()
    assert Path(printed[1]).resolve().is_relative_to(ROOT / "src")


def test_lesson_notebook(tmp_path: Path) -> None:
    book = execute(NOTEBOOKS / "01_lesson.ipynb", tmp_path)
    text, _ = outputs(book)
    # the findings, printed one per line as the lesson states them
    assert text.count("•") >= 2
    assert "Adam" in text and "training accuracy" in text
    assert "image/png" in json.dumps([c.get("outputs", []) for c in book.cells])
    assert "Traceback" not in text


def test_probe_notebook(tmp_path: Path) -> None:
    book = execute(NOTEBOOKS / "02_probe_your_model.ipynb", tmp_path)
    text, html = outputs(book)
    assert "ProbeReport(members=1, layers=21, problems=[" in text
    assert "saturated" in text and "Fix:" in html  # the verdict, shown with its fix
    assert "applied:" in text and "after:" in text  # what fix did
    assert "step 0: saturated" in text  # Watch in the loop
    assert "<table>" in html and "Traceback" not in text


def test_sweep_notebook(tmp_path: Path) -> None:
    book = execute(NOTEBOOKS / "03_small_sweep.ipynb", tmp_path)
    text, html = outputs(book)
    assert "12 of 12 runs trained" in html  # the summary's own view
    assert "StudySummary(runs=12, skipped=12, trained=0" in text  # the rerun resumes
    assert "pivot" not in text.lower()
    assert "he_normal" in html and "xavier_normal" in html and "<table" in html  # the pivot
    assert "0/None" not in text and "Traceback" not in text
    # The progress bar shows as in a terminal (drawn on stderr), not rich's ipywidgets warning.
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # the terminal's colour codes off
    assert "ipywidgets" not in text and "12/12 runs" in plain


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebooks_have_no_outputs(name: str) -> None:
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(book)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.id
