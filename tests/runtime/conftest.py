"""Shared setup for the runtime tests: skipped without torch; one thread (a shared machine)."""

from __future__ import annotations

import pytest

try:
    import torch
except ImportError:  # torch is an extra: pip install 'pipesl[torch]'
    torch = None
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    if torch is not None:
        torch.set_num_threads(1)
