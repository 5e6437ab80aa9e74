"""Helper modules of the suite (imported by bare name, e.g. ``from owners_cases import ...``)
must have names unique across tests/: pytest puts each test folder on sys.path, so two
``owners_cases.py`` in different folders shadow each other depending on collection order."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parent


def test_helper_module_names_are_unique() -> None:
    names = Counter(p.name for p in TESTS.rglob("*.py")
                    if not p.name.startswith("test_")
                    and p.name not in ("conftest.py", "__init__.py"))
    assert sum(names.values()) > 0  # the suite has helper modules at all
    assert [n for n, c in names.items() if c > 1] == []
