"""``pipesl testbed``: probe, plan and train a problem on kernel-shaped network namespaces."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from pipesl.cli.app import (
    PROBLEM_HELP,
    app,
    check_writable,
    console,
    print_json,
    require_single_owner,
)

if TYPE_CHECKING:
    from rich.table import Table

    from pipesl.testbed.scenario import ScenarioResult

__all__ = ["scenario_dict", "scenario_tables", "testbed"]


def scenario_tables(res: ScenarioResult) -> list[Table]:
    """Links (configured against probed) and iterations (measured against predicted)."""
    from rich.table import Table

    links = Table(title=f"{res.name}: links (tbf rate against probed goodput)",
                  title_justify="left")
    for col in ("link", "direction", "tbf Mb/s", "probed Mb/s", "error", "spread",
                "latency ms", "probed ms", "alone ms", "padding B"):
        links.add_column(col, justify="left" if col in ("link", "direction") else "right")
    for row in res.links:
        links.add_row(row.link, row.direction, f"{row.configured_bps / 1e6:.2f}",
                      f"{row.probed_bps / 1e6:.2f}", f"{100 * row.error:+.1f}%",
                      f"{100 * row.spread:.1f}%", f"{row.latency_configured_s * 1e3:.2f}",
                      f"{row.latency_probed_s * 1e3:.2f}", f"{row.latency_alone_s * 1e3:.2f}",
                      str(row.padding_bytes))
    stages = " -> ".join(f"{s.node}[{s.first_layer}-{s.last_layer}]" for s in res.plan.stages)
    its = Table(title=f"{res.name}: {stages}, b = {res.plan.micro_batch_size} "
                f"({res.train['schedule']}, wall clock)", title_justify="left")
    for col in ("iteration", "measured ms", "simulated ms", "analytic ms", "error",
                "sim. configured ms"):
        its.add_column(col, justify="right")
    for it, err in zip(res.iterations, res.errors, strict=True):
        its.add_row(str(it["iteration"]), f"{it['measured_s'] * 1e3:.1f}",
                    f"{it['simulated_s'] * 1e3:.1f}", f"{it['analytic_s'] * 1e3:.1f}",
                    f"{100 * err:+.1f}%", f"{res.simulated_configured_s * 1e3:.1f}")
    return [links, its]


def scenario_dict(res: ScenarioResult) -> dict[str, Any]:
    """Plain-JSON form."""
    from pipesl.plan import plan_to_dict

    return {"name": res.name, "plan": plan_to_dict(res.plan),
            "links": [{"link": r.link, "direction": r.direction,
                       "configured_bps": r.configured_bps, "probed_bps": r.probed_bps,
                       "error": r.error, "spread": r.spread,
                       "latency_configured_s": r.latency_configured_s,
                       "latency_probed_s": r.latency_probed_s,
                       "latency_alone_s": r.latency_alone_s,
                       "padding_bytes": r.padding_bytes} for r in res.links],
            "measured_s": res.measured_s, "simulated_s": res.simulated_s,
            "analytic_s": res.analytic_s, "simulated_configured_s": res.simulated_configured_s,
            "errors": res.errors, "qdisc": res.qdisc, "train": res.train}


@app.command()
def testbed(
    problem: str = typer.Argument("iot-digits", help=PROBLEM_HELP),
    steps: int = typer.Option(6, "--steps", help="Training iterations (the first is not "
                              "compared: start-up)."),
    reps: int = typer.Option(8, "--reps", help="Probe: timed transfers per size and "
                             "direction."),
    data: str = typer.Option("digits", "--data", help="synthetic or digits."),
    folder: Path | None = typer.Option(None, "--folder", help="Keep the inputs, logs and "
                                       "outputs of every process here (default: a temporary "
                                       "folder)."),
    out: Path | None = typer.Option(None, "--out", help="Write the result as JSON."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Build network namespaces for a problem (tc-shaped veth links), probe them, plan on the
    probed problem, train across them and compare with the predictions (root only)."""
    from pipesl.exceptions import ProblemError
    from pipesl.problem import load_problem
    from pipesl.testbed import measure_scenario

    check_writable(out, "--out", (".json",))
    if folder is not None and not folder.is_dir():
        raise ProblemError("--folder", "must be an existing folder", str(folder))
    if steps < 2:
        raise ProblemError("--steps", "must be at least 2 (the first iteration is start-up)",
                           steps)
    prob = require_single_owner(load_problem(problem), "pipesl testbed")
    res = measure_scenario(prob, steps=steps, reps=reps, folder=folder, data=data)
    doc = scenario_dict(res)
    if out is not None:
        import json

        out.write_text(json.dumps(doc, indent=2) + "\n")
    if json_out:
        print_json(doc)
        return
    for table in scenario_tables(res):
        console.print(table)
    console.print(escape(f"median measured {res.measured_s * 1e3:.1f} ms, simulated on the "
                         f"probed problem {res.simulated_s * 1e3:.1f} ms "
                         f"({100 * (res.measured_s / res.simulated_s - 1):+.1f}%)"))
    if out is not None:
        console.print(escape(f"wrote {out}"))
