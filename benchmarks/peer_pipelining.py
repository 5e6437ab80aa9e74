"""pipesl's runtime against torch.distributed.pipelining on the same split.

For each model (the zoo's digits CNN and a CIFAR-sized CNN defined here in plain torch), each
schedule (GPipe, 1F1B) and each number of micro-batches M, the same two-stage split of the
same model (same initial weights, data, loss scaling and SGD) is trained by

* **pipesl**: ``pipesl.runtime.train`` with emulation off, two processes (one per node of a
  two-node problem joined by one link), and
* **torch**: ``torch.distributed.pipelining`` (``PipelineStage`` + ``ScheduleGPipe`` /
  ``Schedule1F1B``), two processes on gloo,

each process under the ``spawn`` start method with ``torch.set_num_threads(1)``. The
iteration time is the period between the source's iteration starts (everything between two
iterations included: optimiser step, records, barriers), averaged over the iterations after
the warm-up ones; a row's figure is the median of ``--repeats`` runs whose order alternates
(pipesl first, then torch first, ...). The final parameters of both are compared
(``torch.equal`` on every tensor). Process start-up is not counted for either.

Run: ``.venv/bin/python benchmarks/peer_pipelining.py [--steps 12] [--repeats 3]``. Ends with
``peer: worst ratio pipesl/torch X``.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
from torch import nn

from pipesl.plan import Plan, Stage
from pipesl.problem import compose_problem
from pipesl.problem.types import Link, Network, Node
from pipesl.profiling import profile
from pipesl.runtime import RunConfig, build_config, make_job, train
from pipesl.runtime.data import make_batches
from pipesl.runtime.stages import build_chain, micro_batch_loss, stage_module

WARMUP = 2
"""Iterations not timed (the first ones pay for allocations and shape inference)."""


def cifar_cnn() -> nn.Sequential:
    """A 6-unit CNN for 3x32x32 inputs (about 100 ms per iteration of 64 samples on one core).
    """
    def conv(cin: int, cout: int, pool: bool) -> nn.Sequential:
        layers: list[tuple[str, nn.Module]] = [("conv", nn.Conv2d(cin, cout, 3, padding=1)),
                                               ("relu", nn.ReLU())]
        if pool:
            layers.append(("pool", nn.MaxPool2d(2)))
        return nn.Sequential(OrderedDict(layers))

    model = nn.Sequential(OrderedDict([
        ("conv1", conv(3, 32, False)),
        ("conv2", conv(32, 32, True)),
        ("conv3", conv(32, 64, False)),
        ("conv4", conv(64, 64, True)),
        ("fc1", nn.Sequential(OrderedDict([("flatten", nn.Flatten()),
                                           ("fc", nn.Linear(64 * 8 * 8, 128)),
                                           ("relu", nn.ReLU())]))),
        ("head", nn.Linear(128, 10)),
    ]))
    model.input_shape = (3, 32, 32)  # what pipesl's model loader asks of a user model
    return model


@dataclass(frozen=True)
class Case:
    label: str
    model: str
    """Zoo name or ``module:factory``."""
    input_shape: tuple[int, ...] | None
    batch_size: int
    split: int
    """Stage 1 runs units 1..split."""


CASES = (
    Case("digits CNN", "cnn-digits", None, 64, 2),
    Case("CIFAR-sized CNN", "peer_pipelining:cifar_cnn", None, 64, 3),
)


def setup(case: Case, m: int, schedule: str) -> tuple[Any, Plan, RunConfig]:
    """A two-node problem (a -- b, one full-duplex link), the split, the options."""
    model = profile(case.model, input_shape=case.input_shape)
    network = Network((Node("a", flops=1e10, memory=1e10), Node("b", flops=1e10, memory=1e10)),
                      (Link("a", "b", bandwidth=1e9, latency=0.0, duplex="full"),))
    problem = compose_problem(network, model, {"source": "a", "batch_size": case.batch_size,
                                               "schedule": schedule}, name=case.label)
    b = -(-case.batch_size // m)
    plan = Plan((Stage("a", 1, case.split), Stage("b", case.split + 1, model.num_layers)),
                (("a", "b"),), b)
    return problem, plan, build_config(schedule=schedule, emulate=False, model=case.model,
                                    lr=0.05, seed=0)


# ---------------------------------------------------------------------- torch


def _torch_rank(rank: int, init: str, job: Any, steps: int, out: Any) -> None:
    import torch.distributed as dist
    from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe

    torch.set_num_threads(1)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2,
                            timeout=timedelta(seconds=120))
    stage = job.topology.stages[rank]
    dtype = getattr(torch, job.config.job.dtype)
    chain = build_chain(job.model.ref, job.config.job.seed, dtype, job.problem.model.num_layers)
    module = stage_module(chain, stage.first_layer, stage.last_layer)
    del chain
    module.train()
    optimizer = torch.optim.SGD(module.parameters(), lr=job.config.training.lr)
    pipe_stage = PipelineStage(module, rank, 2, torch.device("cpu"))
    kind = ScheduleGPipe if job.config.training.schedule == "gpipe" else Schedule1F1B
    schedule = kind(pipe_stage, job.topology.num_micro_batches,
                    loss_fn=micro_batch_loss(job.model.loss, job.topology.batch_size),
                    scale_grads=False)
    batches = make_batches(job.data)
    starts: list[float] = []
    dist.barrier()
    for it in range(steps):
        x, y = batches.batch(it)
        starts.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        if rank == 0:
            schedule.step(x)
        else:
            schedule.step(target=y)
        optimizer.step()
    dist.barrier()
    buffer = io.BytesIO()
    torch.save({k: v.detach().clone() for k, v in module.state_dict().items()}, buffer)
    out.put((rank, starts, buffer.getvalue()))
    dist.destroy_process_group()


def run_torch(job: Any, steps: int) -> tuple[list[float], dict[str, torch.Tensor]]:
    """Iteration start times on the source and the trained parameters."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="peer-rdv-") as folder:
        init = f"file://{os.path.join(folder, 'store')}"
        procs = [ctx.Process(target=_torch_rank, args=(r, init, job, steps, out))
                 for r in range(2)]
        for p in procs:
            p.start()
        parts = [out.get(timeout=600) for _ in procs]
        for p in procs:
            p.join(60)
    starts = next(s for r, s, _ in parts if r == 0)
    state: dict[str, torch.Tensor] = {}
    for _, _, blob in parts:
        state.update(torch.load(io.BytesIO(blob), weights_only=True))
    return starts, state


# ---------------------------------------------------------------------- pipesl


def run_pipesl(problem: Any, plan: Plan, config: RunConfig, steps: int
               ) -> tuple[list[float], dict[str, torch.Tensor]]:
    result = train(problem, plan, config.with_options(steps=steps, return_state=True))
    assert result.state is not None
    return [it.started_s for it in result.iterations], result.state


def period(starts: list[float]) -> float:
    """Mean time between iteration starts after the warm-up (the last iteration's own time
    is not bounded by a next start, so it is left out)."""
    timed = starts[WARMUP:]
    return (timed[-1] - timed[0]) / (len(timed) - 1)


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="iterations per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per system and row")
    parser.add_argument("--quick", action="store_true", help="M = 4 only")
    parser.add_argument("--model", choices=("digits", "cifar"), help="only this model")
    parser.add_argument("--schedule", choices=("gpipe", "1f1b"), help="only this schedule")
    args = parser.parse_args()
    if args.steps < WARMUP + 2:
        parser.error(f"--steps must be at least {WARMUP + 2}")
    rows = []
    began = time.perf_counter()
    for case in CASES:
        if args.model and not case.label.lower().startswith(args.model):
            continue
        for schedule in (args.schedule,) if args.schedule else ("gpipe", "1f1b"):
            for m in (4,) if args.quick else (4, 8):
                problem, plan, config = setup(case, m, schedule)
                job = make_job(problem, plan, config.with_options(steps=args.steps))
                ours: list[float] = []
                theirs: list[float] = []
                equal = True
                for r in range(args.repeats):
                    order = ("pipesl", "torch") if r % 2 == 0 else ("torch", "pipesl")
                    for system in order:
                        if system == "pipesl":
                            starts, state_p = run_pipesl(problem, plan, config, args.steps)
                            ours.append(period(starts))
                        else:
                            starts, state_t = run_torch(job, args.steps)
                            theirs.append(period(starts))
                    equal = equal and same(state_p, state_t)
                p, t = statistics.median(ours), statistics.median(theirs)
                rows.append((case.label, schedule, m, plan.micro_batch_size, p, t, equal))
                print(f"  {case.label} {schedule} M={m}: pipesl "
                      f"{', '.join(f'{v * 1e3:.1f}' for v in ours)} ms, torch "
                      f"{', '.join(f'{v * 1e3:.1f}' for v in theirs)} ms", flush=True)
    print()
    print(f"{'model':<16} {'sched':<6} {'M':>2} {'b':>3} {'pipesl':>9} {'torch':>9} "
          f"{'ratio':>6}  params")
    for label, schedule, m, b, p, t, equal in rows:
        print(f"{label:<16} {schedule:<6} {m:>2} {b:>3} {p * 1e3:>7.1f}ms {t * 1e3:>7.1f}ms "
              f"{p / t:>6.2f}  {'equal' if equal else 'DIFFER'}")
    print(f"({args.repeats} alternating repeats of {args.steps} iterations per system and "
          f"row, first {WARMUP} not timed; {time.perf_counter() - began:.0f} s; load average "
          f"{os.getloadavg()[0]:.1f})")
    worst = max(p / t for _, _, _, _, p, t, _ in rows)
    print(f"peer: worst ratio pipesl/torch {worst:.2f}")


if __name__ == "__main__":
    main()
