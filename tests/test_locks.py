"""Tests of the run lock between two real processes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from crossadapt.errors import RunLocked
from crossadapt.storage.locks import holder_info_path, run_lock

# Child process: take the lock, write a "ready" file, hold the lock until a "release" file
# appears (or for at most 20 s), then let it go.
HOLDER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from crossadapt.storage.locks import run_lock

    lock_path, ready, release = (Path(arg) for arg in sys.argv[1:4])
    with run_lock(lock_path):
        ready.write_text("held")
        deadline = time.monotonic() + 20
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    """
)


def start_holder(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    lock_path = tmp_path / "artifacts" / ".run.lock"
    ready = tmp_path / "ready"
    release = tmp_path / "release"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, str(lock_path), str(ready), str(release)]
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if holder.poll() is not None or time.monotonic() > deadline:
            holder.kill()
            pytest.fail(f"lock holder process did not start (exit code {holder.poll()})")
        time.sleep(0.02)
    return holder, lock_path, release


def test_run_lock_second_process_rejected(tmp_path: Path) -> None:
    holder, lock_path, release = start_holder(tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(RunLocked) as raised, run_lock(lock_path, timeout=0):
            pass
        assert time.monotonic() - started < 1.0
    finally:
        release.touch()
        holder.wait(timeout=30)

    message = str(raised.value)
    assert f"another run holds the lock {lock_path}" in message
    assert f"pid {holder.pid}" in message
    assert f"on host {socket.gethostname()}" in message
    assert " since " in message


def test_run_lock_waits_for_release(tmp_path: Path) -> None:
    holder, lock_path, release = start_holder(tmp_path)
    try:
        # The holder lets go about 0.5 s from now; a 20 s timeout is enough to get the lock.
        release_later = (
            f"import time, pathlib; time.sleep(0.5); pathlib.Path({str(release)!r}).touch()"
        )
        releaser = subprocess.Popen([sys.executable, "-c", release_later])
        started = time.monotonic()
        with run_lock(lock_path, timeout=20) as held:
            waited = time.monotonic() - started
            info = json.loads(holder_info_path(held).read_text())
        assert waited >= 0.3
        assert info["pid"] != holder.pid
    finally:
        release.touch()
        holder.wait(timeout=30)
        releaser.wait(timeout=30)
    assert holder.returncode == 0


def test_run_lock_timeout_names_wait(tmp_path: Path) -> None:
    holder, lock_path, release = start_holder(tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(RunLocked, match=r"waited 0\.3 s"), run_lock(lock_path, timeout=0.3):
            pass
        assert time.monotonic() - started >= 0.3
    finally:
        release.touch()
        holder.wait(timeout=30)


def test_run_lock_writes_and_removes_holder_info(tmp_path: Path) -> None:
    lock_path = tmp_path / ".run.lock"
    with run_lock(lock_path) as held:
        info = json.loads(holder_info_path(held).read_text())
        assert info["host"] == socket.gethostname()
        assert isinstance(info["pid"], int)
        assert info["acquired_at"].endswith("+00:00")
    assert not holder_info_path(lock_path).exists()

    # Released: the same path can be taken again at once.
    with run_lock(lock_path, timeout=0):
        pass


def test_run_lock_released_when_holder_killed(tmp_path: Path) -> None:
    holder, lock_path, _ = start_holder(tmp_path)
    holder.kill()
    holder.wait(timeout=30)
    with run_lock(lock_path, timeout=5):
        pass
