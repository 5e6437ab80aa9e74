"""Single-process training of the same model on the same data: the runtime's yardstick.

:func:`train_reference` trains the whole chain in one process with the run's seed, data,
loss and optimiser, one full mini-batch per step. Pipelined split training with gradients
accumulated over micro-batches must end with the same parameters (up to floating-point
rounding; use ``dtype="float64"`` for tight comparisons).
"""

from __future__ import annotations

from typing import Any

import torch

from pipesl.problem.types import Problem
from pipesl.runtime.config import RunConfig, build_config
from pipesl.runtime.data import DataSpec, make_batches
from pipesl.runtime.stages import build_chain, inspect_model, micro_batch_loss

__all__ = ["train_reference"]


def train_reference(problem: Problem, config: RunConfig | None = None, *,
                    dataset: Any = None) -> tuple[dict[str, torch.Tensor], list[float]]:
    """Train ``config.training.steps`` iterations in this process; return (state_dict, losses).

    Parameters
    ----------
    problem : Problem
        Supplies the batch size B and the model profile (for the unit count).
    config : RunConfig, optional
        The same options as the pipelined run (seed, data, dtype, lr, momentum, model).
    dataset : torch.utils.data.Dataset, optional
        As for :func:`pipesl.runtime.train`.
    """
    cfg = build_config(config)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    info = inspect_model(problem, cfg.job.model)
    batch = problem.training.batch_size
    data = make_batches(DataSpec(
        kind="dataset" if dataset is not None else cfg.job.data, batch_size=batch,
        sample_shape=info.sample_shape, num_classes=info.num_classes,
        tokens=info.loss == "lm", zoo_name=info.zoo_name, seed=cfg.job.seed, dtype=cfg.job.dtype,
        dataset=dataset))
    model = build_chain(info.ref, cfg.job.seed, getattr(torch, cfg.job.dtype),
                        problem.model.num_layers)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.training.lr, momentum=cfg.training.momentum)
    loss_of = micro_batch_loss(info.loss, batch)
    losses = []
    for it in range(cfg.training.steps):
        x, y = data.batch(it)
        opt.zero_grad(set_to_none=True)
        loss = loss_of(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, losses
