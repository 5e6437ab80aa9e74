"""Shared setup for the torch tests: skipped without torch; one thread (a shared machine)."""

from __future__ import annotations

import json

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


@pytest.fixture(scope="session")
def resnet50_cli_profile() -> dict:
    """``pipesl profile resnet50 --input-shape 3x224x224 --json`` (run once per session)."""
    from profiling_cli import run_cli

    return json.loads(run_cli("profile", "resnet50", "--input-shape", "3x224x224", "--json"))


@pytest.fixture(scope="session")
def vgg16_cli_profile() -> dict:
    """``pipesl profile vgg16 --input-shape 3x224x224 --json`` (run once per session)."""
    from profiling_cli import run_cli

    return json.loads(run_cli("profile", "vgg16", "--input-shape", "3x224x224", "--json"))
