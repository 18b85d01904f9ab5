"""``validate``: prove, for each assignment, that its graded tests mean something.

* the reference (``solution.ipynb``) passes every graded test, and all its cells run;
* the generated ``student.ipynb`` fails every graded test (no test passes vacuously);
* every mutant in ``mutants/*.py`` (a deliberately wrong solution, executed after the solution's
  cells) fails at least one test, and there are at least two mutants;
* ``student.ipynb`` is exactly what ``generate`` writes from ``solution.ipynb``.

All variants of one assignment run in one grading subprocess (the same path as ``grade``).
"""

from __future__ import annotations

import time
from pathlib import Path

from .grade import run_worker
from .notebook import in_sync
from .runner import collect

MIN_MUTANTS = 2


def validate_one(folder: Path, time_limit: float = 120.0) -> dict:
    """Validate one assignment folder.

    Returns:
        ``{"assignment", "tests", "points", "reference", "student", "mutants": {name: [tests that
        caught it]}, "in_sync", "problems": [str], "ok": bool, "seconds"}``.
    """
    start = time.perf_counter()
    problems: list[str] = []
    try:
        tests = collect(folder)
    except Exception as err:
        return {"assignment": folder.name, "ok": False, "problems": [str(err)], "tests": 0,
                "points": 0, "reference": "-", "student": "-", "mutants": {}, "in_sync": False,
                "seconds": round(time.perf_counter() - start, 1)}
    names = [t for t, _, _ in tests]
    mutants = sorted((folder / "mutants").glob("*.py")) if (folder / "mutants").is_dir() else []
    variants = [{"name": "reference", "submission": str(folder / "solution.ipynb"), "mutant": None},
                {"name": "student", "submission": str(folder / "student.ipynb"), "mutant": None}]
    variants += [{"name": f"mutant {m.stem}", "submission": str(folder / "solution.ipynb"),
                  "mutant": str(m)} for m in mutants]
    runs = run_worker(folder, variants, len({t for _, t, _ in tests}), time_limit=time_limit)

    def outcome(run: dict) -> dict[str, dict]:
        return {r["test"]: r for r in run["results"]}

    ref = outcome(runs["reference"])
    ref_pass = [n for n in names if n in ref and ref[n]["passed"]]
    for n in names:
        if n not in ref:
            problems.append(f"reference: {n} did not run ({runs['reference']['error'] or 'no result'})")
        elif not ref[n]["passed"]:
            problems.append(f"reference fails {n}: {ref[n]['message'].splitlines()[0]}")
    for e in runs["reference"]["load_errors"]:
        problems.append(f"reference: {e}")
    stu = outcome(runs["student"])
    stu_fail = [n for n in names if n in stu and not stu[n]["passed"]]
    for n in names:
        if n in stu and stu[n]["passed"]:
            problems.append(f"student version passes {n}: the test passes without the solution")
        elif n not in stu:
            problems.append(f"student: {n} did not run ({runs['student']['error'] or 'no result'})")
    caught = {}
    for m in mutants:
        run = outcome(runs[f"mutant {m.stem}"])
        caught[m.stem] = [n for n in names if n in run and not run[n]["passed"]]
        if not caught[m.stem]:
            problems.append(f"mutant {m.stem} passes every test: no test catches it")
    if len(mutants) < MIN_MUTANTS:
        problems.append(f"only {len(mutants)} mutant(s) in mutants/ (at least {MIN_MUTANTS} needed)")
    try:
        sync = in_sync(folder)
    except ValueError as err:
        sync = False
        problems.append(f"solution.ipynb: {err}")
    if not sync:
        problems.append("student.ipynb is not what `python -m assignments generate "
                        f"{folder.name[:2]}` writes: regenerate it")
    if not (folder / "README.md").exists():
        problems.append("no README.md (what the assignment teaches, and its points table)")
    return {"assignment": folder.name, "tests": len(names), "points": sum(p for _, _, p in tests),
            "reference": f"{len(ref_pass)}/{len(names)} pass",
            "student": f"{len(stu_fail)}/{len(names)} fail",
            "mutants": caught, "in_sync": sync, "problems": problems, "ok": not problems,
            "seconds": round(time.perf_counter() - start, 1)}


def format_table(reports: list[dict]) -> str:
    """The validate table: one row per assignment, then each mutant and each problem."""
    w = max([10] + [len(r["assignment"]) for r in reports])
    lines = [f"{'assignment'.ljust(w)}  tests  points  reference   student     mutants caught  "
             "in sync  time    ok"]
    for r in reports:
        m = r["mutants"]
        caught = f"{sum(1 for v in m.values() if v)}/{len(m)}"
        pts = r["points"]
        pts = int(pts) if float(pts).is_integer() else pts
        lines.append(f"{r['assignment'].ljust(w)}  {str(r['tests']).rjust(5)}  {str(pts).rjust(6)}  "
                     f"{r['reference'].ljust(10)}  {r['student'].ljust(10)}  {caught.rjust(14)}  "
                     f"{'yes' if r['in_sync'] else 'NO':7}  {str(r['seconds']).rjust(5)} s  "
                     f"{'ok' if r['ok'] else 'FAIL'}")
        for name, tests in m.items():
            lines.append(f"    mutant {name}: " + (f"caught by {', '.join(tests)}" if tests else "NOT caught"))
        for p in r["problems"]:
            lines.append(f"    PROBLEM: {p}")
    return "\n".join(lines)
