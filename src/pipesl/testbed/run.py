"""Run ``pipesl probe`` and ``pipesl worker`` across the namespaces of a :class:`Testbed`.

Each namespace is one host of a torchrun-style job with one process (``RANK`` = the node's
rank, ``LOCAL_WORLD_SIZE`` = 1, so every rank knows it shares no clock with the others and
uses the wall clock); ``MASTER_ADDR`` is the source's address, ``GLOO_SOCKET_IFNAME`` the
node's interface. The workers pad every pass to the problem's device speeds (``--emulate``:
these 2 cores stand in for a microcontroller and two Raspberry Pis) but do not pace the links
(``--no-pace-links``): the kernel's tbf does. The link's latency goes on the wire as padding
(:func:`latency_padding`), so that it occupies the link as the cost model says.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipesl.exceptions import RuntimeSetupError
from pipesl.plan import Plan, plan_to_dict
from pipesl.problem.io import dump_problem, load_problem
from pipesl.problem.types import Problem
from pipesl.testbed.netns import Testbed

__all__ = [
    "TCP_GOODPUT",
    "kernel_problem",
    "latency_padding",
    "padding_option",
    "probe_testbed",
    "run_ranks",
    "train_testbed",
]

logger = logging.getLogger(__name__)

TCP_GOODPUT = 1448 / 1514
"""Payload bytes per frame byte of a full TCP segment at MTU 1500 (20 B IPv4, 32 B TCP with
timestamps, 14 B Ethernet): the goodput of a link whose frames the kernel shapes."""
PORT = 29500
_SECONDARY = re.compile(r"Connection reset|Connection closed|receiving from|sending to|"
                        r"PeerFailure|failed: failed:")


def kernel_problem(problem: Problem) -> Problem:
    """``problem`` as the testbed enforces it: every link full duplex (tbf shapes each
    direction of a veth pair separately)."""
    links = tuple(replace(ln, duplex="full") for ln in problem.network.links)
    return replace(problem, network=replace(problem.network, links=links))


def latency_padding(tb: Testbed, configured: Problem) -> tuple[tuple[str, str, int], ...]:
    """Per testbed link, the payload bytes that take the configured latency on the wire at
    the link's TCP goodput: ``latency * rate * TCP_GOODPUT / 8``."""
    out = []
    for ln in tb.links:
        i = configured.network.link_index(ln.source, ln.target)
        assert i is not None
        latency = configured.network.links[i].latency
        size = round(latency * ln.rate_bps * TCP_GOODPUT / 8)
        if size > 0:
            out.append((ln.source, ln.target, size))
    return tuple(out)


def padding_option(padding: Sequence[tuple[str, str, int]]) -> list[str]:
    """``--latency-padding u-v=BYTES,...`` (nothing without padding)."""
    if not padding:
        return []
    return ["--latency-padding", ",".join(f"{u}-{v}={n}" for u, v, n in padding)]


def run_ranks(tb: Testbed, order: Sequence[str], argv: Callable[[str], list[str]],
              folder: Path, timeout_s: float = 600.0) -> dict[str, str]:
    """Start ``python -m pipesl <argv(node)>`` for each node of ``order`` (rank i = node i) in
    its namespace; wait for all; return each node's stdout.

    Raises
    ------
    RuntimeSetupError
        When a process fails (the others are killed) or the run exceeds ``timeout_s``.
    """
    master = tb.address(order[0])[1]
    procs: dict[str, subprocess.Popen[Any]] = {}
    logs: dict[str, tuple[Path, Path]] = {}
    for rank, node in enumerate(order):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GLOO_", "MASTER_"))}
        env.update(MASTER_ADDR=master, MASTER_PORT=str(PORT), WORLD_SIZE=str(len(order)),
                   RANK=str(rank), LOCAL_RANK="0", LOCAL_WORLD_SIZE="1",
                   GLOO_SOCKET_IFNAME=tb.address(node)[0], OMP_NUM_THREADS="1",
                   PYTHONUNBUFFERED="1")
        out, err = folder / f"{node}.out", folder / f"{node}.err"
        logs[node] = (out, err)
        with out.open("w") as fo, err.open("w") as fe:
            procs[node] = tb.popen(node, [sys.executable, "-m", "pipesl", *argv(node)], env,
                                   stdout=fo, stderr=fe)
    deadline = time.monotonic() + timeout_s
    timed_out = False
    while any(p.poll() is None for p in procs.values()):
        if any(p.poll() not in (None, 0) for p in procs.values()):
            deadline = min(deadline, time.monotonic() + 3.0)  # let the others fail too
        if time.monotonic() > deadline:
            timed_out = not any(p.poll() not in (None, 0) for p in procs.values())
            break
        time.sleep(0.1)
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.wait()
    bad = [n for n in order if procs[n].returncode != 0]
    if bad:
        def last_error(node: str) -> str:
            lines = [ln for ln in logs[node][1].read_text().splitlines() if ln.strip()]
            return lines[-1] if lines else f"exit code {procs[node].returncode}"

        # the node that failed first-hand, not a neighbour that lost its connection to it
        primary = [n for n in bad if not _SECONDARY.search(last_error(n))]
        node = (primary or bad)[0]
        why = last_error(node)
        if timed_out:
            why = f"timed out after {timeout_s:.0f} s ({why})"
        raise RuntimeSetupError(f"testbed: node {node} failed: {why[:400]}")
    return {n: logs[n][0].read_text() for n in order}


def _write_inputs(folder: Path, problem: Problem, plan: Plan | None, stem: str) -> list[str]:
    path = folder / f"{stem}.yaml"
    dump_problem(problem, path)
    args = [str(path)]
    if plan is not None:
        plan_path = folder / f"{stem}-plan.json"
        plan_path.write_text(json.dumps(plan_to_dict(plan), indent=2))
        args += ["--plan", str(plan_path)]
    return args


def probe_testbed(tb: Testbed, problem: Problem, plan: Plan | None, folder: Path, *,
                  reps: int = 8, padding: Sequence[tuple[str, str, int]] = (),
                  timeout_s: float = 600.0) -> tuple[Problem, dict[str, Any]]:
    """Probe every link of the testbed (one ``pipesl probe`` rank per namespace, the source
    first); return the probed problem (links full duplex) and the raw estimates."""
    order = [problem.training.source] + [n for n in tb.namespaces
                                         if n != problem.training.source]
    base = _write_inputs(folder, problem, plan, "probe-input")
    out, raw = folder / "probed.yaml", folder / "probe.json"

    def argv(node: str) -> list[str]:
        return ["probe", *base, "--nodes", ",".join(order), "--host-nodes", node,
                "--reps", str(reps), "--duplex", "full", *padding_option(padding),
                "--out", str(out), "--raw", str(raw)]

    run_ranks(tb, order, argv, folder, timeout_s)
    return load_problem(out), json.loads(raw.read_text())


def train_testbed(tb: Testbed, problem: Problem, plan: Plan, folder: Path, *,
                  steps: int = 6, padding: Sequence[tuple[str, str, int]] = (),
                  options: Sequence[str] = (), timeout_s: float = 600.0) -> dict[str, Any]:
    """Train ``plan`` across the namespaces (``pipesl worker`` per node, links paced by the
    kernel); return the source's ``--out`` JSON (:meth:`TrainResult.to_dict`)."""
    from pipesl.runtime.topology import build_topology

    order = build_topology(problem, plan).nodes
    missing = [n for n in order if n not in tb.namespaces]
    if missing:
        raise RuntimeSetupError(f"testbed: the plan uses nodes without a namespace: "
                                f"{', '.join(missing)}")
    base = _write_inputs(folder, problem, plan, "train-input")
    out = folder / "result.json"

    def argv(node: str) -> list[str]:
        return ["worker", *base, "--host-nodes", node, "--steps", str(steps), "--emulate",
                "--no-pace-links", *padding_option(padding), *options, "--out", str(out)]

    run_ranks(tb, order, argv, folder, timeout_s)
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def stats_delta(before: Mapping[str, Mapping[str, int]],
                after: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """Per interface, what the qdisc counters grew by."""
    return {dev: {k: v - before.get(dev, {}).get(k, 0) for k, v in counts.items()}
            for dev, counts in after.items()}
