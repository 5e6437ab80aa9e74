"""``pipesl probe``: measure links (and devices) under torchrun and write a problem file."""

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
from pipesl.exceptions import ProblemError

if TYPE_CHECKING:
    from rich.table import Table

    from pipesl.probe import ProbeResult
    from pipesl.problem.types import Problem

__all__ = ["probe", "probe_table"]


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def _sizes(text: str | None) -> list[int] | None:
    if not text:
        return None
    from pipesl.units import parse_quantity

    return [round(parse_quantity(s.strip(), "bytes", "--sizes")) for s in text.split(",")
            if s.strip()]


def padding_map(entries: tuple[tuple[str, str, int], ...]) -> dict[frozenset[str], int]:
    """``((u, v, bytes), ...)`` -> ``{frozenset((u, v)): bytes}``."""
    return {frozenset((u, v)): n for u, v, n in entries}


def _mbps(bps: float) -> str:
    return f"{bps / 1e6:.2f}"


def probe_table(result: ProbeResult, configured: Problem | None = None) -> Table:
    """Per link and direction: configured and probed bandwidth, latency, spread."""
    from rich.table import Table

    table = Table(title=f"Probed links ({result.reps} repetitions per size; transfers back "
                  "to back, and alone over an idle link)",
                  title_justify="left")
    for col in ("link", "direction", "configured Mb/s", "probed Mb/s", "spread",
                "latency ms", "latency range ms", "alone Mb/s", "alone latency ms", "sizes"):
        table.add_column(col, justify="left" if col in ("link", "direction") else "right")
    for est in result.links:
        conf = None
        if configured is not None:
            i = configured.network.link_index(est.source, est.target)
            conf = None if i is None else configured.network.links[i]
        for d, alone in ((est.forward, est.forward_alone), (est.backward, est.backward_alone)):
            lo, hi = d.latency_range
            table.add_row(f"{est.source}-{est.target}", f"{d.sender} > {d.receiver}",
                          "" if conf is None else _mbps(conf.bandwidth),
                          _mbps(d.bandwidth_bps), f"{100 * d.spread:.1f}%",
                          f"{d.latency_s * 1e3:.3f}", f"{lo * 1e3:.2f}..{hi * 1e3:.2f}",
                          "" if alone is None else _mbps(alone.bandwidth_bps),
                          "" if alone is None else f"{alone.latency_s * 1e3:.3f}",
                          ",".join(f"{s // 1024}k" if s >= 1024 else str(s) for s in d.sizes))
    return table


@app.command()
def probe(
    problem: str = typer.Argument(..., help=PROBLEM_HELP),
    plan: Path | None = typer.Option(None, "--plan", help="Probe the plan's nodes (in "
                                     "`pipesl worker`'s rank order) with its activations' "
                                     "sizes."),
    nodes: str | None = typer.Option(None, "--nodes", help="Without --plan: the probed "
                                     "nodes in rank order (default: every node)."),
    host_nodes: str | None = typer.Option(
        None, "--host-nodes", help="Comma-separated nodes this host runs, one per local "
        "process (LOCAL_RANK i runs the i-th); default: RANK r runs node r."),
    reps: int = typer.Option(8, "--reps", help="Timed transfers per size and direction."),
    sizes: str | None = typer.Option(None, "--sizes", help="Payload sizes to time, e.g. "
                                     "'8 KiB,32 KiB,128 KiB' (default: from the plan)."),
    latency_padding: str | None = typer.Option(
        None, "--latency-padding", help="u-v=BYTES,...: padding per transfer, as given to "
        "`pipesl worker` (pipesl testbed)."),
    devices: bool = typer.Option(False, "--devices/--no-devices", help="Also calibrate the "
                                 "model on every compute node (FLOP/s and overhead)."),
    model: str | None = typer.Option(None, "--model", help="With --devices: the model to "
                                     "time (default: the problem's)."),
    duplex: str | None = typer.Option(None, "--duplex", help="Write the probed links as "
                                      "'full' or 'half' duplex (default: as in the problem)."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds any message may wait."),
    out: Path | None = typer.Option(None, "--out", help="Write the problem with the measured "
                                    "values (.yaml/.json), names kept."),
    raw: Path | None = typer.Option(None, "--raw", help="Write every timing as JSON."),
    json_out: bool = typer.Option(False, "--json", help="Print the estimates as JSON."),
) -> None:
    """Measure link bandwidth and latency per direction over gloo (under torchrun)."""
    from pipesl.cli.train import _padding
    from pipesl.plan import load_single_plan
    from pipesl.probe import run_probe
    from pipesl.problem import load_problem
    from pipesl.problem.io import dump_problem

    if duplex not in (None, "full", "half"):
        raise ProblemError("--duplex", "must be full or half", duplex)
    for path, option, kinds in ((out, "--out", (".yaml", ".yml", ".json")),
                                (raw, "--raw", (".json",))):
        check_writable(path, option, kinds)
    prob = require_single_owner(load_problem(problem), "pipesl probe")
    chosen = load_single_plan(plan, prob, "pipesl probe") if plan is not None else None
    result = run_probe(prob, chosen, nodes=_names(nodes), host_nodes=_names(host_nodes),
                       reps=reps, sizes=_sizes(sizes),
                       padding=padding_map(_padding(latency_padding)), devices=devices,
                       model=model, duplex=duplex, timeout_s=timeout)
    if result is None:
        return
    written: list[Any] = []
    if out is not None:
        dump_problem(result.problem, out)
        written.append(out)
    if raw is not None:
        import json

        raw.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        written.append(raw)
    if json_out:
        print_json(result.to_dict())
    else:
        console.print(probe_table(result, prob))
        for node, (flops, overhead) in result.devices.items():
            console.print(escape(f"{node}: {flops / 1e9:.3g} GFLOP/s, overhead "
                                 f"{overhead * 1e3:.2f} ms per pass (calibrated)"))
    for path in written:
        if not json_out:
            console.print(escape(f"wrote {path}"))
