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

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
