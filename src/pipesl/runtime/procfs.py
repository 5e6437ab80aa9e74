"""What the kernel says about processes (Linux ``/proc``; no psutil): alive, children, sockets.

The launcher uses :func:`running` to confirm that no worker outlived a teardown; tests and
``benchmarks/faults.py`` use :func:`descendants` to find every process of a ``pipesl train``
and :func:`tcp_sockets` to check that a local run listens on loopback only. On a system
without ``/proc`` the functions answer conservatively (:func:`running` falls back to
``os.kill(pid, 0)``; the others return nothing).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["TcpSocket", "TreeWatch", "children", "descendants", "running", "tcp_sockets",
           "watch_tree"]

_PROC = Path("/proc")
_TCP_STATES = {"01": "ESTABLISHED", "0A": "LISTEN"}


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    return [raw[:raw.index(" ")], *raw[raw.rindex(")") + 2:].split()]


def running(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie (exited, not yet reaped)."""
    fields = _stat_fields(pid)
    if fields is not None:
        return fields[1] not in ("Z", "X")
    if _PROC.is_dir():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    return True


def children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid``."""
    out = []
    for entry in _PROC.iterdir() if _PROC.is_dir() else ():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[2] == str(pid) and fields[1] not in ("Z", "X"):
                out.append(int(entry.name))
    return sorted(out)


def descendants(pid: int) -> list[int]:
    """Live children of ``pid``, their children, and so on."""
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in found:
                found.append(child)
                todo.append(child)
    return sorted(found)


@dataclass(frozen=True)
class TcpSocket:
    """A TCP socket of a process, from ``/proc/<pid>/net/tcp{,6}``."""

    local: str
    """Local address (IPv4 or IPv6 text)."""
    local_port: int
    remote: str
    remote_port: int
    state: str
    """``LISTEN``, ``ESTABLISHED`` or the kernel's hex code."""

    @property
    def loopback(self) -> bool:
        """True when the local address is a loopback address."""
        return ipaddress.ip_address(self.local).is_loopback


def _address(hex_address: str) -> tuple[str, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        text = str(ipaddress.IPv4Address(raw[::-1]))
    else:  # four little-endian 32-bit words
        words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
        addr = ipaddress.IPv6Address(words)
        text = str(addr.ipv4_mapped or addr)
    return text, int(port, 16)


def tcp_sockets(pid: int) -> list[TcpSocket]:
    """The TCP sockets ``pid`` holds open (matched by inode through ``/proc/<pid>/fd``)."""
    inodes: set[str] = set()
    try:
        for fd in os.listdir(_PROC / str(pid) / "fd"):
            try:
                target = os.readlink(_PROC / str(pid) / "fd" / fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return []
    found: list[TcpSocket] = []
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / str(pid) / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[9] in inodes:
                local, lport = _address(parts[1])
                remote, rport = _address(parts[2])
                found.append(TcpSocket(local, lport, remote, rport,
                                       _TCP_STATES.get(parts[3], parts[3])))
    return found


@dataclass
class TreeWatch:
    """What :func:`watch_tree` saw of a command and every process it started."""

    returncode: int
    pids: list[int] = field(default_factory=list)
    """Every descendant seen while the command ran."""
    gone_at: dict[int, float] = field(default_factory=dict)
    """``time.time()`` at which each process (the command's own pid included) was first
    seen gone."""
    sockets: dict[int, list[TcpSocket]] = field(default_factory=dict)
    """Every TCP socket seen open, per process."""
    orphans: list[int] = field(default_factory=list)
    """Descendants still running ``grace_s`` after the command exited."""

    @property
    def all_exited_at(self) -> float:
        """When the last of them was seen gone."""
        return max(self.gone_at.values())


def watch_tree(process: subprocess.Popen[str], timeout_s: float, *, poll_s: float = 0.05,
               sockets_every_s: float = 0.5, grace_s: float = 2.0) -> TreeWatch:
    """Follow ``process`` and its descendants until the command exits (tests, benchmarks).

    Polls ``/proc`` every ``poll_s`` for new descendants and for the ones that exited, and
    every ``sockets_every_s`` records their TCP sockets. After the command exits, waits up
    to ``grace_s`` for the descendants, then reports those still running as orphans.

    Raises
    ------
    TimeoutError
        When the command runs longer than ``timeout_s`` (it and its descendants are killed).
    """
    root = process.pid
    watch = TreeWatch(returncode=0)
    deadline = time.monotonic() + timeout_s
    next_sockets = 0.0
    while True:
        now = time.time()
        current = descendants(root)
        for pid in current:
            if pid not in watch.pids:
                watch.pids.append(pid)
        for pid in watch.pids:
            if pid not in watch.gone_at and pid not in current and not running(pid):
                watch.gone_at[pid] = now
        if time.monotonic() >= next_sockets:
            next_sockets = time.monotonic() + sockets_every_s
            for pid in [root, *current]:
                seen = watch.sockets.setdefault(pid, [])
                seen.extend(s for s in tcp_sockets(pid) if s not in seen)
        code = process.poll()
        if code is not None:
            watch.returncode = code
            watch.gone_at[root] = now
            break
        if time.monotonic() > deadline:
            for pid in [*current, root]:
                with contextlib.suppress(OSError):
                    os.kill(pid, 9)
            raise TimeoutError(f"command {process.args!r} ran longer than {timeout_s:g} s")
        time.sleep(poll_s)
    end = time.monotonic() + grace_s
    while time.monotonic() < end:
        left = [pid for pid in watch.pids if pid not in watch.gone_at]
        for pid in left:
            if not running(pid):
                watch.gone_at[pid] = time.time()
        if all(pid in watch.gone_at for pid in watch.pids):
            break
        time.sleep(poll_s)
    watch.orphans = [pid for pid in watch.pids if pid not in watch.gone_at]
    return watch
