"""``pipesl models``, ``pipesl profile`` and ``pipesl calibrate``: models and devices (torch).

torch is imported inside the commands, so the rest of the CLI works without it; without torch
these commands stop with one line saying how to install it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipesl.cli.app import app, check_writable, console, err_console, print_json
from pipesl.exceptions import ProblemError, RuntimeSetupError

TORCH_MISSING = "torch is not installed; pip install 'pipesl[torch]'"

MODEL_HELP = ("A zoo name (see `pipesl models`), 'package.module:factory' or "
              "'path/file.py:factory' returning an nn.Sequential (see docs/models.md).")
SHAPE_HELP = "Per-sample input shape, e.g. 3x224x224, 64, or 128 (tokens); default: the zoo's."


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise RuntimeSetupError(TORCH_MISSING) from None


def parse_shape(text: str | None, option: str = "--input-shape") -> tuple[int, ...] | None:
    """``"3x224x224"`` -> ``(3, 224, 224)``; None stays None."""
    if text is None:
        return None
    parts = text.lower().replace(",", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise ProblemError(option, "must be positive integers joined by 'x', e.g. 3x224x224",
                           text) from None
    if not shape or min(shape) < 1:
        raise ProblemError(option, "must be positive integers joined by 'x'", text)
    return shape


def _parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise ProblemError("--batch-sizes", "must be integers separated by commas, e.g. 1,2,4,8",
                           text) from None
    if len(set(sizes)) < 2 or min(sizes) < 1:
        raise ProblemError("--batch-sizes", "needs at least two different positive sizes", text)
    return sizes


DOCUMENT = (".json", ".yaml", ".yml")


def write_document(doc: dict[str, Any], path: Path, option: str = "--out") -> None:
    """Write ``doc`` as JSON (``.json``) or YAML (``.yaml``/``.yml``)."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    elif suffix in (".yaml", ".yml"):
        text = yaml.safe_dump(doc, sort_keys=False)
    else:
        raise ProblemError(option, "must end in .json, .yaml or .yml", str(path))
    try:
        path.write_text(text)
    except OSError as exc:
        raise ProblemError(option, f"cannot be written ({exc.strerror or exc})",
                           str(path)) from None


def _size(n: float, unit: str = "B") -> str:
    """Bytes in binary units (KiB, MiB), FLOPs with SI prefixes (kFLOP), as ``pipesl show``."""
    from pipesl.units import format_quantity

    return format_quantity(n, "bytes" if unit == "B" else "flops")


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


@app.command("models")
def models_command(
    json_out: bool = typer.Option(False, "--json", help="Print the zoo as JSON."),
) -> None:
    """List the model zoo: names, default inputs, units and parameters."""
    _require_torch()
    import torch

    from pipesl.models import list_models

    rows: list[dict[str, Any]] = []
    for spec in list_models():
        with torch.device("meta"):
            model = spec.factory()
        params = len({id(p): p for p in model.parameters()})
        numel = sum({id(p): p.numel() for p in model.parameters()}.values())
        rows.append({"name": spec.name, "aliases": list(spec.aliases),
                     "input_shape": list(spec.input_shape), "loss": spec.loss,
                     "units": len(model), "parameters": numel, "parameter_tensors": params,
                     "description": spec.description})
    if json_out:
        print_json(rows)
        return
    table = Table(title="pipesl model zoo (pipesl profile NAME)")
    table.add_column("name", no_wrap=True)
    table.add_column("input", no_wrap=True)
    table.add_column("units", justify="right")
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("description (aliases)")
    for r in rows:
        aliases = f" ({', '.join(r['aliases'])})" if r["aliases"] else ""
        table.add_row(r["name"], _shape_text(tuple(r["input_shape"])), str(r["units"]),
                      f"{r['parameters'] / 1e6:.2f} M", r["description"] + aliases)
    console.print(table)


@app.command("profile")
def profile_command(
    model: str = typer.Argument(..., help=MODEL_HELP),
    input_shape: str | None = typer.Option(None, "--input-shape", help=SHAPE_HELP),
    batch: int = typer.Option(1, "--batch", min=1, help="Samples per measured batch."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, float64, bfloat16, float16."),
    granularity: str = typer.Option("block", "--granularity",
                                    help="block: the model's units; layer: open nn.Sequential "
                                    "units into their layers (residual blocks stay whole)."),
    json_out: bool = typer.Option(False, "--json", help="Print the SPEC model section as JSON."),
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the profile (.yaml/.json).")] = None,
) -> None:
    """Profile a model: per-unit FLOPs and bytes per sample, as the SPEC model section."""
    _require_torch()
    from pipesl.profiling import profile, profile_document

    check_writable(out, "--out", DOCUMENT)
    shape = parse_shape(input_shape)
    chain = profile(model, input_shape=shape, batch=batch, dtype=dtype, granularity=granularity)
    command = f"pipesl profile {model}" + (f" --input-shape {input_shape}" if shape else "")
    command += f" --batch {batch} --dtype {dtype} --granularity {granularity}"
    doc = profile_document(
        chain, source=command,
        description=f"{chain.name}: per-sample profile by `pipesl profile` (FLOPs = 2 x MACs "
                    "of conv/matmul/attention)")
    if out is not None:
        write_document(doc, out)
        err_console.print(f"wrote {out}")
    if json_out:
        print_json(doc)
        return
    table = Table(title=f"{chain.name}: per sample, input {_size(chain.input_bytes)}")
    for col in ("#", "unit", "fwd FLOPs", "bwd FLOPs", "out", "params", "saved for bwd"):
        table.add_column(col, justify="left" if col == "unit" else "right")
    for i, x in enumerate(chain.layers, start=1):
        table.add_row(str(i), x.name, _size(x.fwd_flops, "FLOP"), _size(x.bwd_flops, "FLOP"),
                      _size(x.out_bytes), _size(x.param_bytes), _size(x.act_bytes))
    layers = chain.layers
    table.add_row("", "total", _size(sum(x.fwd_flops for x in layers), "FLOP"),
                  _size(sum(x.bwd_flops for x in layers), "FLOP"),
                  "max " + _size(max(x.out_bytes for x in layers)),
                  _size(sum(x.param_bytes for x in layers)),
                  _size(sum(x.act_bytes for x in layers)), style="bold")
    console.print(table)


@app.command("calibrate")
def calibrate_command(
    model: str = typer.Argument("resnet18-cifar", help=MODEL_HELP),
    input_shape: str | None = typer.Option(None, "--input-shape", help=SHAPE_HELP),
    batch_sizes: str = typer.Option("1,2,4,8,16", "--batch-sizes",
                                    help="Batch sizes to time, comma-separated."),
    repeats: int = typer.Option(5, "--repeats", min=1, help="Timed runs; the median is kept."),
    warmup: int = typer.Option(1, "--warmup", min=0, help="Untimed runs before them."),
    threads: int | None = typer.Option(None, "--threads", min=1,
                                       help="torch.set_num_threads (default: torch's)."),
    node_id: str | None = typer.Option(None, "--id", help="Node id (default: host name)."),
    dtype: str = typer.Option("float32", "--dtype", help="float32, float64, bfloat16, float16."),
    granularity: str = typer.Option("block", "--granularity", help="block or layer."),
    json_out: bool = typer.Option(False, "--json", help="Print every fit as JSON."),
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the node entry as a one-node network file (.yaml/.json).")] = None,
) -> None:
    """Time a model on this machine; fit t = alpha*b + beta; print this node's SPEC entry."""
    _require_torch()
    import torch

    from pipesl.models import resolve_model
    from pipesl.profiling import calibrate

    check_writable(out, "--out", DOCUMENT)
    sizes = _parse_sizes(batch_sizes)
    if threads is not None:
        torch.set_num_threads(threads)
    resolved = resolve_model(model, input_shape=parse_shape(input_shape))
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
               "{task.total}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(f"calibrating {resolved.name}", total=None)

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        result = calibrate(resolved.model, resolved.sample, name=resolved.name,
                           batch_sizes=sizes, repeats=repeats, warmup=warmup,
                           granularity=granularity, dtype=dtype, node_id=node_id,
                           progress=progress)
    fit = result.total.fit
    if out is not None:
        entry = {k: (int(v) if k == "memory" else v) for k, v in result.node_entry().items()}
        write_document({"description": (
            f"calibrated by `pipesl calibrate {model}` on {result.threads} thread(s), batch "
            f"sizes {batch_sizes}: R^2 {fit.r2:.4f}, max relative residual "
            f"{fit.max_rel_residual:.1%}"), "nodes": [entry]}, out)
        err_console.print(f"wrote {out}")
    if json_out:
        print_json(result.to_dict())
        return
    table = Table(title=f"{result.model} on {result.node_id} ({result.threads} thread(s)): "
                        "forward + backward, t = alpha*b + beta")
    for col in ("unit", "FLOP/sample", "alpha", "beta", "FLOP/s", "R^2", "max resid"):
        table.add_column(col, justify="left" if col == "unit" else "right")
    for u in (*result.units, result.total):
        table.add_row(u.name, _size(u.flops, "FLOP"), f"{u.fit.alpha * 1e3:.3g} ms",
                      f"{u.fit.beta * 1e3:.3g} ms",
                      _size(u.flops_per_s, "FLOP/s") if u.flops_per_s else "-",
                      f"{u.fit.r2:.4f}", f"{u.fit.max_rel_residual:.1%}",
                      style="bold" if u is result.total else None)
    console.print(table)
    console.print("node entry (SPEC network.nodes):")
    console.print(yaml.safe_dump([result.node_entry()], sort_keys=False).rstrip())
