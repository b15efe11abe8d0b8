"""examples/quickstart.ipynb runs from top to bottom in a fresh kernel (the venv's interpreter: jupyter_client
starts the ``python3`` kernel with ``sys.executable``) and shows what it promises: the metrics table and the
equity curve. It is kept in git without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from unit_tests.conftest import REPO_ROOT

NOTEBOOK = REPO_ROOT / "examples" / "quickstart.ipynb"

pytestmark = pytest.mark.skipif(not NOTEBOOK.is_file(), reason="no examples/ here (the test image)")


@pytest.mark.unit
def test_the_notebook_is_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [], f"cell {cell.id} is stored with outputs"
        assert cell.execution_count is None, f"cell {cell.id} is stored with an execution count"


@pytest.mark.integration
@pytest.mark.slow
def test_the_notebook_trains_backtests_and_shows_the_report(tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no equity curve shown"
    tables = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("sharpe" in t and "buy_and_hold" in t and "max_drawdown" in t for t in tables), "no metrics table"
    assert any("<iframe" in t and "report.html" in t for t in tables), "report.html not shown"

    out = tmp_path / "quickstart-output"  # everything under the kernel's working folder, nothing in the checkout
    assert (out / "trained_models" / "quickstart" / "bundle.json").is_file()
    (report,) = (out / "results").glob("quickstart__*")
    assert {"metrics.json", "equity.png", "report.html"} <= {p.name for p in report.iterdir()}
