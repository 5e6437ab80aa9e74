"""Shared pytest setup for the whole suite.

``tests/strategies.py`` (seeded random problems and plans) and ``tests/reference.py`` (an
independent implementation of SPEC section 3) are helpers, not tests. This file puts the
``tests`` folder on ``sys.path`` so that every test folder can write::

    from strategies import random_problem, random_plan
    from reference import reference_evaluation
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``--dist loadfile`` (``make test``), the whole of ``tests/fuzz`` goes to one
    worker: its last file counts the cases the other files tallied in the same process."""
    if config.getoption("dist", None) != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FuzzTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.replace("\\", "/").startswith("tests/fuzz/"):
                return "tests/fuzz"
            return str(super()._split_scope(nodeid))

    return FuzzTogether(config, log)
