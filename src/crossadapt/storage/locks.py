"""Inter-process run lock on an artifacts folder, naming the holder when it is taken."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from crossadapt.errors import RunLocked
from crossadapt.storage.atomic import atomic_write_json

logger = logging.getLogger(__name__)


def holder_info_path(lock_path: Path) -> Path:
    """Return the sidecar file that names the current holder of ``lock_path``."""
    return lock_path.with_name(lock_path.name + ".holder.json")


def _read_holder(info_path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _describe_holder(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "holder unknown: it has not written its details yet"
    return (
        f"held by pid {holder.get('pid')} on host {holder.get('host')} "
        f"since {holder.get('acquired_at')}, command: {holder.get('command')}"
    )


@contextlib.contextmanager
def run_lock(path: str | os.PathLike[str], timeout: float = 0) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` for the duration of the ``with`` block.

    A second holder, in this or another process, waits up to ``timeout`` seconds (0: fail at
    once) and then raises ``RunLocked`` naming the lock file and the holder's PID, host and
    start time, which the holder writes to ``<lock file>.holder.json``. The lock is an OS file
    lock (``filelock.FileLock``), so the operating system releases it when the holder
    process dies.

    Example::

        with run_lock(artifacts_dir / ".run.lock"):
            ...  # one online day at a time
    """
    lock_path = Path(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    info_path = holder_info_path(lock_path)
    lock = FileLock(lock_path, timeout=timeout)

    try:
        lock.acquire()
    except Timeout as error:
        holder = _read_holder(info_path)
        raise RunLocked(
            f"another run holds the lock {lock_path} ({_describe_holder(holder)}); waited "
            f"{timeout} s. Wait for that run to finish or stop it, then retry"
        ) from error

    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "acquired_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
    }
    try:
        atomic_write_json(info_path, holder)
        logger.info("acquired run lock %s (pid %d)", lock_path, holder["pid"])
        yield lock_path
    finally:
        with contextlib.suppress(FileNotFoundError):
            info_path.unlink()
        lock.release()
        logger.info("released run lock %s", lock_path)
