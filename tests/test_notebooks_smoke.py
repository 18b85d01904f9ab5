"""Every notebook, run top to bottom the way CI can: GPU branch on the CPU, online, no network.

``pytest --nbval notebooks/`` checks the notebooks as a learner on this machine runs them
(CPU branch, offline data root). That leaves two paths no CI machine takes: the **GPU branch**
(a learner with a GPU) and the **online path** (a learner with no data root). This test runs
each notebook once more with

* ``MINECP_GPU_SMOKE=1``: :func:`minecp.course.course_scale` takes the GPU branch on the CPU,
  cut down (``TRITON_INTERPRET=1`` runs the Triton kernels in the interpreter);
* no data root (``MINECP_DATA_DIR`` unset) and ``tests/hub_standin`` on ``PYTHONPATH``:
  ``datasets.load_dataset(repo, config, split=...)`` is answered from the offline mirror as
  the Hub would answer it (configs the Hub lacks raise), with the HF offline switches on;
* every file the notebook writes in a temporary folder (data cache, matplotlib, Triton),
  never in the repository.

Outputs are not compared (that is nbval's job on the normal run): a notebook passes when every
cell runs. On failure the message names the cell, the head of its source and the error.
The time of each notebook is printed (``pytest -s``) and shows in ``--durations``.

Mirror for the stand-in: $MINECP_HUB_STANDIN_DIR, else $MINECP_DATA_DIR, else
../shared/data/hf beside the repository; skipped (with the reason) when none exists.
"""

import os
import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
STANDIN = ROOT / "tests" / "hub_standin"
MIRROR = Path(os.environ.get("MINECP_HUB_STANDIN_DIR") or os.environ.get("MINECP_DATA_DIR")
              or ROOT.parent / "shared" / "data" / "hf")
CELL_TIMEOUT_S = 300  # one cell; a smoke-mode notebook takes seconds to a minute in all
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="session")
def smoke_env(tmp_path_factory):
    """The kernel's environment: smoke mode, online through the stand-in, writes to a temp folder."""
    if not (MIRROR / "Salesforce").is_dir():
        pytest.skip(f"no hub-layout mirror at {MIRROR} for the Hub stand-in (set MINECP_HUB_STANDIN_DIR)")
    tmp = tmp_path_factory.mktemp("nb-smoke")
    env = {k: v for k, v in os.environ.items() if k not in ("MINECP_DATA_DIR", "MINECP_SMALL")}
    env.update(
        MINECP_GPU_SMOKE="1", TRITON_INTERPRET="1",
        MINECP_HUB_STANDIN_DIR=str(MIRROR), HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1",
        PYTHONPATH=os.pathsep.join([str(STANDIN), str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
        MINECP_CACHE_DIR=str(tmp / "cache"), MPLCONFIGDIR=str(tmp / "matplotlib"),
        TRITON_CACHE_DIR=str(tmp / "triton"), HF_DATASETS_CACHE=str(tmp / "hf-datasets"),
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    return env


def _failure_report(nb, name: str, error: Exception) -> str:
    """Which cell failed, the head of its source, and the error (last lines of the traceback)."""
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                head = "\n".join("    " + line for line in cell.source.splitlines()[:12])
                tb = ANSI.sub("", "\n".join(out.get("traceback", [])))
                tb = "\n".join(tb.splitlines()[-25:])
                return (f"{name}: cell {i} failed in smoke mode (GPU branch on CPU, online via the Hub stand-in)\n"
                        f"--- cell source (head) ---\n{head}\n--- error ---\n{out['ename']}: {out['evalue']}\n"
                        f"--- traceback (tail) ---\n{tb}")
    return f"{name}: {type(error).__name__}: {ANSI.sub('', str(error))[-3000:]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_mode_online(path, smoke_env):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    failure = None
    try:
        client.execute(env=smoke_env)
    except Exception as e:  # CellExecutionError, CellTimeoutError, DeadKernelError
        failure = _failure_report(nb, path.name, e)
    if failure:
        pytest.fail(failure, pytrace=False)
    print(f"\n[smoke] {path.name}: {time.perf_counter() - t0:.1f} s")
