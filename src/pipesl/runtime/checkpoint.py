"""Checkpoints keyed by model unit, so that a run can resume under a different plan.

Layout of a checkpoint folder (``--checkpoint-dir DIR``)::

    DIR/iter-000004/unit-001.pt     unit 1's parameters and buffers, its optimiser state
    DIR/iter-000004/unit-002.pt     ... one file per unit of the model (layers 1..L)
    DIR/iter-000004/manifest.json   written last: the checkpoint is complete
    DIR/progress.json               iterations completed so far (to count the ones lost)

``iter-N`` holds the state after N completed iterations; a resumed run starts with iteration N
(0-based), whose batch is the data's batch N: batches are a pure function of (seed,
iteration), so the data position is N itself.

**Per unit, not per stage.** Each unit file holds that unit's ``state_dict`` under the full
model's names (``conv2.0.weight``), its parameters' optimiser state by the same names (SGD's
``momentum_buffer``, or any optimiser's per-parameter state), and the torch RNG state of the
stage that saved it. A stage of *any* plan rebuilds itself from the files of its units, so a
job can resume on another splitting, placement or micro-batch size (the RNG state is restored
only when the stage covers exactly the units of a stage that saved it).

**Atomic.** Every file is written to a temporary name, flushed with ``fsync``, and renamed
(then the folder is synced). After its optimiser step of iteration N - 1 every stage writes
its unit files and reports their names, sizes and SHA-256 digests to the source, which writes
``manifest.json`` the same way only when every unit of the model has been reported. A crash
anywhere before that rename leaves no manifest, so :func:`find_latest` returns the previous
complete checkpoint; a checkpoint whose files do not match their digests is skipped too.
The source keeps the :data:`KEEP` newest complete checkpoints and deletes older folders.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipesl.exceptions import ProblemError, RuntimeSetupError

__all__ = [
    "FORMAT",
    "KEEP",
    "MANIFEST",
    "Checkpoint",
    "UnitFile",
    "completed_iterations",
    "find_latest",
    "iteration_dir",
    "load_stage",
    "meta_of",
    "prepare_resume",
    "save_stage",
    "unit_files",
    "write_manifest",
    "write_progress",
]

logger = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
PROGRESS = "progress.json"
KEEP = 2
"""Complete checkpoints kept (the newest and the one before it)."""
_ITER = re.compile(r"^iter-(\d{6,})$")


def iteration_dir(root: str | Path, completed: int) -> Path:
    """The folder of the checkpoint after ``completed`` iterations."""
    return Path(root) / f"iter-{completed:06d}"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``: temporary file, fsync, rename, fsync the folder."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@dataclass(frozen=True)
class UnitFile:
    """One unit's file in a checkpoint, as reported to the source."""

    unit: int
    """1-based unit (layer) index."""
    name: str
    """The unit's name in the model (its ``state_dict`` prefix)."""
    file: str
    sha256: str
    nbytes: int
    node: str
    """The node whose stage wrote it."""


def _cpu(value: Any) -> Any:
    return value.detach().cpu().clone() if isinstance(value, torch.Tensor) else value


def save_stage(root: str | Path, completed: int, module: nn.Sequential,
               optimizer: torch.optim.Optimizer | None, first_layer: int,
               node: str) -> list[UnitFile]:
    """Write one file per unit of a stage's ``module`` (units ``first_layer``...).

    Parameters
    ----------
    root : path
        The checkpoint folder.
    completed : int
        Iterations completed (the checkpoint's N).
    module : nn.Sequential
        The stage (children named as in the full model).
    optimizer : torch.optim.Optimizer or None
        Its per-parameter state is saved by parameter name.
    first_layer : int
        The 1-based index of the module's first unit.
    node : str
    """
    folder = iteration_dir(root, completed)
    folder.mkdir(parents=True, exist_ok=True)
    children = list(module.named_children())
    last = first_layer + len(children) - 1
    rng = {"stage": [first_layer, last], "state": torch.get_rng_state()}
    written = []
    for unit, (name, child) in enumerate(children, start=first_layer):
        opt: dict[str, dict[str, Any]] = {}
        if optimizer is not None:
            for pname, param in child.named_parameters():
                state = optimizer.state.get(param)
                if state:
                    opt[f"{name}.{pname}"] = {k: _cpu(v) for k, v in state.items()}
        payload = {"format": FORMAT, "unit": unit, "name": name, "completed": completed,
                   "state": {f"{name}.{k}": _cpu(v) for k, v in child.state_dict().items()},
                   "optimizer": opt, "rng": rng}
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        data = buffer.getvalue()
        file = f"unit-{unit:03d}.pt"
        _write_atomic(folder / file, data)
        written.append(UnitFile(unit, name, file, hashlib.sha256(data).hexdigest(), len(data),
                                node))
    return written


def write_manifest(root: str | Path, completed: int, units: Iterable[UnitFile],
                   num_units: int, meta: Mapping[str, Any]) -> Path:
    """Write ``manifest.json`` of checkpoint ``completed`` (last, atomically), then drop the
    folders older than the :data:`KEEP` newest complete checkpoints.

    Raises
    ------
    RuntimeSetupError
        When the stages did not report every unit of the model exactly once.
    """
    by_unit: dict[int, UnitFile] = {}
    for u in units:
        if u.unit in by_unit:
            raise RuntimeSetupError(f"checkpoint {completed}: unit {u.unit} reported twice "
                                    f"({by_unit[u.unit].node}, {u.node})")
        by_unit[u.unit] = u
    missing = sorted(set(range(1, num_units + 1)) - set(by_unit))
    if missing:
        raise RuntimeSetupError(f"checkpoint {completed}: no stage saved units {missing}")
    doc = {"format": FORMAT, "completed": completed, "num_units": num_units,
           "units": [vars(by_unit[i]) for i in range(1, num_units + 1)],
           "created": time.time(), **meta}
    folder = iteration_dir(root, completed)
    path = folder / MANIFEST
    _write_atomic(path, (json.dumps(doc, indent=1) + "\n").encode())
    _prune(Path(root), completed)
    return path


def write_progress(root: str | Path, completed: int) -> None:
    """Record that ``completed`` iterations are done (to count those lost on resume)."""
    Path(root).mkdir(parents=True, exist_ok=True)
    path = Path(root) / PROGRESS
    tmp = path.with_name(f".{PROGRESS}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"completed": completed, "updated": time.time()}))
    os.replace(tmp, path)


def _folders(root: Path) -> list[tuple[int, Path]]:
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if p.is_dir() and (m := _ITER.match(p.name))]
    return sorted(found, reverse=True)


def _prune(root: Path, newest: int) -> None:
    complete = [n for n, p in _folders(root) if (p / MANIFEST).exists() and n <= newest]
    if len(complete) <= KEEP:
        return
    floor = complete[KEEP - 1]
    for n, p in _folders(root):
        if n < floor:
            shutil.rmtree(p, ignore_errors=True)


@dataclass(frozen=True)
class Checkpoint:
    """A complete, verified checkpoint."""

    folder: Path
    completed: int
    """Iterations it holds (the resumed run starts with iteration ``completed``)."""
    manifest: dict[str, Any]

    def unit_path(self, unit: int) -> Path:
        """The file of 1-based unit ``unit``."""
        return self.folder / self.manifest["units"][unit - 1]["file"]


def _verify(folder: Path) -> dict[str, Any] | None:
    """The manifest when it and every file it lists are intact, else None (logged)."""
    try:
        doc = json.loads((folder / MANIFEST).read_text())
        if doc["format"] != FORMAT or len(doc["units"]) != doc["num_units"]:
            raise ValueError(f"format {doc['format']}, {len(doc['units'])} of "
                             f"{doc['num_units']} units")
        for u in doc["units"]:
            data = (folder / u["file"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != u["sha256"]:
                logger.warning("checkpoint %s: %s does not match its digest; skipped", folder,
                               u["file"])
                return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("checkpoint %s is damaged (%s); skipped", folder, exc)
        return None
    return dict(doc)


def find_latest(root: str | Path) -> Checkpoint | None:
    """The newest complete checkpoint whose files match their digests, or None."""
    for n, folder in _folders(Path(root)):
        if (folder / MANIFEST).exists():
            doc = _verify(folder)
            if doc is not None:
                return Checkpoint(folder, n, doc)
    return None


def completed_iterations(root: str | Path) -> int | None:
    """What ``progress.json`` says (None when absent or unreadable)."""
    try:
        return int(json.loads((Path(root) / PROGRESS).read_text())["completed"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def prepare_resume(root: str | Path, resume: bool, meta: Mapping[str, Any], steps: int
                   ) -> tuple[Checkpoint | None, int | None]:
    """Check the checkpoint folder before a run: the checkpoint to resume from, and the
    iterations that will be lost (completed after it, by the run that stopped).

    Without ``resume`` the folder must hold no complete checkpoint (a fresh run would mix
    with it). With ``resume``, the newest complete checkpoint must exist and have been saved
    by a run with the same model, data, seed, batch size and dtype (``meta``); the plan,
    schedule, micro-batch size, learning rate and momentum may differ. Incomplete folders
    newer than it are removed.

    Raises
    ------
    ProblemError
        Naming the option or the field that does not match.
    """
    root = Path(root)
    latest = find_latest(root)
    if not resume:
        if latest is not None:
            raise ProblemError("--checkpoint-dir", f"already holds a checkpoint (after "
                               f"iteration {latest.completed}); pass --resume to continue "
                               "from it, or choose an empty folder", str(root))
        return None, None
    if latest is None:
        raise ProblemError("--resume", "found no complete checkpoint in --checkpoint-dir",
                           str(root))
    for key in ("model", "num_units", "data", "seed", "batch_size", "dtype"):
        if latest.manifest.get(key) != meta.get(key):
            raise ProblemError(f"checkpoint.{key}", f"is {latest.manifest.get(key)!r} in "
                               f"{latest.folder} but {meta.get(key)!r} for this run; resume "
                               "with the same model, data, seed, batch size and dtype")
    if latest.completed >= steps:
        raise ProblemError("steps", f"counts every iteration of the run, and the checkpoint "
                           f"already holds {latest.completed}: give more", steps)
    for n, folder in _folders(root):
        if n > latest.completed and not (folder / MANIFEST).exists():
            shutil.rmtree(folder, ignore_errors=True)
    done = completed_iterations(root)
    lost = None if done is None else max(0, done - latest.completed)
    return latest, lost


def load_stage(folder: str | Path, manifest: Mapping[str, Any], module: nn.Sequential,
               optimizer: torch.optim.Optimizer | None, first_layer: int) -> bool:
    """Load a stage's units (``first_layer``...) and their optimiser state from a checkpoint.

    Returns
    -------
    bool
        True when the RNG state was restored too (the stage covers exactly the units of a
        stage that saved it).

    Raises
    ------
    RuntimeSetupError
        When a file is missing, damaged or does not fit the module.
    """
    folder = Path(folder)
    children = list(module.named_children())
    state: dict[str, torch.Tensor] = {}
    opt: dict[str, dict[str, Any]] = {}
    rngs: list[Any] = []
    for unit, (name, _) in enumerate(children, start=first_layer):
        entry = manifest["units"][unit - 1]
        try:
            data = (folder / entry["file"]).read_bytes()
        except OSError as exc:
            raise RuntimeSetupError(f"checkpoint {folder}: cannot read unit {unit}: "
                                    f"{exc}") from None
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise RuntimeSetupError(f"checkpoint {folder}: {entry['file']} does not match "
                                    "its digest")
        payload = torch.load(io.BytesIO(data), weights_only=True)
        if payload["name"] != name:
            raise RuntimeSetupError(f"checkpoint {folder}: unit {unit} is {payload['name']!r}"
                                    f", the model's is {name!r}")
        state.update(payload["state"])
        opt.update(payload["optimizer"])
        rngs.append(payload["rng"])
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise RuntimeSetupError(f"checkpoint {folder} does not fit the model: "
                                f"{' '.join(str(exc).split())}") from None
    if optimizer is not None:
        params = dict(module.named_parameters())
        for pname, pstate in opt.items():
            param = params[pname]
            optimizer.state[param] = {k: (v.to(param.device) if isinstance(v, torch.Tensor)
                                          and v.dim() > 0 else v) for k, v in pstate.items()}
    last = first_layer + len(children) - 1
    if rngs and all(r["stage"] == [first_layer, last] for r in rngs):
        torch.set_rng_state(rngs[0]["state"])
        return True
    return False


def meta_of(model: str, num_units: int, data: str, seed: int, batch_size: int, dtype: str,
            extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The manifest fields a resumed run must match (and ``extra`` for the record)."""
    return {"model": model, "num_units": num_units, "data": data, "seed": seed,
            "batch_size": batch_size, "dtype": dtype, **(extra or {})}


def unit_files(reports: Sequence[Any]) -> list[UnitFile]:
    """The :class:`UnitFile` entries of every rank's report (skipping ranks without)."""
    return [u for part in reports for u in (part or ())]
