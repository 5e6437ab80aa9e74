"""Tables for problems and simulations with several data owners (``pipesl show/simulate``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.table import Table

from pipesl.cli.app import seconds_text
from pipesl.cli.render import escape
from pipesl.units import format_quantity

if TYPE_CHECKING:
    from pipesl.problem import Problem
    from pipesl.sim import OwnersSimResult

__all__ = ["owners_problem_table", "owners_sim_tables"]


def owners_problem_table(problem: Problem) -> Table:
    """The data owners of a problem: node, batch, micro-batch, labels; mode and replicas."""
    tr = problem.training
    table = Table(title=f"Data owners ({problem.num_owners})", title_justify="left",
                  caption=f"owners: {tr.owners_mode}, replicas: {tr.replicas}")
    for col in ("#", "owner", "node", "B", "b", "labels at"):
        table.add_column(col, justify="right" if col in ("#", "B", "b") else "left")
    for i, o in enumerate(problem.owners):
        table.add_row(str(i), escape(o.label), escape(o.node), str(o.batch_size),
                      "planner" if o.micro_batch_size is None else str(o.micro_batch_size),
                      "last stage" if o.labels_at is None else escape(o.labels_at))
    return table


def _bytes(value: float) -> str:
    return format_quantity(value, "bytes", 4) if math.isfinite(value) else "unbounded"


def owners_sim_tables(result: OwnersSimResult) -> list[Table]:
    """Summary, per-owner rows, resources and per-node memory of a multi-owner simulation."""
    what = "round" if result.mode == "sequential" else "iteration"
    summary = Table(title=f"Simulated {what}: {result.num_owners} data owners "
                    f"({result.mode}, replicas {result.replicas}, {result.schedule})",
                    title_justify="left", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    bound_name = max(result.bound_terms, key=lambda k: result.bound_terms[k]) \
        if result.mode == "parallel" else "sum of the owners' own bounds"
    slowest = max(result.owners, key=lambda r: r.end_s)
    rows = [
        (f"makespan ({'sum of the turns' if result.mode == 'sequential' else 'joint'})",
         seconds_text(result.makespan_s)),
        ("last to finish", escape(slowest.label)),
        ("lower bound", f"{seconds_text(result.lower_bound_s)} ({escape(bound_name)})"),
        ("gap to the bound", f"{result.gap:.2%}"),
        ("owners alone (max)", seconds_text(max(r.alone_s for r in result.owners))),
        ("owners alone (sum)", seconds_text(math.fsum(r.alone_s for r in result.owners))),
    ]
    for name, value in rows:
        summary.add_row(name, value)
    owners = Table(title="Owners", title_justify="left")
    for col in ("#", "owner", "plan", "B", "b", "M", "done at", "alone", "own bound"):
        owners.add_column(col, justify="left" if col in ("owner", "plan") else "right")
    for r in result.owners:
        owners.add_row(str(r.owner), escape(r.label), escape(r.plan), str(r.batch_size),
                       str(r.micro_batch_size), str(r.num_micro_batches),
                       seconds_text(r.end_s), seconds_text(r.alone_s),
                       seconds_text(r.lower_bound_s))
    resources = Table(title="Resources (all owners)", title_justify="left")
    for col in ("resource", "busy", "utilisation"):
        resources.add_column(col, justify="left" if col == "resource" else "right")
    for name, busy in sorted(result.busy_s.items(), key=lambda kv: -kv[1]):
        resources.add_row(escape(name), seconds_text(busy), f"{result.utilisation[name]:.1%}")
    memory = Table(title="Memory per node (state per the replicas rule + every owner's peak "
                   "activations)", title_justify="left")
    for col in ("node", "used", "capacity", "stages (owner:stage, peak micro-batches)"):
        memory.add_column(col, justify="right" if col in ("used", "capacity") else "left")
    labels = [r.label for r in result.owners]
    for node, m in result.memory.items():
        stages = ", ".join(f"{labels[o]}:{k + 1} ({w})" for o, k, w, _ in m.stages)
        flag = " [red](over)[/]" if m.used_bytes > m.capacity_bytes else ""
        memory.add_row(escape(node), _bytes(m.used_bytes) + flag, _bytes(m.capacity_bytes),
                       escape(stages))
    return [summary, owners, resources, memory]
