"""``python -m assignments {generate,validate,grade}``: the instructor's commands."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import discover
from .grade import DEFAULT_OUTPUT_LIMIT, DEFAULT_TIME_LIMIT, format_record, grade, submissions_in
from .notebook import generate
from .validate import format_table, validate_one


def _folders(names: list[str]) -> list[Path]:
    return [discover.find(n) for n in names] if names else discover.all_assignments()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assignments", description=__doc__)
    cmds = parser.add_subparsers(dest="command", required=True)
    p = cmds.add_parser("generate", help="write student.ipynb from solution.ipynb")
    p.add_argument("assignments", nargs="*", help="numbers or folder names (default: all)")
    p = cmds.add_parser("validate", help="reference passes, student fails, mutants caught, in sync")
    p.add_argument("assignments", nargs="*", help="numbers or folder names (default: all)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per task (default 120)")
    p = cmds.add_parser("grade", help="grade a notebook, a .py file, or a folder of them")
    p.add_argument("assignment", help="number (01) or folder name")
    p.add_argument("path", help="a .ipynb, a .py, or a folder of them")
    p.add_argument("--json", action="store_true", help="one JSON object per submission, one per line")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIME_LIMIT,
                   help=f"seconds per task and per notebook cell (default {DEFAULT_TIME_LIMIT:g})")
    p.add_argument("--output-limit", type=int, default=DEFAULT_OUTPUT_LIMIT,
                   help=f"bytes a submission may print (default {DEFAULT_OUTPUT_LIMIT})")
    p.add_argument("-v", "--verbose", action="store_true", help="full failure messages")
    args = parser.parse_args(argv)

    try:
        if args.command == "generate":
            for folder in _folders(args.assignments):
                print(f"wrote {generate(folder).relative_to(discover.REPO)}")
            return 0
        if args.command == "validate":
            start, reports = time.perf_counter(), []
            for folder in _folders(args.assignments):
                reports.append(validate_one(folder, time_limit=args.timeout))
                print(f"validated {folder.name} ({reports[-1]['seconds']} s)", file=sys.stderr)
            if not reports:
                print("no assignments found", file=sys.stderr)
                return 1
            print(format_table(reports))
            ok = all(r["ok"] for r in reports)
            print(f"{'all ok' if ok else 'FAILED'}: {len(reports)} assignment(s) in "
                  f"{time.perf_counter() - start:.1f} s")
            return 0 if ok else 1
        folder = discover.find(args.assignment)
        paths = submissions_in(Path(args.path))
        if args.timeout <= 0:
            raise ValueError(f"--timeout must be > 0 seconds, got {args.timeout}")

        def show(record):
            if args.json:
                print(json.dumps(record), flush=True)
            else:
                print(format_record(record, args.verbose) + "\n", flush=True)

        records = grade(folder, paths, time_limit=args.timeout, output_limit=args.output_limit,
                        on_record=show)
        if len(records) > 1 and not args.json:
            w = max(len(r["submission"]) for r in records)
            print(f"{'submission'.ljust(w)}  score  max")
            for r in records:
                print(f"{r['submission'].ljust(w)}  {str(r['score']).rjust(5)}  {str(r['max']).rjust(3)}")
        return 0
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
