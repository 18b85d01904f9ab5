"""Grading submissions, each in its own subprocess and temporary working folder.

The subprocess (:mod:`assignments.kit.worker`) enforces a time limit per cell and per task and an
output limit; this side adds a wall-clock backstop (a hang inside one long C call cannot be
interrupted from within) and turns whatever came back into scores: a test that never reported
scores 0 with the reason ("stopped after 95 s", "crashed with exit code -9").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .discover import REPO
from .runner import collect

DEFAULT_TIME_LIMIT = 60.0        # seconds per task, and per cell while loading
DEFAULT_OUTPUT_LIMIT = 1 << 20   # bytes a submission may print (loading and tests each)


def run_worker(folder: Path, variants: list[dict], n_tasks: int,
               time_limit: float = DEFAULT_TIME_LIMIT,
               output_limit: int = DEFAULT_OUTPUT_LIMIT) -> dict[str, dict]:
    """Run the worker on ``variants`` (``{"name", "submission", "mutant"}``) of one assignment.

    Returns:
        ``{variant name: {"load_errors": [...], "results": [test dicts], "done": bool,
        "error": str or None}}``; ``error`` says why a variant did not finish.
    """
    out = {v["name"]: {"load_errors": [], "results": [], "done": False, "error": None}
           for v in variants}
    n_cells = 0
    for v in variants:
        try:
            from .notebook import submission_cells
            n_cells += len(submission_cells(Path(v["submission"]))) + 1
        except Exception:
            n_cells += 1
    # Backstop: every cell and every task may use its whole limit, plus start-up time.
    backstop = 60 + time_limit * (n_cells + n_tasks * len(variants))
    with tempfile.TemporaryDirectory(prefix="grade_") as tmp:
        tmp = Path(tmp)
        spec, results = tmp / "spec.json", tmp / "results.jsonl"
        spec.write_text(json.dumps({"folder": str(folder), "variants": variants,
                                    "time_limit": time_limit, "output_limit": output_limit}))
        work = tmp / "work"
        work.mkdir()
        env = dict(os.environ, ASSIGNMENTS_GRADING="1", MPLBACKEND="Agg",
                   PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in os.environ.get(
                       "PYTHONPATH", "").split(os.pathsep) if p]))
        env.setdefault("OMP_NUM_THREADS", "1")
        with open(tmp / "stderr.txt", "wb") as err_file:
            proc = subprocess.Popen([sys.executable, "-m", "assignments.kit.worker", str(spec),
                                     str(results)], cwd=work, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err_file,
                                    start_new_session=True)
            try:
                code, why = proc.wait(timeout=backstop), None
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                code, why = proc.wait(), f"the grading process was stopped after {backstop:.0f} s"
        if why is None and code != 0:
            with open(tmp / "stderr.txt", "rb") as f:
                f.seek(max(0, f.seek(0, 2) - 2000))
                tail = f.read().decode("utf-8", "replace").strip().splitlines()
            why = f"the grading process crashed (exit code {code})" + (f": {tail[-1]}" if tail else "")
        if results.exists():
            for line in results.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                v = out[rec.pop("variant")]
                event = rec.pop("event")
                if event == "loaded":
                    v["load_errors"] = rec["errors"]
                elif event == "result":
                    v["results"].append(rec)
                elif event == "done":
                    v["done"] = True
                elif event == "error":
                    v["error"] = rec["message"]
        for v in out.values():
            if not v["done"] and v["error"] is None:
                v["error"] = why or "the grading process ended early"
    return out


def score(assignment: str, tests: list[tuple[str, str, float]], run: dict) -> dict:
    """The gradebook record of one run: ``{"assignment", "score", "max", "tasks": [...]}``.

    Each task: ``{"name", "score", "max", "message"}``; the message lists the failing tests'
    messages, or why they were not run.
    """
    by_test = {r["test"]: r for r in run["results"]}
    tasks: dict[str, dict] = {}
    for test, task, points in tests:
        t = tasks.setdefault(task, {"name": task, "score": 0.0, "max": 0.0, "message": ""})
        t["max"] += points
        r = by_test.get(test)
        if r is not None and r["passed"]:
            t["score"] += points
            continue
        why = r["message"] if r is not None else f"not graded: {run['error']}"
        t["message"] += ("\n" if t["message"] else "") + f"{test}: {why}"
    for t in tasks.values():
        t["score"], t["max"] = _num(t["score"]), _num(t["max"])
    return {"assignment": assignment,
            "score": _num(sum(t["score"] for t in tasks.values())),
            "max": _num(sum(t["max"] for t in tasks.values())),
            "tasks": list(tasks.values())}


def _num(x: float):
    return int(x) if float(x).is_integer() else round(x, 3)


def submissions_in(path: Path) -> list[Path]:
    """``path`` itself, or the ``.ipynb`` / ``.py`` files directly inside a folder, sorted.

    Raises:
        FileNotFoundError: ``path`` does not exist, or the folder holds no submission.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such submission file or folder: {path}")
    if path.is_file():
        return [path]
    found = sorted(p for p in path.iterdir() if p.suffix in (".ipynb", ".py") and p.is_file()
                   and not p.name.startswith("."))
    if not found:
        raise FileNotFoundError(f"no .ipynb or .py submissions in {path}")
    return found


def grade(folder: Path, paths: list[Path], time_limit: float = DEFAULT_TIME_LIMIT,
          output_limit: int = DEFAULT_OUTPUT_LIMIT, on_record=None) -> list[dict]:
    """Grade each submission in its own subprocess; return one record per submission
    (:func:`score`'s shape plus ``"submission"`` and ``"seconds"``)."""
    tests = collect(folder)
    n_tasks = len({task for _, task, _ in tests})
    number = folder.name.split("_", 1)[0]
    records = []
    for path in paths:
        start = time.perf_counter()
        run = run_worker(folder, [{"name": "submission", "submission": str(Path(path).resolve()),
                                   "mutant": None}], n_tasks, time_limit, output_limit)["submission"]
        record = score(number, tests, run)
        record = {"assignment": record["assignment"], "submission": str(path), **{
            k: record[k] for k in ("score", "max", "tasks")}, "load_errors": run["load_errors"],
            "seconds": round(time.perf_counter() - start, 1)}
        records.append(record)
        if on_record is not None:
            on_record(record)
    return records


def format_record(record: dict, verbose: bool = False) -> str:
    """A per-task score table for one submission: each failing task's first message line
    (all of them with ``verbose``), then the cells that raised while the submission loaded."""
    name_w = max([4] + [len(t["name"]) for t in record["tasks"]])
    lines = [f"{record['submission']}: {record['score']} / {record['max']} points "
             f"({record['seconds']} s)",
             f"  {'task'.ljust(name_w)}  score  max  first failure"]
    for t in record["tasks"]:
        msg = t["message"].splitlines()
        first = msg[0] if msg else ""
        if not verbose and len(first) > 130:
            first = first[:127] + "..."
        lines.append(f"  {t['name'].ljust(name_w)}  {str(t['score']).rjust(5)}  {str(t['max']).rjust(3)}  {first}".rstrip())
        if verbose:
            lines.extend("  " + " " * (name_w + 14) + m for m in msg[1:])
    for e in record.get("load_errors", []):
        lines.append(f"  while loading: {e if verbose or len(e) <= 110 else e[:107] + '...'}")
    return "\n".join(lines)
