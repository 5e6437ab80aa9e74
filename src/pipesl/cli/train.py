"""``pipesl train`` (local processes) and ``pipesl worker`` (one rank under torchrun).

torch is imported only when a command runs, so the rest of the CLI works without it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipesl.cli.app import (
    FIGURE,
    JSON,
    PROBLEM_HELP,
    app,
    check_writable,
    console,
    err_console,
    load_checked,
    print_json,
    seconds_text,
    warn_memory,
    write_file,
)
from pipesl.exceptions import ProblemError, RuntimeSetupError

if TYPE_CHECKING:
    from pipesl.plan import Plan
    from pipesl.problem import Problem
    from pipesl.runtime import IterationReport, RunConfig, TrainResult

__all__ = ["reliability_lines", "result_tables", "train", "worker", "write_outputs",
           "write_run_outputs"]

TRAIN_DEFAULT = "iot-digits"
"""The built-in scenario `pipesl train` runs by default: small enough to train here."""


def _runtime() -> Any:
    try:
        import pipesl.runtime as runtime
    except ImportError as exc:
        raise RuntimeSetupError(f"training needs PyTorch ({exc.name} is missing): pip install "
                                "'pipesl[torch]'") from None
    return runtime


def _plan(problem: Problem, path: Path | None, schedule: str | None = None, *,
          every_rank: bool = False) -> Plan:
    """The ``--plan`` file, else what ``pipesl plan`` prints: the plan of least simulated
    makespan of the schedule that runs (``--schedule``, else ``training.schedule``), with
    ``pipesl plan``'s time limit. ``every_rank`` (``pipesl worker``, where each rank plans
    alone): a search stopped by its time limit is refused, since ranks could then disagree."""
    if path is not None:
        from pipesl.plan import load_single_plan

        return load_single_plan(path, problem)
    from dataclasses import replace

    from pipesl.schedules import get_schedule
    from pipesl.solvers import solve

    if schedule is not None:
        name = get_schedule(schedule).name
        problem = replace(problem, training=replace(problem.training, schedule=cast(Any, name)))
    result = solve(problem, objective="makespan")
    if every_rank and not result.optimal:
        raise ProblemError("--plan", "is needed here: the makespan search stopped at its time "
                           "limit, so the ranks could choose different plans; write one with "
                           "`pipesl plan --out` and pass it to every rank")
    return result.plan




def _n(seconds: float) -> str:
    """Milliseconds as a plain number (the column header carries the unit)."""
    return f"{seconds * 1e3:.2f}"


def _config(runtime: Any, **options: Any) -> RunConfig:
    return runtime.build_config(runtime.RunConfig(), **options)


def result_tables(result: TrainResult) -> list[Table]:
    """Iterations (measured vs simulated vs analytic), stages and hops, for people."""
    scale = result.config.scale
    clock = "virtual" if result.config.emulation.virtual_clock else "wall"
    emu = (f"emulated, time scale {scale:g}, {clock} clock" if result.config.emulation.enabled
           else "real devices and network")
    its = Table(title=f"Iterations ({result.schedule}, b = {result.plan.micro_batch_size}, "
                f"{emu})", title_justify="left")
    for col in ("iter", "loss", "measured", "simulated", "analytic", "measured/simulated"):
        its.add_column(col, justify="right")
    for it in result.iterations:
        its.add_row(str(it.iteration), f"{it.loss:.4f}", seconds_text(it.measured_s),
                    seconds_text(it.simulated_s), seconds_text(it.analytic_s), f"{it.error:+.1%}")
    stages = Table(title="Compute per pass of b samples, ms (mean over iterations after the "
                   "first)", title_justify="left")
    for col in ("stage", "node", "layers", "pass", "planned", "real", "occupied", "overruns"):
        stages.add_column(col, justify="left" if col in ("node", "pass") else "right")
    for s in result.stages:
        stages.add_row(str(s.stage + 1), escape(s.node), s.layers,
                       "forward" if s.kind == "F" else "backward", _n(s.planned_s),
                       _n(s.real_mean_s), _n(s.busy_mean_s), f"{s.overruns}/{s.passes}")
    hops = Table(title="Transfers per hop, ms (mean over iterations after the first)",
                 title_justify="left")
    for col in ("hop", "what", "resource", "planned x", "busy", "hop time", "lag"):
        hops.add_column(col, justify="left" if col in ("hop", "what", "resource") else "right")
    for h in result.hops:
        hops.add_row(escape(h.hop), "act." if h.kind == "F" else "grad", escape(h.resource),
                     _n(h.planned_s), _n(h.busy_mean_s), _n(h.hop_mean_s), _n(h.lag_mean_s))
    hops.caption = ("busy: the link serving it; hop time: handed over -> delivered, queueing "
                    "included; lag: the receiving process got it this much later than the "
                    "emulated network delivered it")
    return [its, stages, hops]


def summary_line(result: TrainResult) -> str:
    """One line: median measured against simulated and analytic."""
    med = result.median_measured_s()
    err = med / result.simulated_s - 1.0 if result.simulated_s else 0.0
    over = sum(s.overruns for s in result.stages)
    line = (f"median measured iteration {seconds_text(med)} vs simulated "
            f"{seconds_text(result.simulated_s)} "
            f"({err:+.1%}) and analytic {seconds_text(result.analytic_s)}; loss "
            f"{result.losses[0]:.4f} -> {result.losses[-1]:.4f}; startup "
            f"{result.startup_s:.1f} s")
    if over and result.config.emulation.enabled:
        line += (f"\n[yellow]warning:[/] {over} passes computed longer than their planned "
                 "duration, so emulation could not pad them; raise --time-scale")
    return line


def reliability_lines(result: TrainResult) -> list[str]:
    """Where the run resumed from, the checkpoints it saved, and the audit's verdict."""
    lines = []
    if result.start_iteration:
        lost = result.lost_iterations
        lines.append(f"resumed at iteration {result.start_iteration} from the checkpoint saved "
                     f"after iteration {result.start_iteration - 1}"
                     + ("" if lost is None else f" ({lost} completed iterations after it "
                        "were lost and run again, besides the one in flight)"))
    if result.checkpoints:
        # result.checkpoints counts completed iterations; iterations are numbered from 0.
        after = ", ".join(str(n - 1) for n in result.checkpoints)
        lines.append(f"checkpoints after iterations {after} in {result.config.checkpoint.folder}")
    if result.audit is not None:
        lines.append(f"{result.audit.summary()} (records in {result.config.outputs.audit})")
    return lines


def write_run_outputs(document: dict[str, Any], last: IterationReport, *, trace_name: str,
                      gantt_title: str, out: Path | None = None, gantt: Path | None = None,
                      trace: Path | None = None) -> list[str]:
    """Write a run's JSON ``document``, and the measured trace and Gantt chart of its
    ``last`` iteration; return what was written, for people."""
    written: list[str] = []
    if out is not None:
        write_file(lambda: out.write_text(json.dumps(document, indent=2) + "\n"), out, "--out")
        written.append(f"result {out}")
    if trace is not None:
        write_file(lambda: last.trace.dump_chrome(trace, name=trace_name), trace, "--trace")
        written.append(f"measured trace {trace}")
    if gantt is not None:
        from pipesl.plotting import gantt_chart, save_figure

        figure = gantt_chart(last.trace, title=gantt_title)
        write_file(lambda: save_figure(figure, gantt), gantt, "--gantt")
        written.append(f"measured Gantt chart {gantt}")
    return written


def write_outputs(result: TrainResult, *, out: Path | None = None, gantt: Path | None = None,
                  trace: Path | None = None) -> list[str]:
    """Write the JSON result, the measured Gantt chart (last iteration) and its trace."""
    last = result.iterations[-1]
    title = (f"measured · {result.schedule} · b = {result.plan.micro_batch_size} · "
             f"iteration {last.iteration}: {seconds_text(last.measured_s)} (simulated "
             f"{seconds_text(last.simulated_s)}, {last.error:+.1%})")
    return write_run_outputs(result.to_dict(), last, trace_name=f"pipesl measured "
                             f"{result.problem}", gantt_title=title, out=out, gantt=gantt,
                             trace=trace)


def _show(result: TrainResult, write: Callable[[], list[str]], json_out: bool) -> None:
    """Print a run's result (JSON on stdout, or the tables and summary), then ``write`` its
    files and print the notes: the report is out even if a write fails."""
    if json_out:
        print_json(result.to_dict())
    else:
        for table in result_tables(result):
            console.print(table)
        console.print(summary_line(result))
    notes = reliability_lines(result)
    for line in notes:
        (err_console if json_out else console).print(escape(line))
    for line in (f"wrote {w}" for w in write()):
        (err_console if json_out else console).print(escape(line))


def run_with_progress(runtime: Any, problem: Problem, plan: Plan, config: RunConfig,
                      description: str = "training", events: Any = None) -> TrainResult:
    """``runtime.train`` with a rich progress bar on stderr (loss and time per step)."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[status]}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(f"{description} (starting {len(plan.stages)} stages)",
                                 total=config.training.steps, status="")

        def update(it: IterationReport) -> None:
            progress.update(task, advance=1, description=description,
                            status=f"loss {it.loss:.4f} · {seconds_text(it.measured_s)} "
                                   f"(sim {seconds_text(it.simulated_s)})")

        return runtime.train(problem, plan, config, on_iteration=update, events=events)


Steps = Annotated[int, typer.Option("--steps", "-n", min=1, help="Training iterations.")]
Schedule = Annotated[str | None, typer.Option(
    "--schedule", help="gpipe | 1f1b | 1f1b-net; default: the problem's training.schedule.")]
Model = Annotated[str | None, typer.Option(
    "--model", help="Zoo name or package.module:factory; default: the zoo model named like "
    "the problem's model profile.")]
Backend = Annotated[str, typer.Option("--backend", help="gloo (CPU) | nccl (CUDA GPUs).")]
Data = Annotated[str, typer.Option(
    "--data", help="synthetic | digits (scikit-learn's 8x8 digits).")]
TimeScale = Annotated[float, typer.Option(
    "--time-scale", help="Multiply every emulated duration (raise it when real compute "
    "overruns the planned pass times).")]
PlanOpt = Annotated[Path | None, typer.Option(
    "--plan", help="Plan JSON (SPEC section 4); default: plan with the default solver.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Write the result JSON.")]
GanttOpt = Annotated[Path | None, typer.Option(
    "--gantt", help="Write the measured Gantt chart of the last iteration (PNG).")]
TraceOpt = Annotated[Path | None, typer.Option(
    "--trace", help="Write the measured trace of the last iteration (Chrome trace JSON).")]
HangOpt = Annotated[float, typer.Option(
    "--hang-timeout", help="Seconds a worker may stay busy on one task (or every worker "
    "wait without progress) before the job is stopped as hung.")]
CkptDirOpt = Annotated[Path | None, typer.Option(
    "--checkpoint-dir", help="Save every stage's units and optimiser state here "
    "(per unit, so that a run can resume under another plan).")]
CkptEveryOpt = Annotated[int, typer.Option(
    "--checkpoint-every", min=1, help="Checkpoint after every K iterations (and the last).")]
ResumeOpt = Annotated[bool, typer.Option(
    "--resume", help="Start from the newest complete checkpoint in --checkpoint-dir; "
    "--steps counts every iteration, those before the checkpoint included.")]
AuditOpt = Annotated[Path | None, typer.Option(
    "--audit", help="Test mode: record every tensor that crosses a hop (JSON lines) and "
    "check that raw inputs (and labels with labels_at) never leave their node.")]
FaultOpt = Annotated[str | None, typer.Option(
    "--inject-fault", help="Test mode: make a worker fail, e.g. "
    "'kill:node=a,iteration=2,phase=F' (kill | hang | raise; see docs/runtime.md).")]
AdaptOpt = Annotated[bool, typer.Option(
    "--adapt", help="Watch measured stage and hop times; on drift (or a failed node) re-plan "
    "and move the job to the new plan at an iteration boundary when that pays off "
    "(docs/adaptation.md).")]
EventsOpt = Annotated[Path | None, typer.Option(
    "--events", help="Emulation: a script of network changes during the run (YAML/JSON list, "
    "e.g. '- {iteration: 5, link: \\[a, b], bandwidth_factor: 0.2}' or "
    "'- {iteration: 8, node_leaves: c}'); the planner is not told.")]
ThresholdOpt = Annotated[float, typer.Option(
    "--drift-threshold", help="With --adapt: relative deviation of a pass's or transfer's "
    "median time from the plan that counts as drift.")]
WindowOpt = Annotated[int, typer.Option(
    "--drift-window", min=1, help="With --adapt: iterations pooled for the medians.")]


@app.command()
def train(
    problem: str = typer.Argument(TRAIN_DEFAULT, help=PROBLEM_HELP.replace(
        "edge-campus scenario", f"{TRAIN_DEFAULT} scenario (small enough to train here)")),
    plan: PlanOpt = None,
    model: Model = None,
    steps: Steps = 3,
    schedule: Schedule = None,
    emulate: bool = typer.Option(True, "--emulate/--no-emulate", help="Emulate the problem's "
                                 "devices and links (pad passes, pace links)."),
    time_scale: TimeScale = 1.0,
    virtual_clock: bool = typer.Option(
        True, "--virtual-clock/--wall-clock", help="Emulated time: start each pass and "
        "transfer when its input is available on the emulated network (absorbs this host's "
        "loopback and scheduling delays), or when the process really gets it."),
    backend: Backend = "gloo",
    data: Data = "synthetic",
    lr: float = typer.Option(0.05, "--lr", help="SGD learning rate."),
    momentum: float = typer.Option(0.0, "--momentum", help="SGD momentum, in [0, 1)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial weights and data."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 | float64."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds any receive may wait."),
    host: str = typer.Option("127.0.0.1", "--host", help="Rendezvous address; the default "
                             "keeps every socket on loopback."),
    hang_timeout: HangOpt = 15.0,
    checkpoint_dir: CkptDirOpt = None,
    checkpoint_every: Annotated[int | None, typer.Option(
        "--checkpoint-every", min=1, help="Checkpoint after every K iterations (and the "
        "last); default 10, or 1 with --adapt (a failure then loses only the iteration in "
        "flight).")] = None,
    resume: ResumeOpt = False,
    audit: AuditOpt = None,
    inject_fault: FaultOpt = None,
    adapt: AdaptOpt = False,
    events: EventsOpt = None,
    drift_threshold: ThresholdOpt = 0.25,
    drift_window: WindowOpt = 3,
    json_out: JsonOpt = False,
    out: OutOpt = None,
    gantt: GanttOpt = None,
    trace: TraceOpt = None,
) -> None:
    """Train for real: one local process per network node of the plan (stages and relays)."""
    for path, option, kinds in ((out, "--out", JSON), (gantt, "--gantt", FIGURE),
                                (trace, "--trace", JSON)):
        check_writable(path, option, kinds)
    runtime = _runtime()
    every = checkpoint_every if checkpoint_every is not None else (1 if adapt else 10)
    cfg = _config(runtime, steps=steps, schedule=schedule, emulate=emulate,
                  time_scale=time_scale, virtual_clock=virtual_clock, backend=backend,
                  data=data, model=model, seed=seed, lr=lr, momentum=momentum, dtype=dtype,
                  timeout_s=timeout, host=host, hang_timeout_s=hang_timeout,
                  checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
                  checkpoint_every=every, resume=resume,
                  audit=None if audit is None else str(audit), fault=inject_fault)
    if adapt and audit is not None:
        raise ProblemError("--audit", "is not supported with --adapt (audit a plain run of "
                           "each plan instead)")
    if events is not None and not emulate:
        raise ProblemError("--events", "needs --emulate: on a real network the changes are "
                           "the network's own")
    prob = load_checked(problem)
    if prob.is_multi_owner:
        from pipesl.cli.train_owners import train_owners_command

        train_owners_command(runtime, prob, plan, cfg, json_out=json_out, out=out,
                             unsupported={"--adapt": adapt, "--events": events is not None,
                                          "--checkpoint-dir": checkpoint_dir is not None,
                                          "--resume": resume,
                                          "--inject-fault": inject_fault is not None,
                                          "--gantt": gantt is not None,
                                          "--trace": trace is not None})
        return
    script = None
    if events is not None:
        from pipesl.problem.events import load_network_events

        script = load_network_events(events, prob)
    chosen = _plan(prob, plan, schedule)
    warn_memory(prob, chosen)
    runtime.make_job(prob, chosen, cfg, events=script)  # every check before any process
    if adapt:
        _train_adaptive(runtime, prob, chosen, cfg, script, drift_threshold, drift_window,
                        json_out=json_out, out=out, gantt=gantt, trace=trace)
        return
    result = run_with_progress(runtime, prob, chosen, cfg, events=script)
    _show(result, lambda: write_outputs(result, out=out, gantt=gantt, trace=trace), json_out)
    if result.audit is not None and not result.audit.ok:
        raise RuntimeSetupError(f"the transport audit found {len(result.audit.violations)} "
                                f"violations: {'; '.join(result.audit.violations[:3])}")


def _train_adaptive(runtime: Any, problem: Problem, plan: Plan, cfg: RunConfig, script: Any,
                    threshold: float, window: int, *, json_out: bool, out: Path | None,
                    gantt: Path | None, trace: Path | None) -> None:
    from pipesl.cli.adaptive import (
        adaptive_summary,
        adaptive_tables,
        replan_lines,
        run_adaptive_with_progress,
        write_adaptive_outputs,
    )

    adapt = runtime.AdaptConfig(threshold=threshold, window=window,
                                checkpoint_every=cfg.checkpoint.every)
    result = run_adaptive_with_progress(runtime, problem, plan, cfg, adapt, script)
    if json_out:
        print_json(result.to_dict())
    else:
        for table in adaptive_tables(result):
            console.print(table)
        for line in [*replan_lines(result), adaptive_summary(result)]:
            console.print(escape(line))
    written = write_adaptive_outputs(result, out=out, gantt=gantt, trace=trace)
    for line in (f"wrote {w}" for w in written):
        (err_console if json_out else console).print(escape(line))


def _padding(text: str | None) -> tuple[tuple[str, str, int], ...]:
    """``u-v=BYTES,...`` -> ((u, v, bytes), ...); a bad entry is a one-line error."""
    out = []
    for item in (text or "").split(","):
        if not item.strip():
            continue
        pair, _, size = item.strip().partition("=")
        u, _, v = pair.partition("-")
        if not (u and v and size.isdigit()):
            raise ProblemError("latency_padding", "must be u-v=BYTES entries separated by "
                               "commas", item)
        out.append((u, v, int(size)))
    return tuple(out)


@app.command()
def worker(
    problem: str = typer.Argument(..., help=PROBLEM_HELP),
    plan: PlanOpt = None,
    host_nodes: str | None = typer.Option(
        None, "--host-nodes", help="Comma-separated nodes this host runs, one per local "
        "process (LOCAL_RANK i runs the i-th); default: global RANK r runs node r of the "
        "plan's rank order."),
    model: Model = None,
    steps: Steps = 3,
    schedule: Schedule = None,
    emulate: bool = typer.Option(False, "--emulate/--no-emulate", help="Emulate the "
                                 "problem's devices and links (off on real ones)."),
    pace_links: bool = typer.Option(True, "--pace-links/--no-pace-links", help="With "
                                    "--emulate: pace the links too; --no-pace-links when the "
                                    "network (or tc) enforces the bandwidth."),
    latency_padding: str | None = typer.Option(
        None, "--latency-padding", help="u-v=BYTES,...: padding every transfer over link u-v "
        "carries, so a kernel-shaped link spends its latency on the wire (pipesl testbed)."),
    time_scale: TimeScale = 1.0,
    backend: Backend = "gloo",
    data: Data = "synthetic",
    lr: float = typer.Option(0.05, "--lr", help="SGD learning rate."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial weights and data."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds any receive may wait."),
    hang_timeout: HangOpt = 15.0,
    checkpoint_dir: CkptDirOpt = None,
    checkpoint_every: CkptEveryOpt = 10,
    resume: ResumeOpt = False,
    audit: AuditOpt = None,
    json_out: JsonOpt = False,
    out: OutOpt = None,
    gantt: GanttOpt = None,
) -> None:
    """Run one rank of a multi-host job under torchrun (see docs/runtime.md)."""
    for path, option, kinds in ((out, "--out", JSON), (gantt, "--gantt", FIGURE)):
        check_writable(path, option, kinds)
    runtime = _runtime()
    cfg = _config(runtime, steps=steps, schedule=schedule, emulate=emulate,
                  pace_links=pace_links, latency_padding=_padding(latency_padding),
                  time_scale=time_scale, backend=backend, data=data, model=model, seed=seed,
                  lr=lr, timeout_s=timeout, hang_timeout_s=hang_timeout,
                  checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
                  checkpoint_every=checkpoint_every, resume=resume,
                  audit=None if audit is None else str(audit))
    prob = load_checked(problem)
    chosen = _plan(prob, plan, schedule, every_rank=True)
    warn_memory(prob, chosen)
    nodes = [n.strip() for n in host_nodes.split(",") if n.strip()] if host_nodes else None
    result = runtime.run_torchrun_worker(prob, chosen, cfg, host_nodes=nodes)
    if result is None:
        return
    _show(result, lambda: write_outputs(result, out=out, gantt=gantt), json_out)
