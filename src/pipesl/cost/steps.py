"""The one pipeline-step type: what the simulator runs, the bounds read and the planner builds.

A plan is a sequence of *steps* in pipeline order — compute stages and link hops
(:func:`pipesl.cost.plan_stages`). Each step splits its stage time t (SPEC section 3) into a
forward and a backward pass, each affine in the micro-batch size b and each occupying one
typed :class:`~pipesl.cost.Resource`:

* a compute stage on node n with layers i..j::

      forward  = b * sum_{l=i..j} fwd_flops_l / flops_n + overhead_n
      backward = b * sum_{l=i..j} bwd_flops_l / flops_n + overhead_n

  both on the node n;
* a hop over link e carrying layer l's output takes
  ``x = 8 * b * out_bytes_l / bandwidth_e + latency_e`` each way: the activation forward and
  the gradient backward, both on a half-duplex link's one resource, or on a full-duplex
  link's two directions (u>v forward, v>u backward).

So ``forward + backward`` is the stage's t, and summing the passes per resource gives
:func:`pipesl.cost.resource_loads`. The simulator (:func:`pipesl.sim.run_pipeline`), the
makespan bounds (:mod:`pipesl.cost.bounds`) and the certified planner's partial plans
(:mod:`pipesl.solvers.makespan`) all take :class:`PipelineStep` values.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipesl.cost.model import Affine, Resource, plan_stages, transfer_time
from pipesl.plan import Plan
from pipesl.problem.types import Link, Problem

__all__ = ["PipelineStep", "compute_step", "hop_resources", "hop_step", "plan_steps"]


@dataclass(frozen=True)
class PipelineStep:
    """One position of the pipeline, with the time and resource of each of its passes."""

    name: str
    """People-readable (``dev0[1-4]``, ``dev0>r1 (L4)``), as :func:`plan_stages` names it."""
    forward: Affine
    """Forward pass time as a function of the micro-batch size b."""
    backward: Affine
    """Backward pass time as a function of b."""
    forward_resource: Resource
    """The resource the forward pass occupies."""
    backward_resource: Resource
    """The resource the backward pass occupies (same as forward except on full-duplex links)."""
    stage: int | None = None
    """0-based compute stage index (its schedule order); None for a link hop."""

    @property
    def compute(self) -> bool:
        """True for a compute stage, False for a link hop."""
        return self.stage is not None


def hop_resources(link: Link, u: str, v: str) -> tuple[Resource, Resource]:
    """(forward, backward) resources of a hop u -> v over ``link``."""
    if link.duplex == "full":
        return Resource("link", u, v, True), Resource("link", v, u, True)
    r = Resource("link", link.source, link.target)
    return r, r


def compute_step(node: str, first: int, last: int, forward: Affine, backward: Affine,
                 stage: int, resource: Resource | None = None) -> PipelineStep:
    """The step of compute stage ``stage``: ``node`` runs layers first..last (1-based)."""
    r = Resource("node", node) if resource is None else resource
    return PipelineStep(f"{node}[{first}-{last}]", forward, backward, r, r, stage)


def hop_step(link: Link, u: str, v: str, layer: int, out_bytes: float) -> PipelineStep:
    """The step of a hop u -> v over ``link`` carrying layer ``layer``'s output."""
    x = transfer_time(link, out_bytes)
    fwd, bwd = hop_resources(link, u, v)
    return PipelineStep(f"{u}>{v} (L{layer})", x, x, fwd, bwd)


def plan_steps(problem: Problem, plan: Plan) -> tuple[PipelineStep, ...]:
    """The plan's pipeline steps, aligned with :func:`pipesl.cost.plan_stages`.

    Returns
    -------
    tuple of PipelineStep
        One per element of ``plan_stages(problem, plan)``, in pipeline order; compute steps
        carry their stage index, hops None.
    """
    from pipesl.cost.tables import tables_for

    net, model = problem.network, problem.model
    tables = tables_for(problem)
    out: list[PipelineStep] = []
    for st in plan_stages(problem, plan):
        if st.kind == "compute":
            assert st.node is not None
            s = plan.stages[st.stage_index]
            fwd, bwd = tables.pass_affines(net.node_index[st.node], s.first_layer,
                                           s.last_layer)
            out.append(compute_step(st.node, s.first_layer, s.last_layer, fwd, bwd,
                                    st.stage_index))
        else:
            assert st.hop is not None
            u, v = st.hop
            link = net.link_between(u, v)
            assert link is not None, "validate_plan guarantees links exist"
            out.append(hop_step(link, u, v, st.layer, model.out_bytes(st.layer)))
    return tuple(out)
