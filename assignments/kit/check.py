"""``check("task name")``: a student's feedback loop inside the notebook.

It runs that task's graded tests against the notebook's own definitions, prints a table (test,
pass/fail, points) and, for each failing test, what differs ("yours vs reference"); when a test
attached pictures (masks, attention maps) it draws expected beside yours with the differing
cells marked.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .discover import find_from_cwd
from .runner import Submission, TestResult, run_tests


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def format_results(task: str | None, results: list[TestResult]) -> str:
    """The table ``check`` prints (messages indented under the failing test)."""
    got = sum(r.points for r in results if r.passed)
    total = sum(r.points for r in results)
    w = max([4] + [len(r.test) for r in results])
    title = f"task {task!r}" if task else "all tasks"
    lines = [f"{title}: {_num(got)} / {_num(total)} points",
             f"  {'test'.ljust(w)}  result  points"]
    for r in results:
        lines.append(f"  {r.test.ljust(w)}  {'pass' if r.passed else 'FAIL':6}  "
                     f"{_num(r.points if r.passed else 0)} / {_num(r.points)}")
        if not r.passed:
            lines.extend("      " + line for line in r.message.splitlines())
    return "\n".join(lines)


def draw(pictures: list) -> None:
    """Draw each ``(title, expected, yours)`` side by side, differing cells marked in red."""
    import matplotlib.pyplot as plt
    import torch

    for title, expected, yours in pictures:
        e, y = expected.detach().cpu(), yours.detach().cpu()
        is_mask = e.dtype == torch.bool and y.dtype == torch.bool
        if is_mask:
            diff = e != y
        else:
            e, y = e.double(), y.double()
            diff = ~torch.isclose(e, y, rtol=1e-4, atol=1e-5, equal_nan=True)
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), dpi=110)
        vmin = None if is_mask else float(torch.nan_to_num(torch.minimum(e, y)).min())
        vmax = None if is_mask else float(torch.nan_to_num(torch.maximum(e, y)).max())
        for ax, data, name in ((axes[0], e, "expected"), (axes[1], y, "yours")):
            im = ax.imshow(data.float().numpy(), cmap="Blues", vmin=vmin, vmax=vmax,
                           interpolation="nearest")
            if name == "yours":   # mark the differing cells on your side only
                rows, cols = diff.nonzero(as_tuple=True)
                ax.scatter(cols.numpy(), rows.numpy(), marker="x", color="red", s=18, linewidths=1)
            ax.set_title(name)
            ax.set_xlabel("key j")
            ax.set_ylabel("query i")
            if not is_mask:
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        d = axes[2].imshow(diff.float().numpy(), cmap="Reds", vmin=0, vmax=1, interpolation="nearest")
        axes[2].set_title(f"differs ({int(diff.sum())} cells)")
        axes[2].set_xlabel("key j")
        fig.colorbar(d, ax=axes[2], fraction=0.046, pad=0.04)
        fig.suptitle(title + ("  (dark = visible)" if is_mask else ""))
        fig.tight_layout()
        plt.show()


def check(task: str | None = None, *, namespace: dict | None = None,
          folder: str | Path | None = None, pictures: bool = True) -> None:
    """Run the graded tests of ``task`` (all tasks when ``None``) against your notebook.

    Args:
        task: a task name from the assignment's README points table, e.g. ``"causal mask"``.
        namespace: the definitions to test (default: the calling notebook's globals).
        folder: the assignment folder (default: found from the working folder, which is the
            notebook's folder in JupyterLab).
        pictures: draw expected beside yours for failing mask / attention-map comparisons.

    Raises:
        ValueError: ``task`` is not one of the assignment's tasks (the message lists them).

    Does nothing while a grader runs the notebook (``ASSIGNMENTS_GRADING`` is set).
    """
    if os.environ.get("ASSIGNMENTS_GRADING"):
        return
    namespace = sys._getframe(1).f_globals if namespace is None else namespace
    folder = Path(folder).resolve() if folder is not None else find_from_cwd()
    results, tasks = run_tests(folder, Submission(namespace), task=task, capture="sys")
    if task is not None and task not in tasks:
        raise ValueError(f"unknown task {task!r}; this assignment's tasks are: "
                         + ", ".join(repr(t) for t in tasks))
    print(format_results(task, results))
    if pictures:
        shown = [p for r in results if not r.passed
                 for p in getattr(r.exception, "pictures", [])]
        if shown:
            draw(shown[:3])
