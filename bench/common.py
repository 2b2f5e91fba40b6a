"""Shared pieces of the benchmarks: per-process memory peaks, child runs, machine facts, results.

Standard library only, so bench/fuxictr_runner.py can import it from the FuxiCTR venv.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
WORK_DIR = BENCH_DIR / "work"
RESULT_MARKER = "BENCH_RESULT "
THREADS = 2


def thread_environment(threads: int = THREADS) -> dict[str, str]:
    """Return the environment of a child run with BLAS/OpenMP pools set to ``threads``."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _read_status_kib(fields: tuple[str, ...]) -> dict[str, int]:
    values: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in fields:
                values[key] = int(rest.split()[0])
    return values


class MemorySampler:
    """Peak memory of the current process, sampled from ``/proc/self/status`` in a thread.

    ``peak_rss_bytes`` is the kernel's ``VmHWM`` (resident set, including file pages
    mapped by ``numpy.memmap``: the kernel may drop those under memory pressure). Not
    ``ru_maxrss``: Linux carries that over ``exec`` from the parent, so a child started
    by a parent that had touched a large file would report the parent's peak.
    ``peak_anon_bytes`` is the highest sampled ``RssAnon``: heap and other private memory,
    which cannot be dropped. A spike shorter than ``interval_s`` can be missed by the
    sampler but not by ``ru_maxrss``.
    """

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.peak_anon_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            anon = _read_status_kib(("RssAnon",)).get("RssAnon", 0) * 1024
            self.peak_anon_bytes = max(self.peak_anon_bytes, anon)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_rss_bytes(self) -> int:
        """Peak resident set of this process image so far (``VmHWM``, read in KiB)."""
        return _read_status_kib(("VmHWM",)).get("VmHWM", 0) * 1024


def emit_result(result: dict[str, Any]) -> None:
    """Write one child result as a marked JSON line on stdout for :func:`run_child`."""
    sys.stdout.write(RESULT_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()


def run_child(
    command: list[str], *, threads: int = THREADS, timeout_s: float | None = None
) -> dict[str, Any]:
    """Run ``command`` in a fresh process and return the result it emitted.

    The child's stderr passes through. Raises RuntimeError with the child's exit code and
    the end of its stdout when it fails or emits no result line.
    """
    completed = subprocess.run(
        command,
        env=thread_environment(threads),
        stdout=subprocess.PIPE,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if completed.returncode != 0 or not lines:
        tail = completed.stdout[-2000:]
        raise RuntimeError(
            f"benchmark child {' '.join(command)} failed with exit code "
            f"{completed.returncode}; last output:\n{tail}"
        )
    return json.loads(lines[-1][len(RESULT_MARKER) :])


def machine_info() -> dict[str, Any]:
    """Return the facts of the machine a result was measured on."""
    model = "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
                break
    except FileNotFoundError:
        pass
    memory_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory_bytes / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_results(
    name: str, payload: dict[str, Any], markdown: str, results_dir: Path = RESULTS_DIR
) -> tuple[Path, Path]:
    """Write ``<results_dir>/<name>.json`` and ``<name>.md``, each atomically."""
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path = results_dir / f"{name}.json"
    markdown_path = results_dir / f"{name}.md"
    _atomic_write(json_path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    _atomic_write(markdown_path, markdown)
    return json_path, markdown_path


def _atomic_write(path: Path, text: str) -> None:
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """Return a GitHub Markdown table of ``rows`` under ``headers``."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def mib(value_bytes: float) -> float:
    """Return ``value_bytes`` in MiB, rounded to 0.1."""
    return round(value_bytes / 2**20, 1)


def command_line() -> str:
    """Return the command that started this process, as typed from the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script_text = str(script.relative_to(BENCH_DIR.parent))
    except ValueError:
        script_text = str(script)
    return " ".join(["python", script_text, *sys.argv[1:]])


def now_utc() -> str:
    """Return the current UTC time as ISO 8601 text, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
