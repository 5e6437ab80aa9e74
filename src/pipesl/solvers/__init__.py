"""Planners: where to cut the model, where each stage runs, the routes, and b.

``solve(problem, method=...)`` dispatches through one registry and returns a
:class:`SolveResult`. The pieces, from the inside out:

* :mod:`~pipesl.solvers.basp` — the bottleneck-aware shortest path over any DiGraph;
* :mod:`~pipesl.solvers.decision_graph` — the explicit layered decision graph (small problems);
* :mod:`~pipesl.solvers.routes`, :mod:`~pipesl.solvers.layered` — the same graph's DP, fast;
* :mod:`~pipesl.solvers.search` — exact A* with shared links and distinct nodes;
* :mod:`~pipesl.solvers.threshold`, :mod:`~pipesl.solvers.exact` — thresholds and b, exactly;
* :mod:`~pipesl.solvers.makespan` — the least *simulated* makespan of the schedule, certified
  by branch and bound on valid makespan bounds (:mod:`pipesl.cost.bounds`);
* :mod:`~pipesl.solvers.microbatch` — the closed-form micro-batch size;
* :mod:`~pipesl.solvers.alternating` — the paper's alternating optimisation;
* :mod:`~pipesl.solvers.bruteforce` — exhaustive enumeration for small problems (tests);
* :mod:`~pipesl.solvers.milp` — the same problem as a mixed-integer program (HiGHS), per b;
* :mod:`~pipesl.solvers.baselines`, :mod:`~pipesl.solvers.heuristics` — what the planner is
  compared with: no pipelining, two tiers, a fixed b, bottleneck-only, and rules of thumb.
"""

from pipesl.solvers import alternating as _alternating  # noqa: F401  (registers)
from pipesl.solvers import baselines as _baselines  # noqa: F401  (registers)
from pipesl.solvers import bruteforce as _bruteforce  # noqa: F401  (registers)
from pipesl.solvers import exact as _exact  # noqa: F401  (registers)
from pipesl.solvers import heuristics as _heuristics  # noqa: F401  (registers)
from pipesl.solvers import makespan as _makespan  # noqa: F401  (registers)
from pipesl.solvers import milp as _milp  # noqa: F401  (registers)
from pipesl.solvers.basp import BaspResult, bottleneck_aware_shortest_path
from pipesl.solvers.exact import candidate_micro_batch_sizes, solve_exact
from pipesl.solvers.makespan import plan_makespan, solve_makespan
from pipesl.solvers.microbatch import best_micro_batch_size, search_micro_batch_size
from pipesl.solvers.result import SOLVERS, SolveResult, solve, solver_names

__all__ = [
    "SOLVERS",
    "BaspResult",
    "SolveResult",
    "best_micro_batch_size",
    "bottleneck_aware_shortest_path",
    "candidate_micro_batch_sizes",
    "plan_makespan",
    "search_micro_batch_size",
    "solve",
    "solve_exact",
    "solve_makespan",
    "solver_names",
]
