"""Process bookkeeping for local services: free loopback ports, PID files, stopping process groups.

Linux only: liveness, descendants and listening sockets are read from ``/proc``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from crossadapt.services import ServiceError

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

_TCP_LISTEN = "0A"


@dataclass(frozen=True)
class Listener:
    """A TCP socket in LISTEN state and the process that owns it."""

    address: str
    port: int
    pid: int


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 at the time of the call.

    NOTE: another process may take the port between this call and the server's bind;
    callers retry or report the bind failure from the server's log.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free TCP ports on 127.0.0.1 (all held open while choosing)."""
    probes: list[socket.socket] = []
    try:
        for _ in range(count):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probes.append(probe)
            probe.bind((LOOPBACK, 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def port_is_free(port: int) -> bool:
    """Return whether a TCP listener could bind ``127.0.0.1:port`` now.

    Sets SO_REUSEADDR like the servers do (Go's net package, uvicorn), so connections of
    a stopped server still in TIME_WAIT do not count as a listener.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def is_alive(pid: int) -> bool:
    """Return whether ``pid`` is a running process (zombies count as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _process_state(pid) not in (None, "Z", "X")


def command_line(pid: int) -> str:
    """Return the command line of ``pid`` with spaces between arguments, or "" if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def descendant_pids(pid: int) -> list[int]:
    """Return the PIDs of all live descendants of ``pid`` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        parent = _parent_pid(int(entry.name))
        if parent is not None:
            children.setdefault(parent, []).append(int(entry.name))

    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        for child in children.get(current, []):
            found.append(child)
            pending.append(child)
    return found


def write_pid_file(path: Path, pid: int) -> None:
    """Write ``pid`` to ``path`` (one line), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")


def read_pid_file(path: Path) -> int | None:
    """Return the PID stored in ``path``, or None when the file is missing."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    if not text.isdigit():
        raise ServiceError(
            f"PID file {path} contains {text!r}, not a process id; "
            "stop the process by hand if it still runs, then delete the file"
        )
    return int(text)


def stop_process_group(
    pid: int,
    *,
    name: str,
    first_signal: signal.Signals,
    grace_s: float,
    kill_after_s: float = 10.0,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Stop the process group led by ``pid`` and every descendant of ``pid``.

    Sends ``first_signal`` to the group, waits ``grace_s`` seconds, then SIGTERM and
    after ``kill_after_s`` more seconds SIGKILL. Descendants that left the group
    (``setsid``) are found from ``/proc`` before the first signal and get the same
    treatment. ``process`` is the ``Popen`` of ``pid`` when this process started it,
    so that it is reaped instead of lingering as a zombie.
    """
    started = time.monotonic()
    tracked = [pid, *descendant_pids(pid)]
    logger.info(
        "stopping %s (pid %d, %d processes) with %s", name, pid, len(tracked), first_signal.name
    )

    _signal_group(pid, tracked, first_signal)
    if _wait_gone(tracked, grace_s, process):
        logger.info("stopped %s in %.1f s", name, time.monotonic() - started)
        return

    logger.warning(
        "%s still running after %s and %.0f s; sending SIGTERM", name, first_signal.name, grace_s
    )
    _signal_group(pid, tracked, signal.SIGTERM)
    if _wait_gone(tracked, kill_after_s, process):
        logger.info("stopped %s in %.1f s", name, time.monotonic() - started)
        return

    logger.warning("%s still running after SIGTERM; sending SIGKILL", name)
    _signal_group(pid, tracked, signal.SIGKILL)
    if not _wait_gone(tracked, 5.0, process):
        survivors = [p for p in tracked if is_alive(p)]
        raise ServiceError(
            f"{name}: processes {survivors} survived SIGKILL; check them with `ps -p`"
        )
    logger.info("killed %s after %.1f s", name, time.monotonic() - started)


def listening_sockets(pids: list[int]) -> list[Listener]:
    """Return the TCP sockets in LISTEN state owned by ``pids``, from ``/proc/net/tcp{,6}``."""
    inode_owner: dict[str, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inode_owner[target[8:-1]] = pid

    listeners: list[Listener] = []
    for table, decode in (("/proc/net/tcp", _decode_ipv4), ("/proc/net/tcp6", _decode_ipv6)):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] != _TCP_LISTEN or fields[9] not in inode_owner:
                    continue
                address_hex, port_hex = fields[1].split(":")
                listeners.append(
                    Listener(decode(address_hex), int(port_hex, 16), inode_owner[fields[9]])
                )
    return listeners


def _signal_group(leader: int, tracked: list[int], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader, signum)
    for pid in tracked:
        if is_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)


def _wait_gone(pids: list[int], timeout_s: float, process: subprocess.Popen[bytes] | None) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None:
            process.poll()
        if not any(is_alive(pid) for pid in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def _stat_fields(pid: int) -> list[str] | None:
    # The command name (field 2) may contain spaces and brackets, so split after its last ")".
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _process_state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def _parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def _decode_ipv4(address_hex: str) -> str:
    return socket.inet_ntop(socket.AF_INET, bytes.fromhex(address_hex)[::-1])


def _decode_ipv6(address_hex: str) -> str:
    # /proc stores the address as four 32-bit words, each in host (little-endian) order.
    raw = bytes.fromhex(address_hex)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)
