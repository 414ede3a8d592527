"""Every notebook executes on its small grid (RLSIM_NOTEBOOK_SMALL=1) and renders its plots.

Notebooks live as jupytext percent scripts (``notebooks/*.py``, the diffable source) paired with
``.ipynb``, committed executed (with their figures). With nbclient + ipykernel (in the ``test`` extra) the .ipynb runs in a real kernel and every
figure must come out as an image; without them the percent script runs as plain Python (runpy).
"""

import importlib.util
import os
import runpy
from pathlib import Path

import pytest

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
SCRIPTS = sorted(NB_DIR.glob("*.py"))
HAS_KERNEL = all(importlib.util.find_spec(m) is not None for m in ("nbclient", "nbformat", "ipykernel"))


def test_there_are_notebooks():
    assert SCRIPTS, "notebooks/*.py (jupytext percent scripts) missing"
    for s in SCRIPTS:
        assert s.read_text().lstrip().startswith("# ---") and "# %%" in s.read_text(), f"{s.name}: not a percent script"
        assert s.with_suffix(".ipynb").is_file(), f"{s.name}: no paired .ipynb (jupytext --sync {s.name})"


@pytest.mark.skipif(importlib.util.find_spec("jupytext") is None, reason="jupytext not installed")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_ipynb_in_sync_with_script(script):
    import jupytext

    a = jupytext.read(script)
    b = jupytext.read(script.with_suffix(".ipynb"))
    src = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]  # noqa: E731
    assert src(a) == src(b), f"{script.name} and its .ipynb differ: run `jupytext --sync notebooks/{script.name}`"
    # committed executed, so that opening it shows the figures (RLSIM_NOTEBOOK_SIZE=moderate or full size)
    outs = [o for c in b.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outs), f"{script.stem}.ipynb: commit it executed, with figures"
    assert not any(o.get("output_type") == "error" for o in outs), f"{script.stem}.ipynb: a cell failed"
    assert all(c.get("execution_count") for c in b.cells if c.cell_type == "code"), f"{script.stem}.ipynb: not all run"


@pytest.fixture
def small_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RLSIM_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("RLSIM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RLSIM_NOTEBOOK_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline" if HAS_KERNEL else "Agg")
    # the kernel runs in a temporary folder: make it import this checkout's rlsim, as the tests do
    repo = str(NB_DIR.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p))
    return tmp_path


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_notebook_executes(script, small_env):
    figures = small_env / "figures"
    if HAS_KERNEL:
        import nbclient
        import nbformat

        nb = nbformat.read(script.with_suffix(".ipynb"), as_version=4)
        client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                         resources={"metadata": {"path": str(small_env)}})
        client.execute()  # raises CellExecutionError (with the traceback) if a cell fails
        images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if "image/png" in o.get("data", {})]
        assert images, f"{script.name}: no figure rendered inline"
    else:
        cwd = os.getcwd()
        os.chdir(small_env)
        try:
            runpy.run_path(str(script), run_name="__main__")
        finally:
            os.chdir(cwd)
    pngs = list(figures.glob("*.png"))
    assert pngs, f"{script.name}: wrote no figures"
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
