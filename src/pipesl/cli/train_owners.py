"""``pipesl train`` on a problem with several data owners (:mod:`pipesl.runtime.owners`).

torch is imported only when the command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from pipesl.cli.app import console, err_console, print_json, seconds_text, write_file
from pipesl.exceptions import ProblemError, RuntimeSetupError

if TYPE_CHECKING:
    from pipesl.problem import Problem
    from pipesl.runtime import RunConfig
    from pipesl.runtime.owners import OwnersTrainResult

__all__ = ["owners_plan", "owners_summary", "owners_tables", "train_owners_command"]


def owners_plan(problem: Problem, path: Path | None) -> Any:
    """The ``--plan`` file (an owners plan document), else the heuristic joint planner's
    (:func:`pipesl.solvers.owners.solve_owners`, a fraction of a second)."""
    from pipesl.plan import OwnersPlan, load_plan

    if path is not None:
        plan = load_plan(path, problem)
    else:  # the fast planner: train starts at once (pipesl plan --out for the joint search)
        from pipesl.solvers.owners import solve_owners

        plan = solve_owners(problem, "heuristic").plan
        err_console.print("planned every owner with the heuristic joint planner (pipesl plan "
                          "PROBLEM --out plan.json, then --plan, for the certified joint "
                          "search)")
    if not isinstance(plan, OwnersPlan):
        raise ProblemError("--plan", f"must be a plan for the problem's {problem.num_owners} "
                           "data owners (pipesl plan PROBLEM --out plan.json)")
    return plan


def owners_tables(result: OwnersTrainResult) -> list[Table]:
    """Per iteration the joint and per-owner times (measured vs simulated), then per owner
    the medians."""
    cfg = result.config
    emu = (f"emulated, time scale {cfg.emulation.time_scale:g}, "
           f"{'virtual' if cfg.emulation.virtual_clock else 'wall'} clock" if cfg.emulation.enabled
           else "real devices and network")
    its = Table(title=f"Iterations ({len(result.owners)} owners, {result.mode}, "
                f"{result.replicas} replicas, {result.schedule}, {emu})",
                title_justify="left")
    for col in ("iter", "measured", "simulated", "error",
                *(f"{o} meas/sim" for o in result.owners)):
        its.add_column(escape(col), justify="right")
    for it in result.iterations:
        its.add_row(str(it.iteration), seconds_text(it.measured_s),
                    seconds_text(it.simulated_s), f"{it.error:+.1%}",
                    *(f"{seconds_text(m)} / {seconds_text(s)}"
                      for m, s in zip(it.owner_measured_s, it.owner_simulated_s,
                                      strict=True)))
    what = "turn" if result.mode == "sequential" else "end of last backward"
    owners = Table(title=f"Per owner ({what}; median over iterations after the first)",
                   title_justify="left")
    for col in ("owner", "node", "B", "b", "M", "measured", "simulated", "error", "loss"):
        owners.add_column(col, justify="left" if col in ("owner", "node") else "right")
    medians = result.median_owner_measured_s() if result.iterations else ()
    for o, (label, plan) in enumerate(zip(result.owners, result.plans, strict=True)):
        sim = result.owner_simulated_s[o]
        med = medians[o] if medians else float("nan")
        first = result.iterations[0].losses[o] if result.iterations else float("nan")
        last = result.iterations[-1].losses[o] if result.iterations else float("nan")
        batch = plan_batch(result, o)
        owners.add_row(escape(label), escape(plan.stages[0].node), str(batch),
                       str(plan.micro_batch_size), str(-(-batch // plan.micro_batch_size)),
                       seconds_text(med), seconds_text(sim),
                       f"{med / sim - 1.0:+.1%}" if sim else "-",
                       f"{first:.4f} -> {last:.4f}")
    return [its, owners]


def plan_batch(result: OwnersTrainResult, owner: int) -> int:
    """Owner ``owner``'s mini-batch size B."""
    return int(result.batch_sizes[owner])


def owners_summary(result: OwnersTrainResult) -> str:
    """One line: the median joint time against the simulator's."""
    med = result.median_measured_s()
    err = med / result.simulated_s - 1.0 if result.simulated_s else 0.0
    what = "round" if result.mode == "sequential" else "iteration"
    return (f"median measured {what} {seconds_text(med)} vs simulated "
            f"{seconds_text(result.simulated_s)} ({err:+.1%}) for {len(result.owners)} "
            f"owners; startup {result.startup_s:.1f} s")


def train_owners_command(runtime: Any, problem: Problem, plan_path: Path | None,
                         cfg: RunConfig, *, json_out: bool, out: Path | None,
                         unsupported: dict[str, bool]) -> None:
    """Plan (or load the plan), train, print and write a many-owner run."""
    for option, given in unsupported.items():
        if given:
            raise ProblemError(option, "is not supported with several data owners "
                               "(training.sources) yet")
    plan = owners_plan(problem, plan_path)
    from pipesl.runtime.owners import make_owners_job, train_owners

    job = make_owners_job(problem, plan, cfg)  # every check before any process
    with err_console.status(f"training {problem.num_owners} owners on {len(job.nodes)} "
                            "processes"):
        result = train_owners(problem, plan, cfg)
    if json_out:
        print_json(result.to_dict())
    else:
        for table in owners_tables(result):
            console.print(table)
        console.print(owners_summary(result))
    note = err_console if json_out else console
    if result.audit is not None:
        note.print(escape(f"{result.audit.summary()} (records in {cfg.outputs.audit})"))
        for line in result.audit.relayed[:5]:
            note.print(escape(f"  relayed: {line}"))
    if out is not None:
        document = result.to_dict()
        write_file(lambda: out.write_text(json.dumps(document, indent=2) + "\n"), out,
                   "--out")
        note.print(escape(f"wrote result {out}"))
    if result.audit is not None and not result.audit.ok:
        raise RuntimeSetupError(f"the transport audit found {len(result.audit.violations)} "
                                f"violations: {'; '.join(result.audit.violations[:3])}")
