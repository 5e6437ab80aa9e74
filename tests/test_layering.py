"""The architecture's layering, enforced: an ast walk over every import in src/pipesl.

The documented order (DEVELOPERS.md, "Layout") is :data:`ORDER`: a package imports only
packages to its left. Lazy imports inside functions count like module-level ones; imports
under ``if TYPE_CHECKING:`` do not (they never run). ``pipesl/__init__.py`` and
``__main__.py`` are the public facade and the entry point, above everything. An exception is
allowed only when listed in :data:`ALLOWED` with its reason, and every listed exception must
still exist (a fixed one is removed from the list). The test also fails on any cycle between
packages and on any cycle between modules of the planner (``solvers``), lazy imports included.
A string that is exactly the dotted name of a pipesl module (``"pipesl.adapt.loop"``, what
``importlib.import_module`` is given) counts as an import too.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import networkx as nx

SRC = Path(__file__).resolve().parents[1] / "src" / "pipesl"

ORDER = [
    "exceptions", "units", "lazy",  # the exception tree, the one unit parser, lazy names
    "problem",                      # inputs: types, document readers, validation, events
    "plan",                         # the decisions: Stage, Plan
    "cost",                         # THE cost model: T, loads, memory, bounds, tables
    "schedules",                    # schedules as data, plan_table
    "sim",                          # discrete-event simulation of one iteration
    "solvers",                      # the planners (the makespan planner simulates)
    "models", "profiling",          # torch models and their profiler
    "runtime",                      # torch.distributed execution
    "probe",                        # measuring links and devices through the runtime
    "adapt",                        # re-planning when the network changes
    "testbed",                      # network namespaces around the runtime
    "experiments", "plotting", "cli",
]
"""Left to right: a package may import only packages standing to its left (and itself)."""

FACADE = {"__init__", "__main__"}

ALLOWED: dict[tuple[str, str], str] = {
    ("runtime/__init__.py", "adapt"):
        "the public facade keeps train_adaptive, AdaptConfig and AdaptiveResult importable "
        "from pipesl.runtime for callers written before the loop moved to adapt/loop.py; "
        "loaded by name on first use, never by the runtime itself",
}
"""(file under src/pipesl, imported package) -> why the import stands against the order."""


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                for sub in ast.walk(inner):
                    if hasattr(sub, "lineno"):
                        lines.add(sub.lineno)
    return lines


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_module(name: str) -> bool:
    if not name.startswith("pipesl.") or not all(p.isidentifier() for p in name.split(".")):
        return False
    path = SRC.parent / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports() -> list[tuple[str, str, str, int]]:
    """(file, importing module, imported pipesl module, line) for every runtime import."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_lines(tree)
        mod = _module_name(path)
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    targets = [".".join([*base, node.module] if node.module else base)]
                else:
                    targets = [node.module or ""]
                    targets += [f"{node.module}.{a.name}" for a in node.names
                                if (SRC.parent / f"{node.module}.{a.name}".replace(".", "/")
                                    ).exists()
                                or (SRC.parent / (f"{node.module}.{a.name}".replace(".", "/")
                                                  + ".py")).exists()]
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and _is_module(node.value):
                targets = [node.value]
            for t in targets:
                if t == "pipesl" or t.startswith("pipesl."):
                    out.append((str(path.relative_to(SRC)), mod, t, node.lineno))
    return out


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_package_is_placed_in_the_order() -> None:
    packages = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
                if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    assert packages - FACADE == set(ORDER), "add the new package to ORDER and DEVELOPERS.md"


def test_imports_follow_the_documented_order() -> None:
    rank = {p: i for i, p in enumerate(ORDER)}
    bad, used = [], set()
    for file, mod, target, line in imports():
        src, dst = _package(mod), _package(target)
        if src in FACADE or src == dst or target == "pipesl":  # `from pipesl import x`: x
            continue  # is listed on its own when it is a subpackage
        if rank[dst] < rank[src]:
            continue
        if (file, dst) in ALLOWED:
            used.add((file, dst))
            continue
        bad.append(f"{file}:{line} ({src}) imports {target} ({dst}), which stands to its right")
    assert not bad, "imports against the documented order:\n" + "\n".join(bad)
    stale = set(ALLOWED) - used
    assert not stale, f"allowed exceptions that no longer exist (remove them): {sorted(stale)}"


def _graph(edges: list[tuple[str, str]]) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_edges_from((a, b) for a, b in edges if a != b)
    return g


def test_no_cycle_between_packages() -> None:
    edges = defaultdict(list)
    for file, mod, target, line in imports():
        src, dst = _package(mod), _package(target)
        if src in FACADE or dst in FACADE or (file, dst) in ALLOWED:
            continue
        edges[(src, dst)].append(f"{file}:{line}")
    cycles = list(nx.simple_cycles(_graph(list(edges))))
    assert not cycles, "package cycles: " + "; ".join(
        " -> ".join([*c, c[0]]) + " via " + ", ".join(
            edges[(a, b)][0] for a, b in zip(c, c[1:] + c[:1], strict=True)) for c in cycles)


def test_no_cycle_between_planner_modules() -> None:
    """exact and milp, for one, no longer import each other (lazy imports included)."""
    edges = [(mod, target) for _, mod, target, _ in imports()
             if mod.startswith("pipesl.solvers.") and target.startswith("pipesl.solvers.")]
    cycles = list(nx.simple_cycles(_graph(edges)))
    assert not cycles, f"module cycles in pipesl.solvers: {cycles}"


def test_the_walk_sees_lazy_imports() -> None:
    """The walk must find imports inside functions, or the order test could not fail."""
    found = {(file, target) for file, _, target, _ in imports()}
    assert ("solvers/exact.py", "pipesl.solvers.milp") in found  # inside resolve_by_milp
    assert ("cli/app.py", "pipesl.cost.fits") in found  # inside load_checked
    assert ("runtime/__init__.py", "pipesl.adapt.loop") in found  # a name for import_module
