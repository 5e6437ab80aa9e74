"""The core imports without torch (and without matplotlib): STYLE "The shape".

Runs in a fresh interpreter where ``import torch`` fails (``sys.modules["torch"] = None``), so
that a stray top-level torch import anywhere in the core breaks this test.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

CORE = ["pipesl", "pipesl.units", "pipesl.exceptions", "pipesl.problem", "pipesl.plan",
        "pipesl.cost"]
OPTIONAL_CORE = ["pipesl.solvers", "pipesl.schedules", "pipesl.sim"]

SCRIPT = """
import importlib, json, sys
sys.modules["torch"] = None          # any 'import torch' now raises ImportError
core, cli = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in core:
    importlib.import_module(name)
core_plotting = sorted(m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib."))
for name in cli:
    importlib.import_module(name)
torch_loaded = sorted(m for m in sys.modules if m.startswith("torch.") or
                      (m == "torch" and sys.modules[m] is not None))
print(json.dumps({"core_plotting": core_plotting, "torch": torch_loaded}))
"""


def test_core_and_cli_import_without_torch() -> None:
    core = CORE + [m for m in OPTIONAL_CORE if importlib.util.find_spec(m) is not None]
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(core), json.dumps(["pipesl.cli"])],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["torch"] == []
    # matplotlib belongs to plotting/ only; the planner and simulator do not load it.
    assert result["core_plotting"] == [], result["core_plotting"]
