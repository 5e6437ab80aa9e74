"""The transport audit: every tensor that crosses every hop, and what it proves.

Test mode (``RunConfig.outputs.audit`` / ``pipesl train --audit FILE``): every process records each
message it sends to or receives from a neighbour — the tensors of the data plane, which all
pass through one send function and one receive loop of :mod:`pipesl.runtime.transport` — with
its kind (``activation``, ``gradient``, ``labels``), the layer whose output or gradient it is,
the iteration, route, hop and micro-batch, the two ends, shape, dtype, size, a SHA-256 of its
bytes and a copy of the tensor; and each control-plane object it sends to the source (timing
records, checkpoint file lists, trained parameters with ``return_state``) with its size.

At the end the launcher merges the records into ``FILE`` (JSON lines) and the tensors into
``FILE.tensors.pt``, and :func:`check_audit` compares every crossing tensor with the run's raw
inputs and labels (the data is a pure function of seed and iteration, so it rebuilds them):

* **raw inputs never leave the source**: no crossing tensor has the bytes of an input batch,
  micro-batch or sample, and none contains an input sample's values as a contiguous run
  (in float64, after any reshape);
* **labels**: with ``labels_at`` they never cross a link at all (no ``labels`` message, no
  tensor with the bytes of a label batch or micro-batch, no integer tensor containing one);
  without it they travel from the source to the last stage along the stage routes, once per
  iteration per hop — the design — and nowhere else.

The audit slows the transport (a hash and a copy per message) and keeps every tensor in
memory until the end: use it on small runs.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pipesl.runtime.topology import Topology

__all__ = ["AuditReport", "Auditor", "check_audit", "collect_audit", "digest",
           "tensors_path"]

_KINDS = {1: "activation", 2: "gradient", 3: "labels"}


def digest(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's bytes (row-major; shape and dtype excluded, so a reshaped copy
    has the same digest)."""
    flat = t.detach().contiguous().cpu().reshape(-1)
    raw = flat.view(torch.uint8) if flat.numel() else flat.to(torch.uint8)
    return hashlib.sha256(raw.numpy().tobytes()).hexdigest()


def tensors_path(path: str | Path) -> Path:
    """Where the audit's tensors are saved beside its records."""
    path = Path(path)
    return path.with_name(path.name + ".tensors.pt")


class Auditor:
    """One process's audit records (thread-safe); :meth:`flush` writes them.

    Parameters
    ----------
    folder : path
        Where every process writes ``<node>.jsonl`` and ``<node>.pt``.
    node : str
    topology : Topology
    """

    def __init__(self, folder: str | Path, node: str, topology: Topology) -> None:
        self.folder, self.node, self.topology = Path(folder), node, topology
        self._records: list[dict[str, Any]] = []
        self._tensors: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()

    def message(self, event: str, peer: str, kind: int, iteration: int, route: int,
                position: int, micro_batch: int, tensor: torch.Tensor, owner: int = 0
                ) -> None:
        """A data-plane message ``event`` ("send" or "recv") exchanged with ``peer`` (of data
        owner ``owner``)."""
        name = _KINDS.get(kind, str(kind))
        layer = None if name == "labels" else self._layer(owner, route)
        src, dst = (self.node, peer) if event == "send" else (peer, self.node)
        copy = tensor.detach().cpu().clone()
        with self._lock:
            rid = f"{self.node}:{len(self._records)}"
            self._records.append({
                "id": rid, "event": event, "kind": name, "iteration": iteration,
                "route": route, "hop": position,
                "micro_batch": None if name == "labels" else micro_batch, "layer": layer,
                "from": src, "to": dst, "shape": list(copy.shape),
                "dtype": str(copy.dtype).removeprefix("torch."),
                "nbytes": copy.numel() * copy.element_size(), "sha256": digest(copy),
                "t": time.time(), **({"owner": owner} if owner else {})})
            self._tensors[rid] = copy

    def _layer(self, owner: int, route: int) -> int:
        """The layer whose output route ``route`` carries."""
        return self.topology.stages[route].last_layer

    def control(self, what: str, kind: str, peer: str, iteration: int | None,
                obj: Any) -> None:
        """A control-plane object sent to ``peer`` (pickled size and digest only)."""
        data = pickle.dumps(obj)
        with self._lock:
            self._records.append({
                "id": f"{self.node}:{len(self._records)}", "event": "send", "kind": kind,
                "what": what, "iteration": iteration, "from": self.node, "to": peer,
                "nbytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                "t": time.time()})

    def flush(self) -> None:
        """Write this process's records and tensors into the folder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            lines = "".join(json.dumps(r) + "\n" for r in self._records)
            tensors = dict(self._tensors)
        (self.folder / f"{self.node}.jsonl").write_text(lines)
        torch.save(tensors, self.folder / f"{self.node}.pt")


def collect_audit(folder: str | Path, path: str | Path
                  ) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """Merge every process's files from ``folder`` into ``path`` (records, JSON lines) and
    :func:`tensors_path` (tensors); remove ``folder``. Returns both."""
    folder, path = Path(folder), Path(path)
    records: list[dict[str, Any]] = []
    tensors: dict[str, torch.Tensor] = {}
    for part in sorted(folder.glob("*.jsonl")):
        records += [json.loads(line) for line in part.read_text().splitlines() if line]
        blob = part.with_suffix(".pt")
        if blob.exists():
            tensors.update(torch.load(blob, weights_only=True))
    records.sort(key=lambda r: (r.get("iteration") or 0, r["t"]))
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    torch.save(tensors, tensors_path(path))
    shutil.rmtree(folder, ignore_errors=True)
    return records, tensors


@dataclass(frozen=True)
class AuditReport:
    """What crossed the network, and whether anything crossed that must not."""

    sent: int
    """Data-plane tensors sent over a hop (each is also received once)."""
    received: int
    by_kind: dict[str, int]
    """Sent data-plane tensors and control-plane objects per kind."""
    hops: tuple[str, ...]
    """``u>v kind`` for every hop and kind that carried something."""
    unmatched: tuple[str, ...]
    """Sends never received, or receipts never sent (none in a complete run)."""
    raw_input_crossings: tuple[str, ...]
    """Records whose tensor is, or contains, raw input data."""
    label_crossings: tuple[str, ...]
    """Records whose tensor is the labels (or contains a label micro-batch)."""
    violations: tuple[str, ...] = field(default=())
    """Crossings the run's privacy rules forbid (module docstring)."""
    label_revealing: tuple[str, ...] = field(default=())
    """U-shaped runs: gradients of the logits sent back from the label node from which every
    label of the micro-batch can be read (the smallest entry of each row of the
    cross-entropy gradient ``softmax - one_hot(label)`` is at the label). Not a violation of
    the rule above — the labels themselves stay — but what they reveal; see
    ``docs/security.md``."""

    @property
    def ok(self) -> bool:
        """No violation and every send matched by a receipt."""
        return not self.violations and not self.unmatched

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"sent": self.sent, "received": self.received, "by_kind": self.by_kind,
                "hops": list(self.hops), "unmatched": list(self.unmatched),
                "raw_input_crossings": list(self.raw_input_crossings),
                "label_crossings": len(self.label_crossings),
                "violations": list(self.violations),
                "label_revealing_gradients": len(self.label_revealing), "ok": self.ok}

    def summary(self) -> str:
        """One line for people."""
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.by_kind.items())
                          if k in _KINDS.values())
        control = sum(n for k, n in self.by_kind.items() if k not in _KINDS.values())
        raw = len(self.raw_input_crossings)
        return (f"audit: {self.sent} tensors crossed {len(self.hops)} hop directions "
                f"({kinds}; and {control} control-plane objects to the source); raw-input "
                f"crossings: {raw or 'none'}; label crossings: "
                f"{len(self.label_crossings) or 'none'}; violations: "
                f"{len(self.violations) or 'none'}"
                + (f"; {len(self.label_revealing)} gradients of the logits reveal the labels"
                   if self.label_revealing else ""))


def _contains(haystack: torch.Tensor, needles: torch.Tensor) -> bool:
    """Does flat ``haystack`` hold any row of ``needles`` as a contiguous run of values?"""
    d = needles.shape[1]
    if d == 0 or haystack.numel() < d:
        return False
    for s in needles:
        nonzero = torch.nonzero(s)
        j = int(nonzero[0]) if len(nonzero) else 0
        starts = torch.nonzero(haystack[j:haystack.numel() - d + 1 + j] == s[j]).flatten()
        for p in starts.tolist():
            if torch.equal(haystack[p:p + d], s):
                return True
    return False


def check_audit(records: Sequence[dict[str, Any]], tensors: dict[str, torch.Tensor], *,
                topology: Topology, batches: Any, iterations: Iterable[int]) -> AuditReport:
    """Compare every crossing tensor with the run's raw inputs and labels (module docstring).

    Parameters
    ----------
    records, tensors
        As :func:`collect_audit` returns them.
    topology : Topology
        The run's (routes, label path, where the labels are).
    batches : BatchSource
        The run's data (``batch(i)`` gives iteration i's inputs and labels).
    iterations : iterable of int
        The iterations the run executed.
    """
    offsets = [0]
    for n in topology.sizes:
        offsets.append(offsets[-1] + n)
    input_digests: dict[str, str] = {}
    label_digests: dict[str, str] = {}
    samples: dict[int, torch.Tensor] = {}
    label_runs: dict[int, list[torch.Tensor]] = {}
    for it in iterations:
        x, y = batches.batch(it)
        input_digests[digest(x)] = f"the inputs of iteration {it}"
        label_digests[digest(y)] = f"the labels of iteration {it}"
        for m in range(len(topology.sizes)):
            part = slice(offsets[m], offsets[m + 1])
            input_digests[digest(x[part])] = f"input micro-batch {m} of iteration {it}"
            label_digests[digest(y[part])] = f"label micro-batch {m} of iteration {it}"
        for i in range(x.shape[0]):
            input_digests[digest(x[i])] = f"input sample {i} of iteration {it}"
        samples[it] = x.detach().reshape(x.shape[0], -1).to(torch.float64)
        label_runs[it] = [y[offsets[m]:offsets[m + 1]].to(torch.float64)
                          for m in range(len(topology.sizes))
                          if offsets[m + 1] - offsets[m] >= 2]
    all_samples = torch.cat(list(samples.values())) if samples else torch.empty(0, 0)

    data = [r for r in records if r["kind"] in _KINDS.values()]
    sends = [r for r in data if r["event"] == "send"]
    recvs = [r for r in data if r["event"] == "recv"]
    key = lambda r: (r["from"], r["to"], r["kind"], r["iteration"], r["route"],  # noqa: E731
                     r["hop"], r["micro_batch"], r["sha256"])
    balance = Counter(key(r) for r in sends)
    balance.subtract(key(r) for r in recvs)
    unmatched = tuple(f"{k[0]}>{k[1]} {k[2]} iteration {k[3]} micro-batch {k[6]}: "
                      f"{'sent, never received' if c > 0 else 'received, never sent'}"
                      for k, c in balance.items() if c)

    raw: list[str] = []
    labels: list[str] = []
    violations: list[str] = []
    path_hops = set(zip(topology.label_path, topology.label_path[1:], strict=False))
    for r in sends:
        where = (f"{r['id']} ({r['kind']} {r['from']}>{r['to']}, iteration "
                 f"{r['iteration']})")
        t = tensors.get(r["id"])
        flat = None if t is None else t.detach().reshape(-1).to(torch.float64)
        hit = input_digests.get(r["sha256"])
        if hit is None and flat is not None and t is not None and t.is_floating_point():
            hit = "input sample values" if _contains(flat, all_samples) else None
        if hit is not None:
            raw.append(f"{where}: {hit}")
            violations.append(f"raw input left the source: {where} carries {hit}")
        is_label = r["kind"] == "labels" or r["sha256"] in label_digests or (
            flat is not None and t is not None and not t.is_floating_point()
            and any(_contains(flat, run.unsqueeze(0)) for run in
                    label_runs.get(r["iteration"], [])))
        if is_label:
            labels.append(where)
            if topology.labels_local:
                violations.append(f"labels left {topology.loss_node}: {where}")
            elif (r["from"], r["to"]) not in path_hops:
                violations.append(f"labels off their path to the last stage: {where}")
    revealing = []
    if topology.has_label_route:
        for r in sends:
            t = tensors.get(r["id"])
            if (r["kind"] != "gradient" or r["route"] != len(topology.routes) - 1
                    or t is None or t.dim() != 2):
                continue
            m = r["micro_batch"]
            _, y = batches.batch(r["iteration"])
            target = y[offsets[m]:offsets[m + 1]]
            if t.shape[0] == target.numel() and torch.equal(t.argmin(dim=1), target):
                revealing.append(f"{r['id']} ({r['from']}>{r['to']}, iteration "
                                 f"{r['iteration']}, micro-batch {m})")
    per_hop = Counter((r["from"], r["to"], r["iteration"]) for r in sends
                      if r["kind"] == "labels")
    violations += [f"labels crossed {u}>{v} {c} times in iteration {it} (once by design)"
                   for (u, v, it), c in per_hop.items() if c > 1]
    by_kind = Counter(r["kind"] for r in sends)
    by_kind.update(r["kind"] for r in records if r["kind"] not in _KINDS.values())
    hops = tuple(sorted({f"{r['from']}>{r['to']} {r['kind']}" for r in sends}))
    return AuditReport(len(sends), len(recvs), dict(by_kind), hops, unmatched, tuple(raw),
                       tuple(labels), tuple(violations), tuple(revealing))
