"""The grading subprocess: ``python -m assignments.kit.worker SPEC.json RESULTS.jsonl``.

SPEC: ``{"folder": assignment folder, "variants": [{"name", "submission", "mutant"}],
"time_limit": seconds per task and per cell, "output_limit": bytes}``.
For each variant it loads the submission into a fresh namespace and runs the graded tests,
appending one JSON line per event to RESULTS as it goes (so a parent that has to kill a hung
worker still knows which tests finished):

    {"variant": name, "event": "loaded", "errors": [...]}
    {"variant": name, "event": "result", ...TestResult.to_json()}
    {"variant": name, "event": "done", "tasks": [...]}

It runs in a temporary working folder chosen by the parent, with ``ASSIGNMENTS_GRADING=1`` set
so that ``check()`` calls inside a submission do nothing.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import sys
from pathlib import Path


def test_imports(path: Path) -> list[str]:
    """Top-level module names imported by a test file (``import torch``, ``from minecp.x import y``)."""
    names = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return names


def main(argv: list[str]) -> int:
    spec_path, results_path = argv
    spec = json.loads(Path(spec_path).read_text())
    out = open(results_path, "a", buffering=1, encoding="utf-8")

    def emit(**record):
        out.write(json.dumps(record) + "\n")
        out.flush()

    # The modules the tests import (torch, minecp ...) are imported before any time limit
    # starts: their import time is not the student's.
    for module in test_imports(Path(spec["folder"]) / "test_graded.py"):
        try:
            importlib.import_module(module)
        except Exception:
            pass   # the test file's own import error is reported by pytest
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(os.environ.get("ASSIGNMENTS_THREADS", "1")))
    from .load import capped_output, load_submission
    from .runner import run_tests

    sink = capped_output(int(spec["output_limit"]))
    limit = spec.get("time_limit")
    for variant in spec["variants"]:
        name = variant["name"]
        if torch is not None:
            torch.manual_seed(0)
        sub = load_submission(Path(variant["submission"]),
                              Path(variant["mutant"]) if variant.get("mutant") else None,
                              cell_time_limit=limit)
        emit(variant=name, event="loaded", errors=sub._load_errors)
        sink.written = 0   # the output limit applies to loading and to the tests separately
        try:
            _, tasks = run_tests(Path(spec["folder"]), sub, time_limit=limit, capture="no",
                                 on_result=lambda r: emit(variant=name, event="result", **r.to_json()))
        except Exception as err:
            emit(variant=name, event="error", message=f"{type(err).__name__}: {err}")
            continue
        emit(variant=name, event="done", tasks=tasks)
    return 0


if __name__ == "__main__":
    os.environ["ASSIGNMENTS_GRADING"] = "1"
    sys.exit(main(sys.argv[1:]))
