"""Adaptation: training in emulation while the network changes under it.

Each *case* scripts one change of a built-in scenario's network (:mod:`pipesl.problem.events`)
in the middle of a run:

* ``bandwidth-drop`` — the most loaded link of the initial optimal plan (its bottleneck link,
  from :func:`pipesl.cost.evaluate`) keeps a fraction of its bandwidth from an iteration on;
* ``node-departure`` — the most loaded compute node of the initial plan other than the source
  leaves at an iteration.

and trains the scenario's model three times (*arms*) under the same script:

* ``static`` — the initial optimal plan throughout (:func:`pipesl.runtime.train`); under a
  departure it fails, and the iterations it completed are kept with the failure;
* ``adapted`` — :func:`pipesl.adapt.loop.train_adaptive`: drift detection, re-planning and a
  relaunch at an iteration boundary; after a failure, a plan without the node resumed from
  the last checkpoint;
* ``optimum`` — the optimal plan of the network *after* the change, from the start (a plan
  without the departed node): what the adapted run should reach.

Rows (``record``): one ``iteration`` per (case, arm, iteration report) with the measured
(emulated) iteration time, the throughput ``B / measured_s``, the loss, when the iteration
started and when its report arrived (seconds since the arm's launch), and what the cost
model (``model_s``, analytic T) and the simulator (``simulated_s``) give for the running plan
on the network as it is at that iteration; plus one ``replan`` row per re-plan of the
adapted arm and one ``failure`` row per failed run. The summary has one row per case:
iterations after the event until the adapted run's throughput reaches (and keeps)
``target`` x the optimum arm's median post-event throughput, the relaunch gap, the lost
iterations, the final losses and the planned T of every plan.

The runs need torch (``pip install 'pipesl[torch]'``); it is imported only when the
experiment runs. All runs share one pool of warm spare processes
(:class:`pipesl.runtime.pool.WorkerPool`, one spare per node as :func:`train_adaptive` keeps
by default), refilled before every arm: every arm starts on warm processes, so no arm's time
is torch's import (the refill waits are reported apart). The adapted arm's relaunch takes
the spares that warmed up, at idle priority, while its first segment ran — as it would
with its own pool.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipesl.cost import Resource, evaluate, resource_loads
from pipesl.exceptions import PipeslError, ProblemError, RuntimeSetupError
from pipesl.experiments.config import ADAPTATION_CASES, AdaptationConfig
from pipesl.experiments.runner import ExperimentResult, Progress, markdown_table
from pipesl.plan import Plan, plan_label
from pipesl.problem import load_problem
from pipesl.problem.events import NetworkScript, parse_network_events
from pipesl.problem.types import Problem
from pipesl.sim import simulate
from pipesl.solvers import solve

__all__ = ["ARMS", "adaptation_markdown", "bottleneck_link", "departing_node",
           "iterations_to_target", "run_adaptation"]

logger = logging.getLogger(__name__)

ARMS: tuple[str, ...] = ("static", "adapted", "optimum")
"""The three runs of every case (module docstring)."""
REL_TOL = 1e-9


@dataclass(frozen=True)
class _Case:
    name: str
    iteration: int
    """The event's (global, 0-based) iteration."""
    script: NetworkScript
    description: str
    changed: Problem
    """The network as it is after the event (a departed node removed)."""
    departed: str | None = None


@dataclass
class _Arm:
    name: str
    plan: Plan
    reports: list[tuple[int, Any, float, bool]] = field(default_factory=list)
    """(segment, IterationReport, arrival seconds since the arm started, kept)."""
    failure: Any = None
    """The WorkerFailure that ended a static run."""
    adaptive: Any = None
    """The AdaptiveResult of the adapted arm."""
    seconds: float = 0.0


def bottleneck_link(problem: Problem, plan: Plan) -> tuple[str, str]:
    """The most loaded link of ``plan`` (its bottleneck resource when that is a link).

    Raises
    ------
    ProblemError
        When the plan uses no link (everything runs on the source).
    """
    b = plan.micro_batch_size
    links = {r: a(b) for r, a in resource_loads(problem, plan).items() if r.kind == "link"}
    if not links:
        raise ProblemError("cases", "bandwidth-drop needs a plan that uses a link; the optimal "
                           "plan runs on the source alone", "bandwidth-drop")
    busiest = max(links, key=links.__getitem__)
    assert busiest.v is not None
    link = problem.network.link_between(busiest.u, busiest.v)
    assert link is not None  # the plan was validated
    return link.source, link.target


def departing_node(problem: Problem, plan: Plan) -> str:
    """The most loaded compute node of ``plan`` other than the source.

    Raises
    ------
    ProblemError
        When only the source computes.
    """
    source = problem.training.source
    nodes = [n for n in plan.nodes if n != source]
    if not nodes:
        raise ProblemError("cases", "node-departure needs a plan with a compute node besides "
                           f"the source {source}", "node-departure")
    b = plan.micro_batch_size
    loads = {r: a(b) for r, a in resource_loads(problem, plan).items()}
    return max(nodes, key=lambda n: loads.get(Resource("node", n), 0.0))


def iterations_to_target(throughputs: Sequence[tuple[int, float]], event: int,
                         reference: float) -> int | None:
    """Iterations after ``event`` until the throughput reaches ``reference`` and stays there.

    ``throughputs`` are (iteration, samples/s) pairs; the answer is the first iteration
    ``i >= event`` from which every later one is at least ``reference``, minus ``event``
    (None: never, or no iteration after the event).

    Examples
    --------
    >>> iterations_to_target([(4, 150), (5, 40), (6, 45), (7, 130), (8, 128)], 5, 112)
    2
    """
    start: int | None = None
    for it, value in sorted(throughputs):
        if it < event:
            continue
        start = (it if start is None else start) if value >= reference else None
    return None if start is None else start - event


def _check(config: AdaptationConfig) -> None:
    unknown = [c for c in config.cases if c not in ADAPTATION_CASES]
    if unknown or not config.cases:
        raise ProblemError("cases", f"must be among {', '.join(ADAPTATION_CASES)}",
                           unknown[0] if unknown else list(config.cases))
    for name in ("drop_iteration", "departure_iteration"):
        value = getattr(config, name)
        if not 1 <= value < config.steps - 1:
            raise ProblemError(name, f"must be between 1 and steps - 2 ({config.steps - 2}) "
                               "so that iterations run before and after it", value)
    if not 0 < config.bandwidth_factor < 1:
        raise ProblemError("bandwidth_factor", "must be in (0, 1) (a drop)",
                           config.bandwidth_factor)
    if not 0 < config.target <= 1:
        raise ProblemError("target", "must be in (0, 1]", config.target)
    if config.within < 1:
        raise ProblemError("within", "must be an integer >= 1", config.within)


def _require_torch() -> None:
    if importlib.util.find_spec("torch") is None:
        raise RuntimeSetupError("the adaptation experiment trains in emulation and needs "
                                "torch: pip install 'pipesl[torch]'")


def _case(name: str, problem: Problem, plan: Plan, config: AdaptationConfig) -> _Case:
    if name == "bandwidth-drop":
        u, v = bottleneck_link(problem, plan)
        it = config.drop_iteration
        script = parse_network_events([{"iteration": it, "link": [u, v],
                                        "bandwidth_factor": config.bandwidth_factor}])
        departed = None
    else:
        departed = departing_node(problem, plan)
        it = config.departure_iteration
        script = parse_network_events([{"iteration": it, "node_leaves": departed}])
    script.validate(problem)
    return _Case(name, it, script, script.events[0].describe(), script.problem_at(problem, it),
                 departed)


def _planned_s(problem: Problem, plan: Plan) -> float:
    """T of ``plan`` on ``problem`` (NaN when the plan no longer fits the network)."""
    try:
        return evaluate(problem, plan).objective_s
    except PipeslError:
        return math.nan


def _run_arm(arm: _Arm, problem: Problem, case: _Case, run_config: Any, pool: Any) -> None:
    from pipesl.adapt.loop import AdaptConfig, train_adaptive
    from pipesl.runtime import WorkerFailure, train

    started = time.perf_counter()

    def seen(report: Any, segment: int = 0) -> None:
        arm.reports.append((segment, report, time.perf_counter() - started, True))

    try:
        if arm.name == "adapted":
            res = train_adaptive(problem, arm.plan, run_config, adapt=AdaptConfig(),
                                 events=case.script, pool=pool)
            arm.adaptive = res
            arm.reports = [(seg, r, arrived, r.iteration < res.segments[seg].end_iteration)
                           for seg, r, arrived in res.reports]
        else:
            train(problem, arm.plan, run_config, events=case.script, pool=pool,
                  on_iteration=seen)
    except WorkerFailure as exc:
        if arm.name != "static":
            raise
        arm.failure = exc
        logger.info("%s / static: %s", case.name, exc)
    arm.seconds = time.perf_counter() - started


def run_adaptation(config: AdaptationConfig, progress: Progress | None = None
                   ) -> ExperimentResult:
    """Run the adaptation experiment (module docstring).

    Raises
    ------
    ProblemError
        A config field out of range, or a scenario whose plan cannot play a case.
    RuntimeSetupError
        torch is not installed, or a run other than the static one failed.
    """
    _check(config)
    _require_torch()
    from pipesl.runtime import build_config
    from pipesl.runtime.pool import WorkerPool

    started = time.perf_counter()
    problem = load_problem(config.scenario)
    initial = solve(problem, objective="analytic").plan
    cases = [_case(name, problem, initial, config) for name in config.cases]
    run_config = build_config(steps=config.steps, data=config.data, time_scale=config.time_scale,
                           seed=config.seed)
    rows: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    warm_up = 0.0
    with WorkerPool(len(problem.network.nodes)) as pool:
        for case in cases:
            best = solve(case.changed, objective="analytic").plan
            arms = {"static": _Arm("static", initial), "adapted": _Arm("adapted", initial),
                    "optimum": _Arm("optimum", best)}
            for arm in arms.values():
                warm_up += pool.warm_up()
                _run_arm(arm, problem, case, run_config, pool)
                if progress is not None:
                    progress(f"{case.name} / {arm.name}")
            rows += _rows(problem, case, arms, config)
            summary.append(_summary(problem, case, arms, config))
    checks = _checks(summary, config)
    notes = (f"initial optimal plan of {problem.name}: {plan_label(initial)}, planned T = "
             f"{1e3 * config.time_scale * evaluate(problem, initial).objective_s:.0f} ms",
             f"waiting for warm spare processes before the runs: {warm_up:.1f} s in all "
             "(not in any arm's time)")
    return ExperimentResult(config.name, "adaptation", config, tuple(rows), tuple(summary),
                            checks, time.perf_counter() - started, notes)


def _predicted(problem: Problem, case: _Case, plan: Plan, iteration: int, scale: float,
               cache: dict[tuple[Plan, bool], tuple[float, float]]) -> tuple[float, float]:
    """The analytic T and the simulated makespan of ``plan`` on the network as it is at
    ``iteration`` (scaled; NaN when the plan does not fit it)."""
    after = iteration >= case.iteration
    key = (plan, after)
    if key not in cache:
        truth = (case.script.problem_at(problem, case.iteration, drop_departed=False)
                 if after else problem)
        try:
            sim = simulate(truth, plan, last_micro_batch="remainder")
            cache[key] = (sim.analytic_s * scale, sim.makespan_s * scale)
        except PipeslError:
            cache[key] = (math.nan, math.nan)
    return cache[key]


def _rows(problem: Problem, case: _Case, arms: dict[str, _Arm], config: AdaptationConfig
          ) -> list[dict[str, Any]]:
    batch = problem.training.batch_size
    cache: dict[tuple[Plan, bool], tuple[float, float]] = {}
    out: list[dict[str, Any]] = []
    for arm in arms.values():
        res = arm.adaptive
        for seg, report, arrived, kept in arm.reports:
            plan = res.segments[seg].plan if res is not None else arm.plan
            model = _predicted(problem, case, plan, report.iteration, config.time_scale, cache)
            out.append({
                "record": "iteration", "case": case.name, "arm": arm.name,
                "iteration": report.iteration, "segment": seg, "kept": kept,
                "after_event": report.iteration >= case.iteration,
                "measured_s": report.measured_s, "throughput_sps": batch / report.measured_s,
                "model_s": model[0], "simulated_s": model[1],
                "loss": report.loss, "started_s": arrived - report.wall_s,
                "arrived_s": arrived, "plan": plan_label(plan)})
        if arm.failure is not None:
            done = max((r.iteration + 1 for _, r, _, _ in arm.reports), default=0)
            out.append({"record": "failure", "case": case.name, "arm": arm.name,
                        "iteration": done, "segment": 0, "node": arm.failure.node or "",
                        "arrived_s": arm.seconds, "detail": str(arm.failure),
                        "plan": plan_label(arm.plan)})
        if res is None:
            continue
        for rp in res.replans:
            nxt = next((s.index for s in res.segments if rp.switch and s.index > 0
                        and s.plan == rp.plan and s.start_iteration >= rp.iteration), None)
            out.append({"record": "replan", "case": case.name, "arm": arm.name,
                        "iteration": rp.iteration, "segment": "" if nxt is None else nxt,
                        "trigger": rp.trigger, "switch": rp.switch,
                        "old_objective_s": math.nan if rp.old_objective_s is None
                        else rp.old_objective_s * config.time_scale,
                        "new_objective_s": rp.new_objective_s * config.time_scale,
                        "relaunch_s": math.nan if nxt is None else _number(res.relaunch_s(nxt)),
                        "detail": rp.detail, "reason": rp.reason,
                        "plan": plan_label(rp.plan)})
    return out


def _number(value: float | None) -> float:
    return math.nan if value is None else value


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def _kept(arm: _Arm) -> list[Any]:
    return sorted((r for _, r, _, kept in arm.reports if kept), key=lambda r: r.iteration)


def _summary(problem: Problem, case: _Case, arms: dict[str, _Arm], config: AdaptationConfig
             ) -> dict[str, Any]:
    batch, scale = problem.training.batch_size, config.time_scale
    static, adapted, optimum = arms["static"], arms["adapted"], arms["optimum"]
    res = adapted.adaptive
    first_new = res.segments[1] if len(res.segments) > 1 else None
    post_switch = [r.measured_s for r in _kept(adapted)
                   if first_new is not None and r.iteration >= first_new.start_iteration]
    opt_post = [r for r in _kept(optimum) if r.iteration >= case.iteration]
    opt_sps = _median([batch / r.measured_s for r in opt_post])
    n = iterations_to_target([(r.iteration, batch / r.measured_s) for r in _kept(adapted)
                              if r.iteration >= case.iteration],
                             case.iteration, config.target * opt_sps)
    adapted_s = _median(post_switch)
    optimum_s = _median([r.measured_s for r in opt_post])

    def final_loss(arm: _Arm) -> float:
        kept = _kept(arm)
        return kept[-1].loss if kept else math.nan

    return {
        "case": case.name, "event": case.description, "event_iteration": case.iteration,
        "steps": config.steps, "batch_size": batch,
        "initial_T_s": _planned_s(problem, static.plan) * scale,
        "static_T_after_s": _planned_s(case.changed, static.plan) * scale,
        "adapted_T_after_s": _planned_s(case.changed, res.segments[-1].plan) * scale,
        "optimum_T_s": _planned_s(case.changed, optimum.plan) * scale,
        "static_after_s": _median([r.measured_s for r in _kept(static)
                                   if r.iteration >= case.iteration]),
        "adapted_after_switch_s": adapted_s, "optimum_after_event_s": optimum_s,
        "adapted_vs_optimum": adapted_s / optimum_s if optimum_s > 0 else math.nan,
        "optimum_after_event_sps": opt_sps,
        "iterations_to_target": n,
        "within": n is not None and n <= config.within,
        "relaunch_s": math.nan if first_new is None else _number(res.relaunch_s(first_new.index)),
        "lost_iterations": sum(s.lost_iterations for s in res.segments),
        "resumed_from": "" if first_new is None else first_new.start_iteration,
        "segments": len(res.segments), "replans": len(res.replans),
        "static_completed": len(_kept(static)),
        "static_failure": "" if static.failure is None else static.failure.node or "?",
        "adapted_completed": len(_kept(adapted)),
        "static_final_loss": final_loss(static), "adapted_final_loss": final_loss(adapted),
        "optimum_final_loss": final_loss(optimum),
        "static_wall_s": static.seconds, "adapted_wall_s": adapted.seconds,
        "optimum_wall_s": optimum.seconds,
        "static_plan": plan_label(static.plan), "adapted_plan": plan_label(res.segments[-1].plan),
        "optimum_plan": plan_label(optimum.plan),
    }


def _checks(summary: Sequence[dict[str, Any]], config: AdaptationConfig) -> dict[str, int]:
    """``exact_beaten``: a plan whose planned T on the changed network beats the new optimum
    (a bug: must be 0); ``reached_target``: cases where the adapted run reached the target
    in time; ``adapted_completed``: cases where it ran every iteration."""
    beaten = 0
    for s in summary:
        best = s["optimum_T_s"]
        for key in ("static_T_after_s", "adapted_T_after_s"):
            if math.isfinite(s[key]) and s[key] < best * (1 - REL_TOL):
                beaten += 1
    return {"cases": len(summary), "exact_beaten": beaten,
            "reached_target": sum(bool(s["within"]) for s in summary),
            "adapted_completed": sum(s["adapted_completed"] == config.steps for s in summary),
            "static_failed": sum(bool(s["static_failure"]) for s in summary)}


def _ms(value: Any) -> str:
    return "–" if not isinstance(value, float) or math.isnan(value) else f"{1e3 * value:.0f}"


def _arm_rows(result: ExperimentResult) -> list[dict[str, Any]]:
    its = [r for r in result.rows if r["record"] == "iteration"]
    fails = {(r["case"], r["arm"]): r for r in result.rows if r["record"] == "failure"}
    summary = {s["case"]: s for s in result.summary}
    out = []
    for s in result.summary:
        case = s["case"]
        for arm in ARMS:
            mine = [r for r in its if r["case"] == case and r["arm"] == arm and r["kept"]]
            before = [r["measured_s"] for r in mine if not r["after_event"]]
            after = [r["measured_s"] for r in mine if r["after_event"]]
            fail = fails.get((case, arm))
            out.append({
                "case": case, "arm": arm, "plan (final)": summary[case][f"{arm}_plan"],
                "iterations": len(mine),
                "before event (ms)": _ms(_median(before)),
                "after event (ms)": _ms(_median(after)),
                "simulated after (ms)": _ms(_median([r["simulated_s"] for r in mine
                                                     if r["after_event"]])),
                "after event (samples/s)": _median([r["throughput_sps"] for r in mine
                                                    if r["after_event"]]),
                "wall (s)": f"{s[f'{arm}_wall_s']:.1f}",
                "final loss": s[f"{arm}_final_loss"],
                "outcome": (f"failed: {fail['node']} gone" if fail is not None else "done")})
    return out


def adaptation_markdown(result: ExperimentResult) -> str:
    """Per case: the summary; per arm: medians before and after the event; the re-plans."""
    cfg = result.config
    case_rows = []
    for s in result.summary:
        n = s["iterations_to_target"]
        case_rows.append({
            "case": s["case"], "event": s["event"],
            "planned T: initial / static after / adapted / optimum (ms)":
                " / ".join(_ms(s[k]) for k in ("initial_T_s", "static_T_after_s",
                                                 "adapted_T_after_s", "optimum_T_s")),
            "measured after event: static / adapted / optimum (ms)":
                " / ".join(_ms(s[k]) for k in ("static_after_s", "adapted_after_switch_s",
                                                 "optimum_after_event_s")),
            "adapted / optimum": s["adapted_vs_optimum"],
            f"iterations to {cfg.target:.0%} of optimum":
                ("never" if n is None or n == "" else
                 f"{n} ({'≤' if s['within'] else '>'} {cfg.within})"),
            "relaunch gap (s)": s["relaunch_s"],
            "lost iterations": s["lost_iterations"],
            "resumed at": s["resumed_from"],
            "final loss: static / adapted / optimum":
                " / ".join(f"{s[f'{a}_final_loss']:.3f}" for a in ARMS)})
    replans = [{"case": r["case"], "after iteration": r["iteration"], "trigger": r["trigger"],
                "switch": r["switch"], "old T (ms)": _ms(r["old_objective_s"]),
                "new T (ms)": _ms(r["new_objective_s"]), "new plan": r["plan"],
                "relaunch gap (s)": r["relaunch_s"], "detail": r["detail"]}
               for r in result.rows if r["record"] == "replan"]
    head = (f"### {result.name}\n\nScenario {cfg.scenario}, {cfg.steps} iterations per run, "
            f"time scale {cfg.time_scale:g}, seed {cfg.seed}; every arm trains under the "
            "same scripted event: static = the initial optimal plan throughout, adapted = "
            "drift detection + re-plan + relaunch (or resume without a departed node), "
            "optimum = the changed network's optimal plan from the start. Measured = "
            "emulated iteration time; medians after the event (adapted: after its switch).\n\n")
    fmt = {"adapted / optimum": _fixed(3), "relaunch gap (s)": _fixed(1),
           "after event (samples/s)": _fixed(1)}
    return (head + markdown_table(case_rows, formats=fmt)
            + "\nPer arm (medians of the kept iterations):\n\n"
            + markdown_table(_arm_rows(result), formats=fmt)
            + "\nRe-plans of the adapted arm:\n\n" + markdown_table(replans, formats=fmt))


def _fixed(digits: int) -> Callable[[Any], str]:
    def fmt(value: Any) -> str:
        if isinstance(value, float | int) and not isinstance(value, bool):
            return "–" if math.isnan(value) else f"{value:.{digits}f}"
        return str(value)

    return fmt


def units(config: AdaptationConfig) -> int:
    """Progress steps of :func:`run_adaptation`: one per (case, arm).

    Raises
    ------
    ProblemError, RuntimeSetupError
        As :func:`run_adaptation` would, before anything runs (a bad field, no torch).
    """
    _check(config)
    _require_torch()
    return len(config.cases) * len(ARMS)

