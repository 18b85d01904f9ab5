"""The course assignments (assignments/) and their kit.

* ``python -m assignments validate`` over every assignment: each reference passes its graded tests,
  each generated student version fails all of them, every mutant is caught, student.ipynb is in
  sync with solution.ipynb (this is what CI relies on);
* the kit itself, on a two-task toy assignment built in a temporary folder: the student-version
  generator, the feedback messages, ``check()``, and ``grade`` on a folder of broken submissions
  (raising, hanging, printing megabytes, defining nothing, crashing the interpreter) next to a
  good one, with ``--json``.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# `assignments/` is a folder of the repository, not part of the installed minecp package.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from assignments.kit import GradingFailure, check, compare_masks, compare_tensors  # noqa: E402
from assignments.kit.discover import all_assignments  # noqa: E402
from assignments.kit.notebook import make_student, strip_solutions, submission_cells  # noqa: E402
from assignments.kit.runner import collect  # noqa: E402


def run_assignments(*args, timeout=900):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return subprocess.run([sys.executable, "-m", "assignments", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


# --- every assignment ---------------------------------------------------------------------------

def test_validate_every_assignment():
    names = [p.name for p in all_assignments()]
    assert len(names) >= 6, names
    proc = run_assignments("validate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in names:                       # all present in the table
        assert name in proc.stdout
    assert "all ok" in proc.stdout


# --- the generator ------------------------------------------------------------------------------

def test_strip_solutions_keeps_hints_and_indentation():
    source = textwrap.dedent('''\
        def f(x):
            """Doc."""
            ### BEGIN SOLUTION
            # HINT: add one
            # HINT: then return it
            y = x + 1
            return y
            ### END SOLUTION


        def g():
            ### BEGIN SOLUTION
            return 2
            ### END SOLUTION
        ''')
    assert strip_solutions(source) == textwrap.dedent('''\
        def f(x):
            """Doc."""
            # HINT: add one
            # HINT: then return it
            raise NotImplementedError()


        def g():
            raise NotImplementedError()''')


@pytest.mark.parametrize("bad", ["### BEGIN SOLUTION\nx = 1\n", "x = 1\n### END SOLUTION\n",
                                 "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n"])
def test_strip_solutions_rejects_unbalanced_markers(bad):
    with pytest.raises(ValueError, match="SOLUTION"):
        strip_solutions(bad)


def test_make_student_clears_outputs_and_keeps_markdown():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Task\n### BEGIN SOLUTION is only text here"),
                nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION",
                                          execution_count=3,
                                          outputs=[nbformat.v4.new_output("stream", text="1")])]
    student = make_student(nb)
    assert student.cells[0].source == nb.cells[0].source
    assert student.cells[1].source == "def f():\n    raise NotImplementedError()"
    assert student.cells[1].outputs == [] and student.cells[1].execution_count is None
    assert nb.cells[1].execution_count == 3      # the solution itself is untouched


def test_submission_cells_skip_check_and_demo_cells(tmp_path):
    nb = nbformat.v4.new_notebook()
    demo = nbformat.v4.new_code_cell("slow_plot()")
    demo.metadata["tags"] = ["demo"]
    nb.cells = [nbformat.v4.new_code_cell("%matplotlib inline\nx = 1"), nbformat.v4.new_code_cell('check("t")'),
                demo, nbformat.v4.new_code_cell("y = 2")]
    nbformat.write(nb, tmp_path / "s.ipynb")
    assert submission_cells(tmp_path / "s.ipynb") == [("cell 1", "# %matplotlib inline\nx = 1"),
                                                       ("cell 4", "y = 2")]


# --- feedback -----------------------------------------------------------------------------------

def test_compare_tensors_message_says_what_differs():
    ref = torch.zeros(2, 3)
    yours = ref.clone()
    yours[1, 2] = 0.5
    with pytest.raises(GradingFailure) as err:
        compare_tensors(yours, ref, what="f(x)")
    text = str(err.value)
    assert "1 of 6 values differ" in text and "[1, 2]" in text and "0.5" in text
    with pytest.raises(GradingFailure, match=r"shape \(3, 2\) \(yours\) vs \(2, 3\)"):
        compare_tensors(torch.zeros(3, 2), ref, what="f(x)")
    with pytest.raises(GradingFailure, match="NaN: 1 in yours"):
        compare_tensors(torch.tensor([float("nan"), 0.0]), torch.zeros(2), what="f(x)")
    with pytest.raises(GradingFailure, match="forget to `return`"):
        compare_tensors(None, ref, what="f(x)")
    compare_tensors(torch.tensor([float("-inf"), 1.0]), torch.tensor([float("-inf"), 1.0]), what="ok")


def test_compare_masks_lists_cells_and_attaches_pictures():
    expected = torch.ones(4, 4, dtype=torch.bool).tril()
    with pytest.raises(GradingFailure) as err:
        compare_masks(expected.tril(-1), expected, what="causal_mask(4)")
    assert "4 of 16 cells differ" in str(err.value)
    assert "query 0, key 0: expected visible, yours hidden" in str(err.value)
    assert "X..." in str(err.value)                               # the text drawing
    (title, e, y), = err.value.pictures
    assert title == "causal_mask(4)" and torch.equal(e, expected)
    with pytest.raises(GradingFailure, match="dtype torch.int64"):
        compare_masks(expected.long(), expected, what="m")


# --- check() and grade on a toy assignment ------------------------------------------------------

# Plain Python (no torch): each grading subprocess then starts in well under a second.
TOY_TESTS = '''
from assignments.kit import GradingFailure, graded


@graded("add", points=2)
def test_add(sub):
    if sub.add(1, 2) != 3:
        raise GradingFailure(f"add(1, 2): yours {sub.add(1, 2)!r}, expected 3")


@graded("mask", points=1)
def test_mask(sub):
    assert sub.mask(3) == [[j <= i for j in range(3)] for i in range(3)], "mask(3) differs"


def test_not_graded(sub):
    raise AssertionError("tests without @graded are not run")
'''

GOOD = '''
def add(a, b):
    return a + b


def mask(n):
    return [[j <= i for j in range(n)] for i in range(n)]
'''


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A two-task assignment folder and a folder of submissions (one good, six broken)."""
    root = tmp_path_factory.mktemp("toy")
    folder = root / "99_toy"
    folder.mkdir()
    (folder / "test_graded.py").write_text(TOY_TESTS)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(GOOD)]
    nbformat.write(nb, folder / "solution.ipynb")
    subs = root / "submissions"
    subs.mkdir()
    (subs / "a_good.py").write_text(GOOD)
    (subs / "b_raises.py").write_text("raise RuntimeError('broken at import')\n")
    (subs / "c_hangs.py").write_text(GOOD + "\n\ndef add(a, b):\n    while True:\n        pass\n")
    (subs / "d_prints.py").write_text(GOOD + "\n\ndef mask(n):\n    while True:\n        print('x' * 1000)\n")
    (subs / "e_empty.py").write_text("# nothing\n")
    (subs / "f_crashes.py").write_text(GOOD + "\n\ndef mask(n):\n    import os\n    os._exit(3)\n")
    (subs / "g_not_a_notebook.ipynb").write_text("{ not json")
    (subs / "z_good_again.ipynb").write_text(nbformat.writes(nb))
    return folder, subs


def test_collect_two_assignments_in_one_process(toy, tmp_path):
    # Every assignment's test file is called test_graded.py: the second must not reuse the first.
    folder, _ = toy
    other = tmp_path / "98_other"
    other.mkdir()
    (other / "test_graded.py").write_text(
        "from assignments.kit import graded\n\n\n@graded('t', points=1)\ndef test_other(sub):\n    pass\n")
    assert [t for t, _, _ in collect(folder)] == ["test_add", "test_mask"]
    assert collect(other) == [("test_other", "t", 1)]
    assert [t for t, _, _ in collect(folder)] == ["test_add", "test_mask"]


def test_check_prints_a_table(toy, capsys):
    folder, _ = toy
    namespace = {}
    exec(GOOD.replace("j <= i", "j < i"), namespace)
    check("mask", namespace=namespace, folder=folder, pictures=False)
    out = capsys.readouterr().out
    assert "task 'mask': 0 / 1 points" in out and "test_mask  FAIL" in out
    assert "mask(3) differs (in test_mask, test_graded.py line" in out
    check(namespace=namespace, folder=folder, pictures=False)
    out = capsys.readouterr().out
    assert "all tasks: 2 / 3 points" in out and "test_not_graded" not in out
    with pytest.raises(ValueError, match="'add', 'mask'"):
        check("nope", namespace=namespace, folder=folder)


def test_grade_a_folder_with_broken_submissions(toy):
    folder, subs = toy
    proc = run_assignments("grade", str(folder), str(subs), "--json", "--timeout", "3",
                           "--output-limit", "100000", timeout=600)
    assert proc.returncode == 0, proc.stderr
    records = {Path(r["submission"]).stem: r for r in map(json.loads, proc.stdout.splitlines())}
    assert sorted(records) == ["a_good", "b_raises", "c_hangs", "d_prints", "e_empty", "f_crashes",
                               "g_not_a_notebook", "z_good_again"]
    for r in records.values():                 # the gradebook shape
        assert {"assignment", "score", "max", "tasks"} <= set(r) and r["assignment"] == "99"
        assert [t["name"] for t in r["tasks"]] == ["add", "mask"] and r["max"] == 3
        assert all(set(t) == {"name", "score", "max", "message"} for t in r["tasks"])
    tasks = {name: {t["name"]: t for t in r["tasks"]} for name, r in records.items()}
    assert records["a_good"]["score"] == records["z_good_again"]["score"] == 3
    assert tasks["a_good"]["add"]["message"] == ""
    assert records["b_raises"]["score"] == 0
    assert "broken at import" in tasks["b_raises"]["add"]["message"]
    assert records["c_hangs"]["score"] == 1 and "time limit" in tasks["c_hangs"]["add"]["message"]
    assert records["d_prints"]["score"] == 2 and "output limit" in tasks["d_prints"]["mask"]["message"]
    assert records["e_empty"]["score"] == 0 and "defines no `add`" in tasks["e_empty"]["add"]["message"]
    assert records["f_crashes"]["score"] == 2 and "crashed" in tasks["f_crashes"]["mask"]["message"]
    assert records["g_not_a_notebook"]["score"] == 0
    assert "could not read" in tasks["g_not_a_notebook"]["add"]["message"]


def test_grade_table_and_errors(toy):
    folder, subs = toy
    proc = run_assignments("grade", str(folder), str(subs / "a_good.py"))
    assert proc.returncode == 0, proc.stderr
    assert "a_good.py: 3 / 3 points" in proc.stdout
    proc = run_assignments("grade", "98", str(subs))
    assert proc.returncode == 2 and "unknown assignment '98'" in proc.stderr
    proc = run_assignments("grade", str(folder), str(subs / "missing.py"))
    assert proc.returncode == 2 and "no such submission" in proc.stderr
