"""walkthrough.ipynb runs top to bottom in a real kernel, as a reader would run it."""

import os
import shutil
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")
pytest.importorskip("graphviz")

from mikagrad.visualization import _graphviz_pure  # noqa: E402

NOTEBOOK = Path(__file__).resolve().parent.parent / "walkthrough.ipynb"


@pytest.mark.skipif(shutil.which("dot") is None and _graphviz_pure() is None
                    and not os.environ.get("CI"),
                    reason="the notebook draws graphs: it needs graphviz-pure or `dot`")
def test_walkthrough_executes_without_errors():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    start = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    elapsed = time.perf_counter() - start
    problems = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                problems.append(f"cell {i}: {out.ename}: {out.evalue}")
            elif out.output_type == "stream" and out.name == "stderr":
                problems.append(f"cell {i} wrote to stderr: {out.text[:300]}")
    assert not problems, "\n".join(problems)
    images = sum("image/png" in out.get("data", {})
                 for cell in nb.cells for out in cell.get("outputs", []))
    assert images >= 8  # the graphs and the plots were drawn
    print(f"walkthrough.ipynb executed in {elapsed:.1f} s")


def test_committed_notebook_has_its_outputs():
    # A reader on GitHub sees the pictures without running anything.
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code)
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 8
