"""Running an assignment's graded pytest tests against a submission's namespace, in this process.

``@graded(task, points)`` marks a test; the :class:`GradingPlugin` gives every test the ``sub``
fixture (the submission's definitions, attribute access), enforces a time limit per task, and
records one :class:`TestResult` per test with a message written for the student.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import pytest

from .feedback import GradingFailure

TEST_FILE = "test_graded.py"
# Code objects compiled from a submission are named "<cell 3>", "<lines 1-20>", "<mutant x>".
SUBMISSION_FILES = ("<cell", "<lines", "<mutant")


def graded(task: str, points: float):
    """Mark a test as part of graded ``task`` worth ``points`` (a task scores the sum of its
    passing tests' points). Usage: ``@graded("causal mask", points=2)``."""
    if not isinstance(task, str) or not task:
        raise ValueError(f"task must be a non-empty str, got {task!r}")
    if not isinstance(points, (int, float)) or points <= 0:
        raise ValueError(f"points must be a positive number, got {points!r}")
    return pytest.mark.graded(task=task, points=points)


class Submission:
    """A submission's definitions with attribute access (``sub.causal_mask``).

    A missing name fails the test with a message that says so, and lists the cells that raised
    while the submission was loaded (the usual reason a function is missing).
    """

    def __init__(self, namespace: dict, load_errors: list[str] | None = None):
        object.__setattr__(self, "_ns", namespace)
        object.__setattr__(self, "_load_errors", list(load_errors or []))

    def __getattr__(self, name: str):
        if name.startswith("__"):      # protocol probes (copy, pickle, numpy...) get the usual answer
            raise AttributeError(name)
        try:
            return self._ns[name]
        except KeyError:
            why = ""
            if self._load_errors:
                why = " — while loading your submission: " + "; ".join(self._load_errors[:3])
            raise GradingFailure(f"your submission defines no `{name}`{why}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._ns


@dataclasses.dataclass
class TestResult:
    """One graded test's outcome. ``exception`` is only kept in-process (for pictures)."""
    test: str
    task: str
    points: float
    passed: bool
    message: str = ""
    seconds: float = 0.0
    exception: BaseException | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        return {"test": self.test, "task": self.task, "points": self.points, "passed": self.passed,
                "message": self.message, "seconds": round(self.seconds, 3)}


class TaskTimeout(Exception):
    """Raised inside a test when its task's time budget is spent."""


def _where(tb) -> str:
    # The innermost frame that belongs to the submission (its cells are compiled as "<cell N>"),
    # else the innermost frame of all: that is where the student should look.
    frames = traceback.extract_tb(tb)
    mine = [f for f in frames if f.filename.startswith(SUBMISSION_FILES)]
    f = (mine or frames or [None])[-1]
    if f is None:
        return ""
    place = f.filename.strip("<>") if f.filename.startswith(SUBMISSION_FILES) else Path(f.filename).name
    return f" (in {f.name}, {place} line {f.lineno})"


def describe(exc: BaseException, task: str = "", limit: float | None = None) -> str:
    """A one-paragraph message for a test's exception, written for the student."""
    if isinstance(exc, GradingFailure):
        return str(exc)
    if isinstance(exc, NotImplementedError):
        return "not implemented yet (NotImplementedError" + _where(exc.__traceback__) + ")"
    if isinstance(exc, TaskTimeout):
        return str(exc)
    if isinstance(exc, AssertionError):
        text = str(exc).strip() or "an assertion failed"
        return text.splitlines()[0][:300] + _where(exc.__traceback__)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}{_where(exc.__traceback__)}"


class GradingPlugin:
    """pytest plugin: the ``sub`` fixture, task selection, per-task time limit, result records.

    Args:
        submission: the :class:`Submission` handed to tests as ``sub``.
        task: run only this task's tests (``None``: all).
        time_limit: seconds per task (``None``: no limit). Uses SIGALRM, so it interrupts Python
            code (an infinite loop) but not one long C call; the grader's subprocess time limit
            is the backstop for that.
    """

    def __init__(self, submission: Submission, task: str | None = None,
                 time_limit: float | None = None, on_result=None):
        self.submission, self.task, self.time_limit = submission, task, time_limit
        self.results: list[TestResult] = []
        self.spent: dict[str, float] = {}
        self.tasks_seen: list[str] = []
        self.collected: list[tuple[str, str, float]] = []
        self.on_result = on_result

    @pytest.fixture
    def sub(self):
        """The submission's definitions (``sub.causal_mask``)."""
        return self.submission

    def pytest_configure(self, config):
        config.addinivalue_line("markers", "graded(task, points): a graded test of an assignment task")

    def pytest_collection_modifyitems(self, config, items):
        keep, drop = [], []
        for item in items:
            mark = item.get_closest_marker("graded")
            if mark is not None:
                self.collected.append((item.name, mark.kwargs["task"], mark.kwargs["points"]))
        for item in items:
            mark = item.get_closest_marker("graded")
            if mark is None:
                drop.append(item)      # helpers / ungraded tests are not run by the grader
                continue
            if mark.kwargs["task"] not in self.tasks_seen:
                self.tasks_seen.append(mark.kwargs["task"])
            (keep if self.task is None or mark.kwargs["task"] == self.task else drop).append(item)
        items[:] = keep
        if drop:
            config.hook.pytest_deselected(items=drop)

    def _timeout(self, task: str) -> TaskTimeout:
        return TaskTimeout(f"time limit exceeded: task {task!r} may take {self.time_limit:g} s in "
                           "all (an infinite loop, or a very slow implementation?)")

    def pytest_runtest_setup(self, item):
        task = item.get_closest_marker("graded").kwargs["task"]
        if self.time_limit is not None and self.spent.get(task, 0.0) >= self.time_limit:
            raise self._timeout(task)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        task = item.get_closest_marker("graded").kwargs["task"]
        use_alarm = self.time_limit is not None and hasattr(signal, "SIGALRM")
        if use_alarm:
            def on_alarm(signum, frame):
                raise self._timeout(task)

            previous = signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, max(1e-3, self.time_limit - self.spent.get(task, 0.0)))
        start = time.perf_counter()
        try:
            yield
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
            self.spent[task] = self.spent.get(task, 0.0) + time.perf_counter() - start

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        mark = item.get_closest_marker("graded")
        if report.when == "call" or (report.when == "setup" and report.failed):
            exc = call.excinfo.value if call.excinfo is not None else None
            if report.skipped:
                exc = exc or RuntimeError("skipped")
            result = TestResult(test=item.name, task=mark.kwargs["task"],
                                points=mark.kwargs["points"], passed=report.passed,
                                message="" if report.passed else describe(exc),
                                seconds=call.duration, exception=exc)
            self.results.append(result)
            if self.on_result is not None:
                self.on_result(result)


def forget_test_module(folder: Path) -> None:
    """Drop every cached ``test_graded`` module (of this or another assignment) from
    ``sys.modules``. pytest's importlib mode names each of them after its path relative to the
    rootdir, i.e. plain ``test_graded``: a cached one would be reused for the next folder, and
    an edited file would not be re-read."""
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and os.path.basename(file) == TEST_FILE:
            del sys.modules[name]


def run_tests(folder: Path, submission: Submission, task: str | None = None,
              time_limit: float | None = None, on_result=None,
              capture: str = "sys") -> tuple[list[TestResult], list[str]]:
    """Run ``folder/test_graded.py`` against ``submission``; return (results, all task names).

    ``capture``: pytest's ``--capture`` ("sys" hides what the submission prints; the grader
    uses "no" so its own capped ``sys.stdout`` counts the output).

    Raises:
        FileNotFoundError: no ``test_graded.py`` in ``folder``.
        RuntimeError: pytest could not collect the tests (an error in the test file itself).
    """
    folder = Path(folder).resolve()
    path = folder / TEST_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {TEST_FILE} in {folder}")
    forget_test_module(folder)
    plugin = GradingPlugin(submission, task=task, time_limit=time_limit, on_result=on_result)
    args = [str(path), "-p", "no:cacheprovider", "-p", "no:nbval", "--import-mode=importlib",
            f"--capture={capture}", "-p", "no:terminal", "--rootdir", str(folder), "-c", os.devnull,
            "-W", "ignore::DeprecationWarning"]
    code = pytest.main(args, plugins=[plugin])
    if code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR) or (
            code == pytest.ExitCode.INTERRUPTED and not plugin.results):
        raise RuntimeError(f"pytest could not run {path} (exit code {int(code)}): "
                           "is the test file itself broken?")
    return plugin.results, plugin.tasks_seen


def collect(folder: Path) -> list[tuple[str, str, float]]:
    """The graded tests of ``folder/test_graded.py`` as ``(test, task, points)``, in file order.

    Raises:
        RuntimeError: the test file cannot be collected.
    """
    folder = Path(folder).resolve()
    forget_test_module(folder)
    plugin = GradingPlugin(Submission({}))
    code = pytest.main([str(folder / TEST_FILE), "--collect-only", "-p", "no:cacheprovider",
                        "-p", "no:nbval", "--import-mode=importlib", "-p", "no:terminal",
                        "--rootdir", str(folder), "-c", os.devnull], plugins=[plugin])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED) or not plugin.collected:
        raise RuntimeError(f"could not collect graded tests from {folder / TEST_FILE} "
                           f"(pytest exit code {int(code)})")
    return plugin.collected
