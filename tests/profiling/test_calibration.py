"""Speed calibration: the affine fit, the node entry it implies, and a real (tiny) run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipesl.exceptions import ProblemError
from pipesl.models import resolve_model
from pipesl.problem.parse import node_from_dict
from pipesl.profiling import AffineFit, Calibration, UnitTiming, calibrate, fit_affine


def test_fit_recovers_an_exact_line() -> None:
    sizes = [1, 2, 4, 8, 16]
    fit = fit_affine(sizes, [0.003 * b + 0.01 for b in sizes])
    assert fit.alpha == pytest.approx(0.003) and fit.beta == pytest.approx(0.01)
    assert fit.r2 == pytest.approx(1.0) and fit.max_rel_residual < 1e-9
    assert fit.predict(32) == pytest.approx(0.106)


def test_fit_reports_its_error() -> None:
    sizes = np.array([1, 2, 4, 8])
    times = 0.01 * sizes + 0.02
    times[2] *= 1.2  # one point 20 % off
    fit = fit_affine(sizes, times)
    assert 0.9 < fit.r2 < 1.0
    assert 0.05 < fit.max_rel_residual < 0.2
    with pytest.raises(ProblemError, match="two different batch sizes"):
        fit_affine([4, 4], [1.0, 1.1])


def test_node_entry_reads_the_fit_in_spec_terms() -> None:
    # 2 GFLOP per sample at 10 ms per sample -> 200 GFLOP/s; 6 ms per batch -> 3 ms per pass.
    total = UnitTiming("total", 2e9, (0.016, 0.026), AffineFit(0.010, 0.006, 1.0, 0.0))
    cal = Calibration("dev0", "m", (1, 2), 3, 2, 8e9, total, (total,))
    assert cal.flops == pytest.approx(2e11) and cal.overhead == pytest.approx(0.003)
    entry = cal.node_entry()
    assert entry == {"id": "dev0", "flops": pytest.approx(2e11), "memory": 8e9,
                     "overhead": pytest.approx(0.003), "compute": True}
    node = node_from_dict(entry, "node")
    assert node.can_compute and node.memory == 8e9
    negative = Calibration("d", "m", (1, 2), 3, 2, None, UnitTiming(
        "total", 1.0, (1.0, 2.0), AffineFit(1.0, -0.5, 1.0, 0.0)), ())
    assert negative.overhead == 0.0 and "memory" not in negative.node_entry()


def test_calibrate_a_small_cnn() -> None:
    resolved = resolve_model("cnn-digits")
    calls: list[tuple[int, int]] = []
    cal = calibrate(resolved.model, resolved.sample, name=resolved.name,
                    batch_sizes=(4, 32, 128), repeats=2, node_id="here",
                    progress=lambda done, total, what: calls.append((done, total)))
    assert [u.name for u in cal.units] == ["conv1", "conv2", "pool", "fc1", "head"]
    assert len(cal.total.seconds) == 3 and cal.total.fit.alpha > 0
    assert cal.flops > 1e6  # any machine does more than a MFLOP/s
    assert cal.total.flops == pytest.approx(sum(u.flops for u in cal.units))
    assert calls[-1] == (2 * 3 * 6, 2 * 3 * 6)  # repeats x batch sizes x (5 units + model)
    assert cal.node_entry()["id"] == "here" and cal.threads >= 1
    doc = json.loads(json.dumps(cal.to_dict(), allow_nan=False))
    assert doc["node"]["compute"] is True and len(doc["units"]) == 5
    with pytest.raises(ProblemError, match="repeats"):
        calibrate(resolved.model, resolved.sample, name="x", repeats=0)
