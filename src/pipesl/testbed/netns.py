"""Linux network namespaces as the hosts of a plan, veth pairs as its links, ``tc`` as their
bandwidth (no torch).

:class:`Testbed` builds, for a problem's nodes (those of a plan):

* one network namespace per node, named ``psl<pid>n<i>`` (loopback up, IPv4 forwarding on,
  reverse-path filtering off, TCP slow start after idle off);
* one veth pair per link of the problem between two of these nodes, link i addressed
  ``10.77.i.1/30`` (the link's ``source``) and ``10.77.i.2/30`` (its ``target``): every address
  exists only inside the namespaces the testbed created;
* a ``tbf`` qdisc on both ends' egress, at the link's bandwidth (bits per second of the
  frames: Ethernet, IP and TCP headers count), ``burst`` two frames (:func:`burst_bytes`):
  the kernel enforces each
  direction separately, so every link is **full duplex** on the testbed;
* static routes along the fewest hops between every pair of nodes, so that the control
  traffic of ``torch.distributed`` (the rendezvous, barriers) reaches non-neighbours through
  the relays' kernels; the pipeline's own messages go only between neighbours, over their
  link.

A node's address is the one of its first link (in the problem's order); ``GLOO_SOCKET_IFNAME``
is that interface.

Cleanup: :meth:`Testbed.close` kills the processes started in the namespaces (by process
group), deletes every namespace (which removes its veth ends and their qdiscs) and any veth
still in the root namespace. It runs on ``with`` exit, at interpreter exit (``atexit``) and on
SIGINT/SIGTERM (the handlers chain to the previous ones); :func:`sweep_stale` removes the
namespaces of testbeds whose process died without cleaning up (SIGKILL).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from pipesl.exceptions import RuntimeSetupError
from pipesl.problem.types import Link, Problem

__all__ = ["FRAME_BYTES", "LinkSetup", "Testbed", "burst_bytes", "leftovers", "netns_unavailable",
           "sweep_stale"]

logger = logging.getLogger(__name__)

FRAME_BYTES = 1514
"""Largest Ethernet frame at MTU 1500."""
BURST_FRAMES = 2
"""The tbf bucket holds this many frames: with one, timer overshoot costs 8 % of the rate at
50 Mb/s here (43.9 instead of 47.9 Mb/s of TCP goodput); with two, 16, 50 and 94 Mb/s give
their full goodput (15.3, 47.9, 89.6 Mb/s: 95.6 % of the frames' rate is payload)."""
_LIMIT_BYTES = 4 * 1024 * 1024
_PREFIX = "psl"
_NAME = re.compile(rf"^{_PREFIX}(\d+)n\d+$")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run(["ip", *args], check)


def _run(cmd: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeSetupError(f"testbed: `{' '.join(cmd)}` failed: "
                                f"{(done.stderr or done.stdout).strip()[:300]}")
    return done


def burst_bytes(rate_bps: float) -> int:
    """The tbf bucket of a link of ``rate_bps`` (see :data:`BURST_FRAMES`)."""
    del rate_bps  # the same at every rate measured here
    return BURST_FRAMES * FRAME_BYTES


def netns_unavailable() -> str | None:
    """Why this process cannot build a testbed (None: it can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "the testbed needs root (network namespaces, veth pairs and tc)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"the testbed needs the `{tool}` command (iproute2)"
    probe = f"{_PREFIX}{os.getpid()}check"
    done = _ip("netns", "add", probe, check=False)
    if done.returncode != 0:
        return f"`ip netns add` is not permitted here: {done.stderr.strip()[:200]}"
    _ip("netns", "del", probe, check=False)
    return None


def sweep_stale() -> list[str]:
    """Delete the namespaces of testbeds whose creating process no longer runs."""
    done = _ip("netns", "list", check=False)
    removed = []
    for line in done.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = _NAME.match(name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            _ip("netns", "del", name, check=False)
            removed.append(name)
    return removed


@dataclass(frozen=True)
class LinkSetup:
    """One link of the testbed."""

    index: int
    source: str
    target: str
    rate_bps: float
    """The tbf rate of both directions (bits of frames per second)."""
    source_dev: str
    target_dev: str
    source_addr: str
    target_addr: str

    def end(self, node: str) -> tuple[str, str]:
        """(interface, address) of ``node``'s end."""
        if node == self.source:
            return self.source_dev, self.source_addr
        return self.target_dev, self.target_addr


@dataclass
class Testbed:
    """Namespaces, veth pairs and qdiscs for ``nodes`` of ``problem`` (see the module doc).

    Use as a context manager; :meth:`open` builds, :meth:`close` removes everything.
    ``rates`` overrides the tbf rate (bits per second) of links by ``(u, v)``.
    """

    __test__ = False  # not a pytest test class

    problem: Problem
    nodes: tuple[str, ...]
    rates: Mapping[frozenset[str], float] = field(default_factory=dict)
    namespaces: dict[str, str] = field(default_factory=dict, init=False)
    links: list[LinkSetup] = field(default_factory=list, init=False)
    _procs: list[subprocess.Popen[Any]] = field(default_factory=list, init=False)
    _veths: list[str] = field(default_factory=list, init=False)
    _closed: bool = field(default=False, init=False)
    _previous: dict[int, Any] = field(default_factory=dict, init=False)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Testbed:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Build the namespaces, links, qdiscs and routes (removed again on failure)."""
        reason = netns_unavailable()
        if reason is not None:
            raise RuntimeSetupError(reason)
        sweep_stale()
        atexit.register(self.close)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._on_signal)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.close()
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            raise SystemExit(128 + signum)

    def close(self) -> None:
        """Kill the processes started in the namespaces, delete every namespace and veth."""
        if self._closed:
            return
        self._closed = True
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:  # pragma: no cover - a stuck kill
                    logger.warning("testbed: process %d did not exit", proc.pid)
        for name in self.namespaces.values():
            _ip("netns", "del", name, check=False)
        for dev in self._veths:  # ends never moved into a namespace
            if os.path.exists(f"/sys/class/net/{dev}"):
                _ip("link", "del", dev, check=False)
        for sig, previous in self._previous.items():
            with contextlib.suppress(ValueError, TypeError):  # not the main thread
                signal.signal(sig, previous)
        self._previous.clear()
        atexit.unregister(self.close)

    # ------------------------------------------------------------------ building

    def _build(self) -> None:
        tag = f"{_PREFIX}{os.getpid()}"
        for i, node in enumerate(self.nodes):
            name = f"{tag}n{i}"
            _ip("netns", "add", name)
            self.namespaces[node] = name
            _ip("-n", name, "link", "set", "lo", "up")
            for key, value in (("net.ipv4.ip_forward", "1"),
                               ("net.ipv4.conf.all.rp_filter", "0"),
                               ("net.ipv4.conf.default.rp_filter", "0"),
                               ("net.ipv4.tcp_slow_start_after_idle", "0")):
                _run(["ip", "netns", "exec", name, "sysctl", "-q", "-w", f"{key}={value}"])
        chosen = [ln for ln in self.problem.network.links
                  if ln.source in self.namespaces and ln.target in self.namespaces]
        if len(chosen) > 250:
            raise RuntimeSetupError("testbed: at most 250 links")
        for i, link in enumerate(chosen):
            self.links.append(self._link(i, link, tag))
        self._routes()

    def _link(self, i: int, link: Link, tag: str) -> LinkSetup:
        a, b = f"{tag[len(_PREFIX):]}l{i}a", f"{tag[len(_PREFIX):]}l{i}b"
        a, b = f"p{a}"[-15:], f"p{b}"[-15:]
        self._veths += [a, b]
        _ip("link", "add", a, "type", "veth", "peer", "name", b)
        rate = float(self.rates.get(link.ends, link.bandwidth))
        setup = LinkSetup(i, link.source, link.target, rate, a, b, f"10.77.{i}.1",
                          f"10.77.{i}.2")
        for dev, node, addr in ((a, link.source, setup.source_addr),
                                (b, link.target, setup.target_addr)):
            ns = self.namespaces[node]
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _run(["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf",
                  "rate", f"{round(rate)}bit", "burst", str(burst_bytes(rate)),
                  "limit", str(_LIMIT_BYTES)])
        return setup

    def _neighbours(self) -> dict[str, list[tuple[str, LinkSetup]]]:
        out: dict[str, list[tuple[str, LinkSetup]]] = {n: [] for n in self.nodes}
        for ln in self.links:
            out[ln.source].append((ln.target, ln))
            out[ln.target].append((ln.source, ln))
        return out

    def _routes(self) -> None:
        """Static routes to every address along the fewest hops (first hop by BFS)."""
        nbrs = self._neighbours()
        owners = [(addr, node) for ln in self.links
                  for node, addr in ((ln.source, ln.source_addr), (ln.target, ln.target_addr))]
        for here in self.nodes:
            first_hop: dict[str, tuple[str, LinkSetup]] = {}
            seen, todo = {here}, deque([here])
            while todo:
                u = todo.popleft()
                for v, ln in nbrs[u]:
                    if v not in seen:
                        seen.add(v)
                        first_hop[v] = first_hop[u] if u != here else (v, ln)
                        todo.append(v)
            attached = {ln.index for _, ln in nbrs[here]}
            for addr, node in owners:
                if node == here or node not in first_hop:
                    continue
                link_index = int(addr.split(".")[2])
                if link_index in attached:
                    continue  # on a directly connected /30
                nbr, ln = first_hop[node]
                dev, _ = ln.end(here)
                _, via = ln.end(nbr)
                _ip("-n", self.namespaces[here], "route", "add", f"{addr}/32", "via", via,
                    "dev", dev)

    # ------------------------------------------------------------------ using

    def address(self, node: str) -> tuple[str, str]:
        """(interface, address) of ``node``: its first link's end."""
        for ln in self.links:
            if node in (ln.source, ln.target):
                return ln.end(node)
        raise RuntimeSetupError(f"testbed: node {node} has no link to another node")

    def link(self, u: str, v: str) -> LinkSetup | None:
        """The link joining ``u`` and ``v``, if the testbed has one."""
        for ln in self.links:
            if {ln.source, ln.target} == {u, v}:
                return ln
        return None

    def popen(self, node: str, cmd: Sequence[str], env: Mapping[str, str],
              **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``cmd`` in ``node``'s namespace (own process group, killed by close)."""
        if self._closed:
            raise RuntimeSetupError("testbed: already closed")
        proc = subprocess.Popen(["ip", "netns", "exec", self.namespaces[node], *cmd],
                                env=dict(env), start_new_session=True, **kwargs)
        self._procs.append(proc)
        return proc

    def qdisc_stats(self) -> dict[str, dict[str, int]]:
        """Per interface: bytes and packets sent, drops, overlimits (``tc -s``)."""
        out: dict[str, dict[str, int]] = {}
        for ln in self.links:
            for node, dev in ((ln.source, ln.source_dev), (ln.target, ln.target_dev)):
                text = _run(["tc", "-n", self.namespaces[node], "-s", "qdisc", "show", "dev",
                             dev]).stdout
                m = re.search(r"Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)",
                              text)
                if m:
                    out[dev] = dict(zip(("bytes", "packets", "dropped", "overlimits"),
                                        map(int, m.groups()), strict=True))
        return out


def leftovers(prefix: str = _PREFIX) -> list[str]:
    """Namespaces named like a testbed's that still exist (for tests)."""
    done = _ip("netns", "list", check=False)
    return [line.split()[0] for line in done.stdout.splitlines()
            if line.split() and line.split()[0].startswith(prefix) and _NAME.match(
                line.split()[0])]
