"""When to post a receive on gloo: ahead or when needed, for GPipe and 1F1B, without pipesl.

Two processes on gloo (``spawn``, one thread each) run a two-stage pipeline whose passes are
busy waits of fixed length (0.35 / 0.6 ms forward / backward on stage 1, 0.42 / 0.25 ms on
stage 2, about the digits CNN's) and whose messages are 128 KiB tensors, under GPipe or 1F1B
(stage 1 warms up with two forwards, as ``torch.distributed.pipelining``'s Schedule1F1B).
Each receive is posted either **ahead** (the stream's next one as soon as one is taken:
pipesl's transport) or **on demand** (just before it is waited for, as torch posts it).
The iteration time is the median period between stage 1's iteration starts after 2 warm-up
iterations; a row's figure is the median of ``--repeats`` runs in alternating order (each
run's figure is printed too, since the two cores are shared).

Run: ``.venv/bin/python benchmarks/gloo_posting.py [--iterations 40] [--repeats 3]``. Ends
with ``gloo posting: on demand / ahead: 1F1B X, GPipe Y``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from itertools import pairwise
from typing import Any

PASS_S = {(0, "F"): 0.35e-3, (0, "B"): 0.6e-3, (1, "F"): 0.42e-3, (1, "B"): 0.25e-3}
ELEMENTS = 128 * 1024 // 4
WARMUP = 2


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _order(rank: int, schedule: str, m_total: int) -> list[tuple[str, int]]:
    if schedule == "gpipe":
        return [("F", m) for m in range(m_total)] + [("B", m) for m in range(m_total)]
    warm = min(m_total, 2 - rank)
    out, f = [("F", m) for m in range(warm)], warm
    for b in range(m_total):
        out.append(("B", b))
        if f < m_total:
            out.append(("F", f))
            f += 1
    return out


def _rank(rank: int, init: str, mode: str, schedule: str, m_total: int, iterations: int,
          out: Any) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    peer, tag = 1 - rank, {"F": 2, "B": 3}
    inbound = "B" if rank == 0 else "F"
    actions: list[tuple[str, str, int]] = []
    for kind, m in _order(rank, schedule, m_total):
        if rank == 0:
            actions += [("C", "F", m), ("S", "F", m)] if kind == "F" else [("R", "B", m),
                                                                            ("C", "B", m)]
        else:
            actions += [("R", "F", m), ("C", "F", m)] if kind == "F" else [("C", "B", m),
                                                                            ("S", "B", m)]
    receives = [(it, m) for it in range(iterations) for a, _, m in actions if a == "R"]
    posted: dict[tuple[int, int], Any] = {}
    following = 0

    def post() -> None:
        nonlocal following
        buf = torch.empty(ELEMENTS)
        posted[receives[following]] = (buf, dist.irecv(buf, src=peer, tag=tag[inbound]))
        following += 1

    starts = []
    dist.barrier()
    if mode == "ahead":
        post()
    for it in range(iterations):
        starts.append(time.perf_counter())
        sends = []
        for a, kind, m in actions:
            if a == "C":
                _spin(PASS_S[(rank, kind)])
            elif a == "S":
                sends.append(dist.isend(torch.empty(ELEMENTS), dst=peer, tag=tag[kind]))
            else:
                if (it, m) not in posted:
                    post()
                _, work = posted.pop((it, m))
                work.wait()
                if mode == "ahead" and following < len(receives):
                    post()
        for s in sends:
            s.wait()
    dist.barrier()
    if rank == 0:
        out.put(starts)
    dist.destroy_process_group()


def run(mode: str, schedule: str, m_total: int, iterations: int) -> float:
    """Median iteration period (s) of one run."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="gloo-posting-") as folder:
        init = f"file://{os.path.join(folder, 'store')}"
        procs = [ctx.Process(target=_rank, args=(r, init, mode, schedule, m_total, iterations,
                                                 out)) for r in range(2)]
        for p in procs:
            p.start()
        starts = out.get(timeout=300)
        for p in procs:
            p.join(60)
    timed = starts[WARMUP:]
    return statistics.median(b - a for a, b in pairwise(timed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.iterations < WARMUP + 2:
        parser.error(f"--iterations must be at least {WARMUP + 2}")
    began = time.perf_counter()
    rows = []
    for schedule, m_total in (("1f1b", 4), ("1f1b", 8), ("gpipe", 8)):
        got: dict[str, list[float]] = {"ahead": [], "demand": []}
        for r in range(args.repeats):
            for mode in ("ahead", "demand") if r % 2 == 0 else ("demand", "ahead"):
                got[mode].append(run(mode, schedule, m_total, args.iterations))
        rows.append((schedule, m_total, got))
    print(f"{'sched':<6} {'M':>2} {'ahead':>8} {'demand':>8} {'ratio':>6}  runs (ms)")
    ratios: dict[str, list[float]] = {"1f1b": [], "gpipe": []}
    for schedule, m_total, got in rows:
        a, d = statistics.median(got["ahead"]), statistics.median(got["demand"])
        ratios[schedule].append(d / a)
        runs = "ahead " + ", ".join(f"{v * 1e3:.2f}" for v in got["ahead"]) + "; demand " + \
            ", ".join(f"{v * 1e3:.2f}" for v in got["demand"])
        print(f"{schedule:<6} {m_total:>2} {a * 1e3:>6.2f}ms {d * 1e3:>6.2f}ms {d / a:>6.2f}  "
              f"{runs}")
    print(f"({args.repeats} alternating repeats of {args.iterations} iterations, first {WARMUP} "
          f"not timed; {time.perf_counter() - began:.0f} s; load average "
          f"{os.getloadavg()[0]:.1f})")
    print(f"gloo posting: on demand / ahead: 1F1B "
          f"{', '.join(f'{r:.2f}' for r in ratios['1f1b'])}, GPipe "
          f"{', '.join(f'{r:.2f}' for r in ratios['gpipe'])}")


if __name__ == "__main__":
    main()
