"""Single-process training of several data owners with the same semantics: the yardstick of
the many-owner runtime.

:func:`train_owners_reference` trains, in this process, one full mini-batch per owner per
iteration, on each owner's own data (seed ``seed + o``), from the same initial weights (the
chain built with the run's seed):

* ``per-owner`` replicas: every owner trains its own copy of the whole model (its own SGD);
  ``parallel`` and ``sequential`` give the same parameters (the owners share nothing);
* ``shared`` replicas: each owner keeps a private copy of layers 1..c (c = the last layer of
  its first stage, the same for every owner) with its own SGD; layers c+1..L exist once, with
  one SGD. ``parallel``: every owner's mean loss is back-propagated, then one step of every
  optimiser, so the server's gradient is the sum of the owners' gradients; ``sequential``:
  owners take turns, each turn one step of the owner's private layers and of the server.

Pipelined training must end with the same parameters up to floating-point rounding (the
server sums micro-batch gradients in another order); use ``dtype="float64"``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from pipesl.problem.types import Problem
from pipesl.runtime.config import RunConfig, build_config
from pipesl.runtime.data import DataSpec, make_batches
from pipesl.runtime.owners.worker import owner_seed
from pipesl.runtime.stages import build_chain, inspect_model, micro_batch_loss

__all__ = ["train_owners_reference"]


def train_owners_reference(problem: Problem, plan: Any, config: RunConfig | None = None
                           ) -> tuple[dict[int, dict[str, torch.Tensor]], list[tuple[float, ...]]]:
    """Train ``config.training.steps`` iterations (rounds) in this process.

    Parameters
    ----------
    problem : Problem
        Its owners (batch sizes), ``training.owners`` and ``training.replicas``.
    plan : OwnersPlan
        Gives the cut c under ``shared`` replicas (owner 0's first stage).
    config : RunConfig, optional
        Seed, data, dtype, lr, momentum, model, steps.

    Returns
    -------
    states : dict of int to dict
        Owner o's model parameters (its private layers and the shared ones).
    losses : list of tuple of float
        Per iteration, each owner's mean loss.
    """
    cfg = build_config(config)
    info = inspect_model(problem, cfg.job.model)
    owners = problem.owners
    tr = problem.training
    shared = getattr(tr, "replicas", "per-owner") == "shared"
    sequential = getattr(tr, "owners_mode", "parallel") == "sequential"
    data = [make_batches(DataSpec(
        kind=cfg.job.data, batch_size=d.batch_size, sample_shape=info.sample_shape,
        num_classes=info.num_classes, tokens=info.loss == "lm", zoo_name=info.zoo_name,
        seed=owner_seed(cfg.job.seed, o), dtype=cfg.job.dtype)) for o, d in enumerate(owners)]
    chain = build_chain(info.ref, cfg.job.seed, getattr(torch, cfg.job.dtype),
                        problem.model.num_layers)
    chain.train()

    def sgd(module: torch.nn.Module) -> torch.optim.Optimizer | None:
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            return None
        return torch.optim.SGD(params, lr=cfg.training.lr, momentum=cfg.training.momentum)

    if shared:
        c = plan.plans[0].stages[0].last_layer
        private = [copy.deepcopy(chain[:c]) for _ in owners]
        server = copy.deepcopy(chain[c:])
        models = [torch.nn.Sequential(p, server) for p in private]
        private_opts = [sgd(p) for p in private]
        server_opt = sgd(server)
    else:
        models = [copy.deepcopy(chain) for _ in owners]
        private_opts = [sgd(m) for m in models]
        server_opt = None
    loss_of = [micro_batch_loss(info.loss, d.batch_size) for d in owners]
    turns = [[o] for o in range(len(owners))] if sequential else [list(range(len(owners)))]
    losses: list[tuple[float, ...]] = []
    for it in range(cfg.training.steps):
        row = [0.0] * len(owners)
        for turn in turns:
            opts = [private_opts[o] for o in turn] + [server_opt]
            for opt in opts:
                if opt is not None:
                    opt.zero_grad(set_to_none=True)
            for o in turn:
                x, y = data[o].batch(it)
                loss = loss_of[o](models[o](x), y)
                loss.backward()
                row[o] = float(loss.detach())
            for opt in opts:
                if opt is not None:
                    opt.step()
        losses.append(tuple(row))
    states: dict[int, dict[str, torch.Tensor]] = {}
    for o in range(len(owners)):
        if shared:
            state = {**private[o].state_dict(), **server.state_dict()}
        else:
            state = models[o].state_dict()
        states[o] = {k: v.detach().clone() for k, v in state.items()}
    return states, losses
