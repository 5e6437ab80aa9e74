"""``pipesl train --adapt``: progress, tables and outputs of an adaptive run.

The run itself is :func:`pipesl.runtime.train_adaptive` (docs/adaptation.md); this module only
shows it: a progress bar over the global iterations (a switch of plan or a failure shows as
a new segment), then the iterations with the plan that ran each, the re-plans with their
decisions, and the segments with what each relaunch cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipesl.cli.app import err_console, seconds_text
from pipesl.plan import Plan
from pipesl.plan import plan_label as _label  # cli.adaptive is imported only by a train run
from pipesl.units import format_quantity

if TYPE_CHECKING:
    from pipesl.adapt.loop import AdaptConfig, AdaptiveResult
    from pipesl.problem import Problem
    from pipesl.problem.events import NetworkScript
    from pipesl.runtime import IterationReport, RunConfig

__all__ = ["adaptive_summary", "adaptive_tables", "plan_label", "replan_lines",
           "run_adaptive_with_progress", "write_adaptive_outputs"]



def plan_label(plan: Plan) -> str:
    """``mcu:1 pi2:2-5 via mcu-mesh1-pi1-pi2, b=8``."""
    return f"{_label(plan)}, b={plan.micro_batch_size}"


def run_adaptive_with_progress(runtime: Any, problem: Problem, plan: Plan, config: RunConfig,
                               adapt: AdaptConfig, events: NetworkScript | None
                               ) -> AdaptiveResult:
    """``runtime.train_adaptive`` with a rich progress bar on stderr."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[status]}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task("adaptive training (warming up spare workers)",
                                 total=config.training.steps, status="")

        def update(segment: int, it: IterationReport) -> None:
            progress.update(task, completed=it.iteration + 1,
                            description=f"adaptive training, segment {segment + 1}",
                            status=f"loss {it.loss:.4f} · {seconds_text(it.measured_s)} "
                                   f"(planned {seconds_text(it.simulated_s)})")

        result: AdaptiveResult = runtime.train_adaptive(problem, plan, config, adapt=adapt,
                                                        events=events, on_iteration=update)
        return result


def adaptive_tables(result: AdaptiveResult) -> list[Table]:
    """Iterations (with their segment), re-plans and segments, for people."""
    segs = result.segments
    its = Table(title="Iterations (emulated time; planned = simulated for the running plan)",
                title_justify="left")
    for col in ("iter", "segment", "loss", "measured", "planned", "measured/planned"):
        its.add_column(col, justify="right")
    seg_of = {}
    for s in segs:
        for i in range(s.start_iteration, s.end_iteration):
            seg_of[i] = s.index
    for it in result.iterations:
        its.add_row(str(it.iteration), str(seg_of.get(it.iteration, -1) + 1),
                    f"{it.loss:.4f}", seconds_text(it.measured_s), seconds_text(it.simulated_s),
                    f"{it.error:+.1%}")
    replans = Table(title="Re-plans (details below)", title_justify="left")
    for col in ("#", "at iter", "trigger", "decision", "T old", "T new", "state to move",
                "planning"):
        replans.add_column(col, justify="left" if col in ("trigger", "decision") else "right")
    for k, r in enumerate(result.replans):
        replans.add_row(str(k + 1), str(r.iteration),
                        r.trigger, "switch" if r.switch else "stay",
                        "-" if r.old_objective_s is None else seconds_text(r.old_objective_s),
                        seconds_text(r.new_objective_s),
                        format_quantity(r.migration_bytes, "bytes"),
                        f"{r.seconds:.2f} s")
    segments = Table(title="Segments (one plan each)", title_justify="left")
    for col in ("segment", "plan", "iterations", "ended by", "start-up", "relaunch gap",
                "lost"):
        segments.add_column(col, justify="left" if col in ("plan", "ended by") else "right")
    for s in segs:
        gap = result.relaunch_s(s.index) if s.index else None
        segments.add_row(str(s.index + 1), escape(plan_label(s.plan)),
                         f"{s.start_iteration}-{s.end_iteration - 1}"
                         if s.end_iteration > s.start_iteration else "-",
                         s.ended_by,
                         "-" if s.startup_s is None else f"{s.startup_s:.2f} s",
                         "-" if gap is None else f"{gap:.2f} s", str(s.lost_iterations))
    return [its, replans, segments]


def replan_lines(result: AdaptiveResult) -> list[str]:
    """Each re-plan's trigger and reason in full (the table keeps to the numbers)."""
    return [f"re-plan {k + 1}: {r.trigger} ({r.detail}); "
            f"{'switch' if r.switch else 'stay'}: {r.reason}"
            for k, r in enumerate(result.replans)]


def adaptive_summary(result: AdaptiveResult) -> str:
    """One line: switches, failures survived, loss, time."""
    switches = sum(1 for s in result.segments if s.ended_by == "switch")
    failures = sum(1 for s in result.segments if s.ended_by == "failure")
    losses = result.losses
    last = result.segments[-1]
    return (f"{len(result.segments)} segment(s): {switches} switch(es) on drift, {failures} "
            f"failure(s) survived; final plan {plan_label(last.plan)}; loss "
            f"{losses[0]:.4f} -> {losses[-1]:.4f}; {result.seconds:.1f} s in all "
            f"({result.warm_up_s:.1f} s warming up spare workers)")


def write_adaptive_outputs(result: AdaptiveResult, *, out: Path | None = None,
                           gantt: Path | None = None, trace: Path | None = None) -> list[str]:
    """Write the JSON result, and the measured Gantt chart and trace of the last iteration."""
    from pipesl.cli.train import write_run_outputs

    last = result.iterations[-1]
    title = (f"measured · iteration {last.iteration} on "
             f"{plan_label(result.segments[-1].plan)}: {seconds_text(last.measured_s)}")
    return write_run_outputs(result.to_dict(), last, trace_name="pipesl measured (adaptive)",
                             gantt_title=title, out=out, gantt=gantt, trace=trace)
