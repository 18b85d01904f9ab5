"""The assignment kit: graded tests with feedback, a student-version generator, a grader.

Public API (what notebooks and ``test_graded.py`` files use):

* :func:`check` — in a notebook, run one task's graded tests against your code and print a table;
* :func:`graded` — mark a pytest test as part of a task, with its points;
* :func:`compare_tensors`, :func:`compare_masks` — comparisons whose failure says what differs;
* :class:`GradingFailure` — the AssertionError they raise.

The ``sub`` pytest fixture (the submission's definitions) comes from the kit's pytest plugin,
which is active whenever the tests are run by ``check``, ``grade`` or ``validate``.
Modules: ``feedback`` (comparisons), ``notebook`` (student generation, reading submissions),
``runner`` (pytest plugin), ``load`` (executing a submission with limits), ``worker`` and
``grade`` (one subprocess per submission), ``validate``, ``check``, ``cli``.
"""

from .check import check
from .feedback import GradingFailure, compare_masks, compare_tensors
from .runner import graded

__all__ = ["check", "graded", "compare_tensors", "compare_masks", "GradingFailure"]
