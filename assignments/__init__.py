"""Course assignments built on minecp: graded notebooks with a student / solution split.

Each ``assignments/NN_topic/`` folder holds ``solution.ipynb`` (the instructor's reference, with
nbgrader-style ``### BEGIN SOLUTION`` / ``### END SOLUTION`` regions), ``student.ipynb``
(generated from it), ``test_graded.py`` (pytest tests grouped into graded tasks, minecp as the
oracle) and ``mutants/`` (deliberately wrong solutions that the tests must catch).

The tooling lives in :mod:`assignments.kit`; the commands are::

    python -m assignments generate [NN ...]          # write student.ipynb from solution.ipynb
    python -m assignments validate [NN ...]          # prove the tests pass the reference and can fail
    python -m assignments grade NN PATH [--json]     # grade a notebook, a .py, or a folder of them

See ``assignments/README.md`` for the instructor's workflow.
"""
