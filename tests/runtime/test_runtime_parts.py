"""In-process pieces of the runtime: options, data, models, the loss scaling, reports."""

from __future__ import annotations

import math

import pytest
import torch
from runtime_cases import line_problem, three_stage_plan

from pipesl.exceptions import ProblemError
from pipesl.problem import load_problem
from pipesl.runtime import (
    DataSpec,
    RunConfig,
    build_config,
    make_batches,
    make_job,
    train_reference,
)
from pipesl.runtime.records import Deliver, Hand, IterationTimes, LinkBusy, Loss, Pass, shifted
from pipesl.runtime.report import assemble_iteration
from pipesl.runtime.stages import (
    build_chain,
    default_model_ref,
    inspect_model,
    micro_batch_loss,
    stage_module,
)
from pipesl.runtime.topology import build_topology


@pytest.mark.parametrize(("option", "value"), [
    ("steps", 0), ("time_scale", 0.0), ("time_scale", math.inf), ("lr", -1.0),
    ("backend", "mpi"), ("data", "cifar"), ("dtype", "int8"), ("schedule", "zigzag"),
    ("momentum", 1.0), ("timeout_s", 0), ("seed", -1)])
def test_bad_options_name_the_option(option: str, value: object) -> None:
    with pytest.raises(ProblemError, match=option if option != "timeout_s" else "timeout"):
        build_config(RunConfig(), **{option: value})


def test_config_normalises_the_schedule_name() -> None:
    assert build_config(schedule="1F1B").training.schedule == "1f1b"


def _spec(kind: str = "synthetic", **kw: object) -> DataSpec:
    base: dict[str, object] = {"kind": kind, "batch_size": 64, "sample_shape": (1, 8, 8),
                               "num_classes": 10, "zoo_name": "cnn-digits", "seed": 3}
    base.update(kw)
    return DataSpec(**base)  # type: ignore[arg-type]


def test_synthetic_batches_are_deterministic_per_iteration() -> None:
    a, b = make_batches(_spec()), make_batches(_spec())
    x0, y0 = a.batch(0)
    assert x0.shape == (64, 1, 8, 8) and y0.shape == (64,)
    assert torch.equal(x0, b.batch(0)[0]) and torch.equal(y0, b.labels(0))
    assert not torch.equal(x0, a.batch(1)[0])


def test_digits_are_standardised_and_wrap_around_epochs() -> None:
    data = make_batches(_spec("digits", batch_size=1000))
    assert data.num_samples == 1797
    x, y = data.batch(0)
    assert x.shape == (1000, 1, 8, 8) and set(y.tolist()) <= set(range(10))
    assert abs(float(x.mean())) < 0.1 and 0.8 < float(x.std()) < 1.2
    x1, _ = data.batch(1)  # samples 1000..1999: the end of epoch 0 and the start of epoch 1
    assert x1.shape == (1000, 1, 8, 8)
    assert len({tuple(r.tolist()) for r in torch.cat([x, x1])[:1797].flatten(1)}) > 1700


def test_digits_need_a_64_pixel_model() -> None:
    with pytest.raises(ProblemError, match="64 pixels"):
        make_batches(_spec("digits", sample_shape=(3, 32, 32), zoo_name="vgg16-cifar"))


def test_user_dataset_hook() -> None:
    xs, ys = torch.randn(10, 64), torch.arange(10) % 10
    data = make_batches(_spec("dataset", batch_size=4, sample_shape=(64,), zoo_name=None,
                              dataset=torch.utils.data.TensorDataset(xs, ys)))
    x, y = data.batch(0)
    assert x.shape == (4, 64)
    for row, label in zip(x, y, strict=True):
        assert any(torch.equal(row, xs[i]) and int(ys[i]) == int(label) for i in range(10))


def test_default_model_is_the_zoo_model_named_by_the_profile() -> None:
    assert default_model_ref(load_problem("iot-digits"), None) == "cnn-digits"
    assert default_model_ref(load_problem("iot-digits"), "mlp") == "mlp"
    with pytest.raises(ProblemError, match="--model: is required"):
        default_model_ref(load_problem("examples/tiny-line.yaml"), None)


def test_model_units_must_match_the_profile() -> None:
    with pytest.raises(ProblemError, match="has 4 units but the problem's profile"):
        inspect_model(line_problem("cnn-digits", 8), "mlp-digits")
    info = inspect_model(line_problem("cnn-digits", 8), None)
    assert (info.ref, info.num_units, info.sample_shape, info.num_classes) == (
        "cnn-digits", 5, (1, 8, 8), 10)


def test_stage_slices_keep_the_full_models_names_and_weights() -> None:
    full = build_chain("cnn-digits", 7)
    again = build_chain("cnn-digits", 7)
    stage = stage_module(again, 2, 4)
    assert [n for n, _ in stage.named_children()] == ["conv2", "pool", "fc1"]
    for key, value in stage.state_dict().items():
        assert torch.equal(value, full.state_dict()[key])


def test_micro_batch_losses_sum_to_the_batch_mean_and_its_gradient() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3).double()
    x, y = torch.randn(10, 5, dtype=torch.float64), torch.randint(3, (10,))
    loss = micro_batch_loss("classification", 10)
    full = torch.nn.functional.cross_entropy(model(x), y)
    grad_full = torch.autograd.grad(full, model.weight)[0]
    total = sum(loss(model(x[i:i + 4]), y[i:i + 4]) for i in (0, 4, 8))
    assert torch.allclose(total, full)
    assert torch.allclose(torch.autograd.grad(total, model.weight)[0], grad_full)


def test_make_job_checks_before_any_process_starts() -> None:
    problem = line_problem("cnn-digits", 10)
    job = make_job(problem, three_stage_plan(4), build_config(time_scale=2.0, data="digits"))
    assert job.config.job.model == "cnn-digits" and job.config.training.schedule == "gpipe"
    assert job.simulated_s > 0 and job.analytic_s > 0
    unscaled = make_job(problem, three_stage_plan(4), build_config(data="digits"))
    assert job.simulated_s == pytest.approx(2.0 * unscaled.simulated_s)
    with pytest.raises(ProblemError, match="zoo"):
        make_job(problem, three_stage_plan(4), build_config(model="resnet9000"))


def test_reference_training_learns_digits() -> None:
    _, losses = train_reference(load_problem("iot-digits"),
                                build_config(steps=20, data="digits", lr=0.1, momentum=0.9))
    assert losses[-1] < 0.8 * losses[0]


def test_assemble_iteration_builds_a_trace_on_the_simulators_rows() -> None:
    problem = line_problem("mlp-digits", 4)
    from pipesl.plan import Plan, Stage
    plan = Plan((Stage("src", 1, 2), Stage("a", 3, 4)), (("src", "r", "a"),), 4)
    topo = build_topology(problem, plan)
    t0 = 100.0
    events = [Pass(0, 0, "F", 0, 100.0, 100.01, 0.001, 100.0),
              Hand(0, 1, "F", 0, 100.01), LinkBusy(0, 1, "F", 0, 100.01, 100.02),
              Deliver(0, 1, "F", 0, 100.02, 100.021), Loss(0, 0, 2.5),
              IterationTimes(0, 100.0, 100.1, 100.11)]
    resources = tuple(dict.fromkeys(r.name for s in topo.steps
                                    for r in (s.forward_resource, s.backward_resource)))
    report = assemble_iteration(topo, resources, 0, shifted(events, t0), 0.09, 0.08)
    assert report.loss == 2.5
    assert report.measured_s == pytest.approx(0.1) and report.wall_s == pytest.approx(0.11)
    assert report.error == pytest.approx(0.1 / 0.09 - 1)
    assert len(report.trace) == 2
    assert report.transfers[0].lag_s == pytest.approx(0.001)
    assert report.to_dict()["measured_s"] == pytest.approx(0.1)


def test_config_sections_and_flat_options_agree() -> None:
    from pipesl.runtime.config import EmulationConfig

    flat = build_config(steps=5, time_scale=2.0, checkpoint_every=3, post_ahead=False)
    nested = build_config(training={"steps": 5}, emulation=EmulationConfig(time_scale=2.0),
                          checkpoint={"every": 3}, transport={"post_ahead": False})
    assert flat == nested
    assert (flat.training.steps, flat.emulation.time_scale, flat.scale) == (5, 2.0, 2.0)
    assert flat.with_options(emulate=False).scale == 1.0
    assert flat.sections()["checkpoint"] == {"folder": None, "every": 3, "resume": False}
    assert flat.to_dict()["checkpoint_every"] == 3 and flat.to_dict()["emulate"] is True
    assert flat.with_options(steps=6).training.steps == 6 and flat.training.steps == 5
