"""The transport audit per data owner: what every owner's tensors crossed, and what they must
not have.

The records are those of :mod:`pipesl.runtime.audit` (every tensor sent and received over a
hop, with a copy), each carrying the owner of its stream. :func:`check_owners_audit`
rebuilds every owner's raw inputs and labels (a pure function of the owner's seed and the
iteration) and checks, for every owner o:

* **raw inputs never leave owner o's node**: no tensor that crosses any hop — of any
  owner's stream — has the bytes of one of o's input batches, micro-batches or samples, or
  contains a sample's values as a contiguous run;
* **labels**: with ``labels_at`` set for o, no tensor crossing any hop is one of o's label
  batches or micro-batches (or contains a micro-batch of at least 8 labels as a contiguous
  run), and o has no ``labels`` message; without it, o's labels travel only along o's own
  label path (source to last stage), in o's own stream;
* **no tensor of owner o is delivered to another owner's node** — except when that node
  relays o's stream (it forwards bytes without computing on them): such deliveries are
  listed in :attr:`OwnersAudit.relayed`, not violations. A tensor of o delivered to another
  owner's node that computes on it, or a message whose receiver is on none of o's routes, is
  a violation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch

from pipesl.runtime.audit import _contains, digest
from pipesl.runtime.data import DataSpec, make_batches
from pipesl.runtime.owners.topology import OwnersTopology

__all__ = ["OwnersAudit", "check_owners_audit"]

_DATA = ("activation", "gradient", "labels")
_RUN = 8
"""Shortest label micro-batch looked for as a contiguous run inside another integer tensor
(another owner's labels): shorter runs occur by chance (two labels of ten classes match at a
given place once in a hundred)."""


@dataclass(frozen=True)
class OwnersAudit:
    """What crossed the network for every owner, and whether anything crossed that must
    not."""

    sent: int
    received: int
    per_owner: tuple[int, ...]
    """Data-plane tensors sent per owner."""
    hops: tuple[str, ...]
    """``u>v kind (owner)`` for every hop, kind and owner that carried something."""
    unmatched: tuple[str, ...]
    raw_input_crossings: tuple[str, ...]
    label_crossings: tuple[str, ...]
    relayed: tuple[str, ...]
    """Owner o's tensors delivered to another owner's node that only relays them."""
    violations: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """No violation and every send matched by a receipt."""
        return not self.violations and not self.unmatched

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"sent": self.sent, "received": self.received,
                "per_owner": list(self.per_owner), "hops": list(self.hops),
                "unmatched": list(self.unmatched),
                "raw_input_crossings": list(self.raw_input_crossings),
                "label_crossings": len(self.label_crossings),
                "relayed_by_other_owners": list(self.relayed),
                "violations": list(self.violations), "ok": self.ok}

    def summary(self) -> str:
        """One line for people."""
        per = ", ".join(f"owner {o} {n}" for o, n in enumerate(self.per_owner))
        return (f"audit: {self.sent} tensors crossed {len(self.hops)} hop directions ({per}); "
                f"raw-input crossings: {len(self.raw_input_crossings) or 'none'}; label "
                f"crossings: {len(self.label_crossings) or 'none'}; relayed by another "
                f"owner's node: {len(self.relayed) or 'none'}; violations: "
                f"{len(self.violations) or 'none'}")


@dataclass
class _OwnerData:
    inputs: dict[str, str]
    labels: dict[str, str]
    samples: torch.Tensor
    label_runs: list[torch.Tensor]


def _owner_data(spec: DataSpec, sizes: Sequence[int], iterations: Iterable[int],
                name: str) -> _OwnerData:
    batches = make_batches(spec)
    offsets = [0]
    for n in sizes:
        offsets.append(offsets[-1] + n)
    inputs: dict[str, str] = {}
    labels: dict[str, str] = {}
    samples: list[torch.Tensor] = []
    runs: list[torch.Tensor] = []
    for it in iterations:
        x, y = batches.batch(it)
        inputs[digest(x)] = f"{name}'s inputs of iteration {it}"
        labels[digest(y)] = f"{name}'s labels of iteration {it}"
        for m in range(len(sizes)):
            part = slice(offsets[m], offsets[m + 1])
            inputs[digest(x[part])] = f"{name}'s input micro-batch {m} of iteration {it}"
            labels[digest(y[part])] = f"{name}'s label micro-batch {m} of iteration {it}"
            if offsets[m + 1] - offsets[m] >= _RUN:
                runs.append(y[part].to(torch.float64).reshape(-1))
        for i in range(x.shape[0]):
            inputs[digest(x[i])] = f"{name}'s input sample {i} of iteration {it}"
        samples.append(x.detach().reshape(x.shape[0], -1).to(torch.float64))
    return _OwnerData(inputs, labels, torch.cat(samples) if samples else torch.empty(0, 0),
                      runs)


def check_owners_audit(records: Sequence[dict[str, Any]], tensors: dict[str, torch.Tensor],
                       otopo: OwnersTopology, data: Sequence[DataSpec],
                       iterations: Iterable[int]) -> OwnersAudit:
    """Check every crossing tensor against every owner's rules (module docstring).

    Parameters
    ----------
    records, tensors
        As :func:`pipesl.runtime.audit.collect_audit` returns them (a record's ``owner``
        defaults to 0).
    otopo : OwnersTopology
    data : sequence of DataSpec
        Owner o's data (rebuilt here).
    iterations : iterable of int
    """
    its = list(iterations)
    owners = otopo.owners
    own = [_owner_data(d, t.sizes, its, otopo.labels[o])
           for o, (d, t) in enumerate(zip(data, owners, strict=True))]
    homes = {t.source: o for o, t in enumerate(owners)}
    rows = [r for r in records if r["kind"] in _DATA]
    sends = [r for r in rows if r["event"] == "send"]
    recvs = [r for r in rows if r["event"] == "recv"]

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return (r.get("owner", 0), r["from"], r["to"], r["kind"], r["iteration"], r["route"],
                r["hop"], r["micro_batch"], r["sha256"])

    balance = Counter(key(r) for r in sends)
    balance.subtract(key(r) for r in recvs)
    unmatched = tuple(f"owner {k[0]} {k[1]}>{k[2]} {k[3]} iteration {k[4]} micro-batch "
                      f"{k[7]}: {'sent, never received' if c > 0 else 'received, never sent'}"
                      for k, c in balance.items() if c)
    raw: list[str] = []
    labels: list[str] = []
    relayed: list[str] = []
    violations: list[str] = []
    for r in sends:
        o = int(r.get("owner", 0))
        where = (f"{r['id']} (owner {o}'s {r['kind']} {r['from']}>{r['to']}, iteration "
                 f"{r['iteration']})")
        t = tensors.get(r["id"])
        flat = None if t is None else t.detach().reshape(-1).to(torch.float64)
        for p, d in enumerate(own):
            hit = d.inputs.get(r["sha256"])
            if hit is None and flat is not None and t is not None and t.is_floating_point():
                hit = (f"{otopo.labels[p]}'s input sample values"
                       if _contains(flat, d.samples) else None)
            if hit is not None:
                raw.append(f"{where}: {hit}")
                violations.append(f"raw input left {owners[p].source}: {where} carries {hit}")
            is_label = (r["kind"] == "labels" and o == p) or r["sha256"] in d.labels or (
                flat is not None and t is not None and not t.is_floating_point()
                and any(_contains(flat, run.unsqueeze(0)) for run in d.label_runs))
            if not is_label:
                continue
            labels.append(f"{where}: {otopo.labels[p]}'s labels")
            topo = owners[p]
            path = set(pairwise(topo.label_path))
            if topo.labels_local:
                violations.append(f"{otopo.labels[p]}'s labels left {topo.loss_node}: {where}")
            elif o != p or (r["from"], r["to"]) not in path:
                violations.append(f"{otopo.labels[p]}'s labels off their path to its last "
                                  f"stage: {where}")
        topo = owners[o]
        dst = r["to"]
        on_routes = {n for route in topo.routes for n in route} | set(topo.label_path)
        if dst not in on_routes:
            violations.append(f"{where}: {dst} is on none of owner {o}'s routes")
        elif dst in homes and homes[dst] != o:
            if topo.stage_of(dst) is not None or dst == topo.loss_node:
                violations.append(f"{where}: delivered to {otopo.labels[homes[dst]]}'s node "
                                  f"{dst}, which computes on it")
            else:
                relayed.append(f"{where}: relayed by {otopo.labels[homes[dst]]}'s node {dst}")
    per_owner = Counter(int(r.get("owner", 0)) for r in sends)
    hops = tuple(sorted({f"{r['from']}>{r['to']} {r['kind']} (owner {r.get('owner', 0)})"
                         for r in sends}))
    return OwnersAudit(len(sends), len(recvs),
                       tuple(per_owner.get(o, 0) for o in range(len(owners))), hops, unmatched,
                       tuple(raw), tuple(labels), tuple(relayed), tuple(violations))
