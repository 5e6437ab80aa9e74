"""Profiling and speed calibration (PyTorch; install ``pipesl[torch]``).

``profile_model`` turns a chain of torch modules into the SPEC ``model`` section (per-unit
FLOPs, activation, parameter and saved-for-backward bytes, per sample); ``calibrate`` times a
model on this machine and fits the SPEC node figures (sustained FLOP/s, per-pass overhead).
"""

from pipesl.profiling.calibrate import AffineFit, Calibration, UnitTiming, calibrate, fit_affine
from pipesl.profiling.profile import (
    DTYPES,
    flop_counter,
    parse_dtype,
    profile,
    profile_document,
    profile_model,
)

__all__ = [
    "DTYPES",
    "AffineFit",
    "Calibration",
    "UnitTiming",
    "calibrate",
    "fit_affine",
    "flop_counter",
    "parse_dtype",
    "profile",
    "profile_document",
    "profile_model",
]
