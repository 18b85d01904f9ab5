"""Plain ``pytest assignments/NN_topic/test_graded.py`` has no submission to test.

The graded tests take the submission through the ``sub`` fixture, which only the kit's
grading plugin provides (``check()`` in a notebook, ``python -m assignments grade`` or
``validate``). Run directly, pytest would report 'fixture sub not found' for every test;
this hook says what to run instead.
"""

import pytest


def pytest_runtest_setup(item):
    plugins = item.config.pluginmanager.get_plugins()
    if not any(type(p).__name__ == "GradingPlugin" for p in plugins):
        pytest.fail("graded tests need a submission: call check(\"task name\") in the notebook, or run "
                    "`python -m assignments grade NN PATH` (or `validate NN`) from the repository root; "
                    "see assignments/README.md", pytrace=False)
