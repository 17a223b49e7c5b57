"""Runs walkthrough.ipynb top to bottom and saves it with the outputs it printed.

    python scripts/run_walkthrough.py

Run it in a venv made from the README's commands alone (no torch, no system Graphviz), so
the committed outputs are what a new user sees.
"""

from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat

NOTEBOOK = Path(__file__).resolve().parent.parent / "walkthrough.ipynb"


def main() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    nbformat.write(nb, NOTEBOOK)
    print(f"wrote {NOTEBOOK.name} with its outputs")


if __name__ == "__main__":
    main()
