"""A network of real hosts on one machine: a Linux network namespace per node, a veth pair per
link, the kernel's ``tc`` (tbf) for each link's bandwidth, ``pipesl probe`` and
``pipesl worker`` across them (``pipesl testbed``; root only).

:mod:`pipesl.testbed.netns` builds and removes the namespaces (no torch),
:mod:`pipesl.testbed.run` starts the ranks in them, :mod:`pipesl.testbed.scenario` compares
measured with predicted iteration times.
"""

from pipesl.testbed.netns import LinkSetup, Testbed, leftovers, netns_unavailable, sweep_stale
from pipesl.testbed.run import kernel_problem, latency_padding, probe_testbed, train_testbed
from pipesl.testbed.scenario import LinkRow, ScenarioResult, measure_scenario

__all__ = [
    "LinkRow",
    "LinkSetup",
    "ScenarioResult",
    "Testbed",
    "kernel_problem",
    "latency_padding",
    "leftovers",
    "measure_scenario",
    "netns_unavailable",
    "probe_testbed",
    "sweep_stale",
    "train_testbed",
]
