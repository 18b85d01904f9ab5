"""Notebook source: the student version generated from the solution, and a submission's cells.

The solution marks reference code with nbgrader's markers, so an instructor who uses nbgrader can
import ``solution.ipynb`` as it is::

    def causal_mask(n):
        ### BEGIN SOLUTION
        # HINT: torch.tril on a ones matrix
        return torch.ones(n, n, dtype=torch.bool).tril()
        ### END SOLUTION

:func:`make_student` keeps the ``# HINT:`` lines at the top of each region and replaces the rest
by ``raise NotImplementedError()`` at the region's indentation; outputs are cleared. The result is
deterministic, so ``validate`` can demand that ``student.ipynb`` is byte-for-byte what
``generate`` would write.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
HINT = "# HINT:"
# Cells with this tag (plots, heavy demos) are not executed by the grader.
DEMO_TAG = "demo"
_CHECK_CALL = re.compile(r"^\s*check\(", re.MULTILINE)


def strip_solutions(source: str) -> str:
    """Replace each solution region of a cell's source by its hints + ``raise NotImplementedError()``.

    Raises:
        ValueError: a region is not closed, or an END comes without a BEGIN.
    """
    out, inside, kept_hints = [], False, False
    for n, line in enumerate(source.splitlines(), 1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"line {n}: nested {BEGIN!r}")
            inside, kept_hints, indent = True, True, line[: len(line) - len(line.lstrip())]
            continue
        if stripped == END:
            if not inside:
                raise ValueError(f"line {n}: {END!r} without {BEGIN!r}")
            if kept_hints:   # the region had only hints (or nothing): still raise
                out.append(f"{indent}raise NotImplementedError()")
            inside = False
            continue
        if inside:
            if kept_hints and stripped.startswith(HINT):
                out.append(line)
            elif kept_hints:
                out.append(f"{indent}raise NotImplementedError()")
                kept_hints = False
            continue
        out.append(line)
    if inside:
        raise ValueError(f"{BEGIN!r} is never closed by {END!r}")
    return "\n".join(out)


def make_student(solution):
    """The student notebook (an ``nbformat.NotebookNode``): solution regions stripped, outputs and
    execution counts cleared."""
    import nbformat   # imported here: its JSON-schema machinery is slow to import

    student = nbformat.from_dict(solution)
    for cell in student.cells:
        if cell.cell_type == "code":
            try:
                cell.source = strip_solutions(cell.source)
            except ValueError as err:
                raise ValueError(f"cell {cell.get('id', '?')}: {err}") from None
            cell.outputs, cell.execution_count = [], None
    student.metadata.pop("widgets", None)
    return student


def student_text(solution_path: Path) -> str:
    """What ``student.ipynb`` must contain, as text (nbformat's stable JSON writer)."""
    import nbformat

    return nbformat.writes(make_student(nbformat.read(solution_path, as_version=4))) + "\n"


def generate(folder: Path) -> Path:
    """Write ``folder/student.ipynb`` from ``folder/solution.ipynb``; return its path."""
    target = folder / "student.ipynb"
    target.write_text(student_text(folder / "solution.ipynb"), encoding="utf-8")
    return target


def in_sync(folder: Path) -> bool:
    """True when ``student.ipynb`` is exactly what :func:`generate` would write."""
    target = folder / "student.ipynb"
    return target.exists() and target.read_text(encoding="utf-8") == student_text(folder / "solution.ipynb")


def _uncomment_magics(source: str) -> str:
    # IPython magics and shell escapes (`%matplotlib inline`, `!pip ...`) are not Python; the
    # grader runs plain Python, so they become comments.
    return "\n".join("# " + l if l.lstrip().startswith(("%", "!")) else l for l in source.splitlines())


def submission_cells(path: Path) -> list[tuple[str, str]]:
    """The code a grader executes from a submission, as ``(label, source)`` pairs.

    ``.ipynb``: every code cell except those tagged ``demo`` and those calling ``check(``.
    ``.py``: split into cells at ``# %%`` lines (jupytext's percent format), else one cell.

    Raises:
        ValueError: unknown suffix, or a .ipynb without a list of cells (and json.JSONDecodeError,
            a ValueError too, for a file that is not JSON).
    """
    path = Path(path)
    if path.suffix == ".ipynb":
        # Read as plain JSON (nbformat v4: "cells", each with "cell_type", "source" as a string
        # or a list of lines): the grader needs no schema validation, and starts faster without.
        nb = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise ValueError(f"{path.name} is not an nbformat 4 notebook (no list of cells)")
        cells = []
        for i, cell in enumerate(nb["cells"], 1):
            if cell.get("cell_type") != "code":
                continue
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            if DEMO_TAG in cell.get("metadata", {}).get("tags", []) or _CHECK_CALL.search(source):
                continue
            cells.append((f"cell {i}", _uncomment_magics(source)))
        return cells
    if path.suffix == ".py":
        text, cells, current, start = path.read_text(encoding="utf-8"), [], [], 1
        for n, line in enumerate(text.splitlines(), 1):
            if line.startswith("# %%"):
                if any(l.strip() for l in current):
                    cells.append((f"lines {start}-{n - 1}", "\n".join(current)))
                current, start = [""] * n, n + 1   # pad so line numbers in tracebacks stay right
                continue
            current.append(line)
        if any(l.strip() for l in current):
            cells.append((f"lines {start}-{len(text.splitlines())}", "\n".join(current)))
        return cells
    raise ValueError(f"a submission must be a .ipynb or .py file, got {path.name!r}")
