"""Small throw-away CrossAdapt projects for the fault, bad-input and security tests.

``synthetic_params`` and ``generic_params`` write a params.yaml into a temp folder, and
``run_step`` runs one CLI step in a subprocess. ``built_project`` builds a project once per
test session and gives each caller its own copy.
"""

from __future__ import annotations

import copy
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DATASET = "synthetic"
DAYS = [f"2024-01-0{n}" for n in range(1, 9)]
HISTORY_DAYS, RETAINED_DAYS, ONLINE_DAYS, TEST_DAYS = DAYS[:3], DAYS[3:5], DAYS[5:7], DAYS[7:]
STEP_TIMEOUT_SECONDS = 300
# Fake S3 credentials, random per session: every step built or run here sees them in its
# environment, so a test can search the outputs for them.
SECRET_CANARY = f"canary-{secrets.token_hex(20)}"
CREDENTIALS_ENV = {
    "AWS_ACCESS_KEY_ID": f"AKIA{secrets.token_hex(8).upper()}",
    "AWS_SECRET_ACCESS_KEY": SECRET_CANARY,
}
# Environment of every step: the fake credentials, no analytics calls.
STEP_ENV = {**CREDENTIALS_ENV, "DVC_NO_ANALYTICS": "1", "GX_ANALYTICS_ENABLED": "False"}

SYNTHETIC_STREAM: dict[str, Any] = {
    "n_days": len(DAYS),
    "rows_per_day": 1500,
    "n_categorical": 5,
    "n_numeric": 1,
    "vocab_sizes": [60, 40, 8, 5, 12],
    "start_date": DAYS[0],
    "new_id_share": 0.0,
    "seed": 7,
}

BASE_PARAMS: dict[str, Any] = {
    "seed": 42,
    "dataset": {"name": "synthetic", "synthetic": SYNTHETIC_STREAM},
    "split": {
        "history_start": HISTORY_DAYS[0],
        "retained_start": RETAINED_DAYS[0],
        "online_start": ONLINE_DAYS[0],
        "online_end": ONLINE_DAYS[-1],
        "test_start": TEST_DAYS[0],
        "test_end": TEST_DAYS[-1],
    },
    "features": {"min_count": 1, "numeric_transform": "log"},
    "teacher": {
        "arch": "dnn",
        "embedding_dim": 4,
        "hidden_units": [16],
        "epochs": 1,
        "batch_size": 512,
    },
    "student": {"arch": "deepfm", "embedding_dim": 8, "hidden_units": [16]},
    "sampling": {"strategy": "balanced", "ratio": 0.5},
    "distill": {"alpha": 0.7, "temperature": 4.0, "batch_size": 512},
    "online": {"batch_size": 512},
    "validation": {"min_rows": 1, "max_oov_rate": 0.95},
    "paths": {"data_dir": "data", "artifacts_dir": "artifacts"},
}

# Generic CSV log: one row per line, day given by the Unix time in `ts`.
GENERIC_COLUMNS = ["ts", "user", "item", "price", "clicked"]
GENERIC_SPEC: dict[str, Any] = {
    "name": "shop",
    "files": ["log.csv"],
    "label": {"column": "clicked", "positive_values": ["1"], "negative_values": ["0"]},
    "timestamp": {"column": "ts", "format": "unix_s"},
    "categorical": [{"name": "user", "source": "user"}, {"name": "item", "source": "item"}],
    "numeric": [{"name": "price", "source": "context"}],
}


@dataclass(frozen=True)
class StepResult:
    """Exit status and output of one CLI step run in a subprocess."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def error_line(self) -> str:
        """The ``error: ...`` message the CLI printed (empty when there is none)."""
        lines = self.stderr.splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith("error: ")), None)
        return "" if start is None else "\n".join(lines[start:])


def write_params(folder: Path, params: dict[str, Any]) -> Path:
    """Write ``params`` as ``folder/params.yaml`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def synthetic_params(folder: Path, **sections: Any) -> Path:
    """Write a params.yaml for the small synthetic stream; ``sections`` replace whole sections."""
    params = copy.deepcopy(BASE_PARAMS)
    params.update(copy.deepcopy(sections))
    return write_params(folder, params)


def generic_params(
    folder: Path, spec_changes: dict[str, Any] | None = None, **sections: Any
) -> Path:
    """Write a params.yaml that ingests ``folder/log.csv`` as the generic dataset ``shop``."""
    params = copy.deepcopy(BASE_PARAMS)
    params["dataset"] = {"name": "generic", "generic": {**GENERIC_SPEC, **(spec_changes or {})}}
    params.update(copy.deepcopy(sections))
    return write_params(folder, params)


def generic_rows(
    days: int = 2, rows_per_day: int = 4, start: str = "2024-01-01"
) -> list[list[str]]:
    """Valid rows of the generic log: ``rows_per_day`` rows on each of ``days`` UTC days."""
    from crossadapt.config.days import day_start_timestamp, shift_day

    rows = []
    for day_index in range(days):
        midnight = day_start_timestamp(shift_day(start, day_index))
        for row in range(rows_per_day):
            rows.append(
                [
                    str(midnight + 60 * row),
                    f"u{row % 3}",
                    f"i{(row + day_index) % 5}",
                    f"{1.5 * row:.2f}",
                    str(row % 2),
                ]
            )
    return rows


def write_csv(
    path: Path,
    rows: Iterable[Iterable[str]],
    header: Iterable[str] = GENERIC_COLUMNS,
    delimiter: str = ",",
) -> Path:
    """Write a CSV file (header line, then one line per row) with ``\\n`` line ends."""
    lines = [delimiter.join(header), *(delimiter.join(row) for row in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_step(
    project: Path,
    step: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = STEP_TIMEOUT_SECONDS,
) -> StepResult:
    """Run ``python -m tasks.<step> --params params.yaml ARGS`` in ``project`` and wait for it."""
    completed = subprocess.run(
        step_command(step, *args),
        cwd=project,
        env=step_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return StepResult(completed.returncode, completed.stdout, completed.stderr)


def start_step(
    project: Path, step: str, *args: str, env: dict[str, str] | None = None, log_name: str = ""
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start a CLI step without waiting; its stderr goes to ``project/logs/<log_name>.log``."""
    logs = project / "logs"
    logs.mkdir(exist_ok=True)
    log_path = logs / f"{log_name or step}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            step_command(step, *args),
            cwd=project,
            env=step_env(env),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    return process, log_path


def step_command(step: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"tasks.{step}", "--params", "params.yaml", *args]


def step_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **STEP_ENV, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(REPO), env.get("PYTHONPATH", "")) if part
    )
    return env


def kill_when(
    process: subprocess.Popen[bytes],
    condition: Callable[[], bool],
    timeout: float = STEP_TIMEOUT_SECONDS,
    poll_seconds: float = 0.001,
) -> bool:
    """Send SIGKILL to ``process`` as soon as ``condition()`` is true; False if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            return True
        if process.poll() is not None:
            return False
        time.sleep(poll_seconds)
    process.kill()
    process.wait(timeout=30)
    raise TimeoutError(f"condition not met within {timeout} s; process killed")


def wait_for(
    condition: Callable[[], bool], timeout: float = 120, poll_seconds: float = 0.01
) -> None:
    """Wait until ``condition()`` is true; raise TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(poll_seconds)


def file_hashes(*folders: Path) -> dict[str, str]:
    """sha256 of every file under ``folders``, keyed by path: a snapshot to compare after a step."""
    hashes: dict[str, str] = {}
    for folder in folders:
        if not folder.exists():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                hashes[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def run_in_process(params_path: Path, step: str, *args: str) -> int:
    """Run one CLI subcommand in this process (the cheap way to build a base project)."""
    from tasks import cli

    return cli.main([step, "--params", str(params_path), *args])


# The offline stage, then what the rest of `dvc repro` adds to it.
OFFLINE_STEPS: tuple[tuple[str, ...], ...] = (
    ("ingest",),
    ("train-teacher",),
    ("sample",),
    ("transfer",),
    ("distill",),
)
FULL_STEPS: tuple[tuple[str, ...], ...] = (
    ("validate",),
    ("shadow-evaluate",),
    *(("online-day", "--day", day) for day in ONLINE_DAYS),
    ("report",),
)

_built: dict[str, Path] = {}


def built_project(kind: str, cache_root: Path, destination: Path) -> Path:
    """Copy a project built once per session into ``destination``; return its params.yaml.

    ``kind``: ``offline`` (ingest, train-teacher, sample, transfer, distill) or ``full``
    (the offline project plus validate, shadow-evaluate, every online day and report).
    The steps run in this process through ``tasks.cli.main`` with ``STEP_ENV`` set; their
    log records go to ``logs/pipeline.log`` of the project.
    """
    if kind not in _built:
        if kind == "offline":
            folder = cache_root / "built-offline"
            synthetic_params(folder)
            _run_steps(folder, OFFLINE_STEPS)
        elif kind == "full":
            folder = cache_root / "built-full"
            built_project("offline", cache_root, folder)
            _run_steps(folder, FULL_STEPS)
        else:
            raise ValueError(f"unknown project kind {kind!r}: use 'offline' or 'full'")
        _built[kind] = folder
    shutil.copytree(_built[kind], destination, dirs_exist_ok=True)
    return destination / "params.yaml"


def _run_steps(folder: Path, steps: Iterable[tuple[str, ...]]) -> None:
    import logging

    (folder / "logs").mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder / "logs" / "pipeline.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    saved_env = {name: os.environ.get(name) for name in STEP_ENV}
    os.environ.update(STEP_ENV)
    try:
        for step in steps:
            status = run_in_process(folder / "params.yaml", *step)
            if status != 0:
                raise RuntimeError(f"building {folder}: step {' '.join(step)} exited {status}")
    finally:
        root.removeHandler(handler)
        handler.close()
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
