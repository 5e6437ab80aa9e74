"""The testbed tests need torch (they train) and root (network namespaces)."""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError:  # torch is an extra: pip install 'pipesl[torch]'
    collect_ignore_glob = ["test_*.py"]
