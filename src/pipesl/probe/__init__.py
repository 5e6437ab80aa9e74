"""Measure what a problem file needs: link bandwidth and latency per direction over the
runtime's own transport, device FLOP/s from the calibration (``pipesl probe``).

:mod:`pipesl.probe.estimate` (no torch) fits the timed transfers and writes the measured
values into a problem; :mod:`pipesl.probe.links` fits the timings of
:mod:`pipesl.runtime.linktiming` (the torch part); :mod:`pipesl.probe.run`
is one rank of a probe under torchrun.
"""

from pipesl.probe.estimate import DirectionEstimate, LinkEstimate, fit_direction, probed_problem
from pipesl.probe.run import DEFAULT_SIZES, ProbeResult, message_sizes, probe_nodes, run_probe

__all__ = [
    "DEFAULT_SIZES",
    "DirectionEstimate",
    "LinkEstimate",
    "ProbeResult",
    "fit_direction",
    "message_sizes",
    "probe_nodes",
    "probed_problem",
    "run_probe",
]
