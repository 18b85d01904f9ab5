"""Loading a submission: execute its cells one by one into a fresh namespace, with limits.

Each cell runs in its own ``try``: a cell that raises is recorded ("cell 4: NameError ...") and
the next cell still runs, so one broken cell does not hide the functions defined by the others.
A cell that loops forever is stopped after ``cell_time_limit`` seconds; output beyond
``output_limit`` bytes raises :class:`OutputLimitExceeded` in the code that prints.
"""

from __future__ import annotations

import io
import signal
import sys
from pathlib import Path

from .notebook import submission_cells
from .runner import Submission, describe


class OutputLimitExceeded(Exception):
    """The submission printed more than the grader's output limit."""


class CappedSink(io.TextIOBase):
    """A write-only text stream that counts what is written (and drops it) up to ``limit`` bytes,
    then raises :class:`OutputLimitExceeded` on every further write."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit, self.written = limit, 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.written += len(text.encode("utf-8", "replace"))
        if self.written > self.limit:
            raise OutputLimitExceeded(f"output limit exceeded: the submission printed more than "
                                      f"{self.limit // 1024} KiB (a print() inside a loop?)")
        return len(text)


class CellTimeout(Exception):
    """A cell ran longer than the grader allows."""


def _run_cell(source: str, label: str, namespace: dict, time_limit: float | None) -> None:
    code = compile(source, f"<{label}>", "exec")
    use_alarm = time_limit is not None and hasattr(signal, "SIGALRM")
    if use_alarm:
        def on_alarm(signum, frame):
            raise CellTimeout(f"time limit exceeded: {label} ran longer than {time_limit:g} s")

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        exec(code, namespace)
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def load_submission(path: Path, mutant: Path | None = None,
                    cell_time_limit: float | None = None) -> Submission:
    """Execute a submission (.ipynb or .py) and, optionally, a mutant file after it.

    Args:
        path: the submission (see :func:`assignments.kit.notebook.submission_cells`).
        mutant: a ``.py`` file executed in the same namespace afterwards (validate's
            deliberately wrong solutions).
        cell_time_limit: seconds per cell (``None``: no limit).

    Returns:
        A :class:`Submission` whose ``_load_errors`` lists every cell that raised.
    """
    namespace: dict = {"__name__": "__submission__", "__builtins__": __builtins__}
    errors: list[str] = []
    try:
        cells = submission_cells(Path(path))
    except Exception as err:  # unreadable notebook: grade it as defining nothing
        errors.append(f"could not read {Path(path).name}: {type(err).__name__}: {err}")
        cells = []
    if mutant is not None:
        cells.append((f"mutant {Path(mutant).stem}", Path(mutant).read_text(encoding="utf-8")))
    for label, source in cells:
        try:
            _run_cell(source, label, namespace, cell_time_limit)
        except SyntaxError as err:
            errors.append(f"{label}: SyntaxError: {err.msg} (line {err.lineno})")
        except (Exception, CellTimeout) as err:
            errors.append(f"{label}: {describe(err)}")
        except SystemExit:
            errors.append(f"{label}: called exit()")
    return Submission(namespace, errors)


def capped_output(limit: int):
    """Replace ``sys.stdout``/``sys.stderr`` by one :class:`CappedSink`; return it."""
    sink = CappedSink(limit)
    sys.stdout = sys.stderr = sink
    return sink
