"""Every notebook in notebooks/ runs top to bottom (they call the public API only), as a user runs it: in a kernel
of its own, nothing added to its cells; the kernel's environment puts what the notebook writes with tempfile under
a folder of pytest's.

The notebooks run two kernels at a time, one thread each (OMP_NUM_THREADS=1: the notebooks already train and
generate on one thread): each kernel is a process, so on two cores two notebooks take about the time of the longer
one. Each test then checks its own notebook.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
KERNELS_AT_ONCE = 2
CELL_TIMEOUT_S = 300


async def _execute_all(paths: list[Path], root: Path) -> dict[str, nbformat.NotebookNode | Exception]:
    """{notebook name: the notebook with its outputs, or what stopped it}, KERNELS_AT_ONCE kernels at a time."""
    gate = asyncio.Semaphore(KERNELS_AT_ONCE)

    async def execute(path: Path) -> nbformat.NotebookNode | Exception:
        async with gate:
            folder = root / path.stem
            folder.mkdir()
            notebook = nbformat.read(path, as_version=4)
            client = NotebookClient(
                notebook,
                timeout=CELL_TIMEOUT_S,
                kernel_name="python3",
                resources={"metadata": {"path": str(folder)}},
            )
            try:
                # The kernel's TMPDIR: what the notebook writes with tempfile goes into pytest's folder. One
                # thread a kernel: two kernels with a thread pool each on two cores slow each other down.
                await client.async_execute(env={**os.environ, "TMPDIR": str(folder), "OMP_NUM_THREADS": "1"})
            except Exception as err:  # noqa: BLE001 - reported by this notebook's test, not by the others'
                return err
            return notebook

    done = await asyncio.gather(*(execute(path) for path in paths))
    return {path.stem: result for path, result in zip(paths, done, strict=True)}


@pytest.fixture(scope="module")
def executed_notebook(request, tmp_path_factory):
    """name -> the notebook run (with its outputs) or what stopped it, for this session's selected
    `test_notebook_runs` cases, all executed on first use."""
    selected = [
        item.callspec.params["path"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_notebook_runs" and hasattr(item, "callspec")
    ]
    results = asyncio.run(_execute_all(selected, tmp_path_factory.mktemp("notebooks")))

    def executed(name: str) -> nbformat.NotebookNode | Exception:  # a function: a failure report stays short
        return results[name]

    return executed


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the first test waits for every notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, executed_notebook):
    notebook = executed_notebook(path.stem)
    if isinstance(notebook, Exception):
        raise notebook
    errors = [
        o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    """Outputs are made by running, not kept in the repo (they would go stale and bloat diffs)."""
    notebook = nbformat.read(path, as_version=4)
    kept = [
        i
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not kept, f"{path.name}: cells {kept} hold outputs; strip them before committing"
