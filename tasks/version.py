"""Pipeline step ``version``: record a step's outputs in DVC and push them to the remote.

``dvc commit`` stores the outputs of the dvc.yaml stages that produced them in the cache
and dvc.lock; ``dvc push`` copies them to the remote, with bounded retries. A record per
stage, ``artifacts/versions/<stage>.json``, ties the Airflow run id to the output hashes.
Runs as ``crossadapt version --stage STAGE [--stage ...] [--run-id ID] [--day DAY]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from crossadapt.errors import CrossAdaptError, ParamsError
from crossadapt.storage.atomic import atomic_write_json
from tasks.common import exit_with, layout_of, simple_step

if TYPE_CHECKING:
    from crossadapt.config.params import Params

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
OFFLINE_STAGES = (
    "fetch_data",
    "ingest",
    "validate",
    "train_teacher",
    "sample",
    "transfer",
    "distill",
    "shadow_evaluate",
)
PUSH_ATTEMPTS = 4
PUSH_BACKOFF_SECONDS = 2.0
DVC_TIMEOUT_SECONDS = 600.0
# Config keys of .dvc/config.local whose values must never reach a log or an error.
_SECRET_KEY_PATTERN = re.compile(
    r"^\s*(secret_access_key|session_token|password|access_key_id)\s*=\s*(.+?)\s*$",
    re.MULTILINE,
)
_SECRET_ENV_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")


class RemoteUnavailable(CrossAdaptError):
    """The DVC remote did not accept a push within the bounded retries."""


class DvcCommandFailed(CrossAdaptError):
    """A dvc command (other than a push) exited with an error."""


def online_stage(day: str) -> str:
    """Return the dvc.yaml stage name of one online day (a foreach item of ``online_day``)."""
    return f"online_day@{day}"


def run_dvc(root: Path, arguments: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dvc <arguments>`` in ``root`` with analytics off.

    A non-zero exit status is returned in the result, not raised; callers check it."""
    env = dict(os.environ)
    env["DVC_NO_ANALYTICS"] = "1"
    command = [sys.executable, "-m", "dvc", *arguments]
    logger.info("running dvc %s in %s", " ".join(arguments), root)
    return subprocess.run(
        command,
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DVC_TIMEOUT_SECONDS,
        check=False,
    )


def redact(text: str, root: Path) -> str:
    """Return ``text`` with every credential of the environment or .dvc/config.local masked."""
    secrets = [os.environ[name] for name in _SECRET_ENV_VARS if os.environ.get(name)]
    local_config = root / ".dvc" / "config.local"
    if local_config.is_file():
        secrets += [match[1] for match in _SECRET_KEY_PATTERN.findall(local_config.read_text())]
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    # Credentials written into a URL, as in s3://key:secret@host or https://user:pass@host.
    return re.sub(r"(\w+://)[^/@\s:]+:[^/@\s]+@", r"\1***@", text)


def default_remote(root: Path) -> str | None:
    """Return the default DVC remote of the project, or None when none is configured."""
    result = run_dvc(root, ["remote", "default"])
    name = result.stdout.strip()
    if result.returncode != 0 or not name or " " in name:
        return None
    return name


def commit_stages(root: Path, stages: Sequence[str]) -> None:
    """Run ``dvc commit -f <stages>``: cache the stages' outputs and record them in dvc.lock."""
    result = run_dvc(root, ["commit", "--force", *stages])
    if result.returncode != 0:
        raise DvcCommandFailed(
            f"`dvc commit -f {' '.join(stages)}` in {root} failed with status "
            f"{result.returncode}: {_last_lines(redact(result.stderr or result.stdout, root))}. "
            "Check the stage names in dvc.yaml (an online day is online_day@YYYY-MM-DD; rerun "
            "`crossadapt plan-days` after changing the split) and that every output exists"
        )
    logger.info("committed DVC stages %s", ", ".join(stages))


def push_with_retries(
    root: Path,
    remote: str,
    stages: Sequence[str],
    attempts: int = PUSH_ATTEMPTS,
    backoff_s: float = PUSH_BACKOFF_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Push the stages' outputs to ``remote``; return the number of attempts it took.

    Attempt ``k`` (from 0) that fails waits ``backoff_s * 2**k`` seconds before the next
    one. After ``attempts`` failures it raises RemoteUnavailable with dvc's last error;
    a failed push leaves the workspace, the cache and dvc.lock as they were.
    """
    if attempts < 1:
        raise ParamsError(f"push attempts = {attempts}: give 1 or more")
    started = time.monotonic()
    last_error = ""
    for attempt in range(attempts):
        result = run_dvc(root, ["push", "--remote", remote, *stages])
        if result.returncode == 0:
            logger.info(
                "pushed %s to DVC remote %r (attempt %d of %d)",
                ", ".join(stages),
                remote,
                attempt + 1,
                attempts,
            )
            return attempt + 1
        last_error = _last_lines(redact(result.stderr or result.stdout, root))
        if attempt + 1 < attempts:
            delay = backoff_s * 2**attempt
            logger.warning(
                "dvc push to remote %r failed (attempt %d of %d): %s; retrying in %.1f s",
                remote,
                attempt + 1,
                attempts,
                last_error,
                delay,
            )
            sleep(delay)
    raise RemoteUnavailable(
        f"dvc push of {', '.join(stages)} to remote {remote!r} failed {attempts} times in "
        f"{time.monotonic() - started:.0f} s; last error: {last_error}. The outputs are "
        "committed to the local DVC cache and nothing else changed: check that the remote is "
        f"reachable (`dvc remote list`, its endpoint and credentials), then push again with "
        f"`dvc push -r {remote}` or rerun the version task"
    )


def lock_entry(root: Path, stage: str) -> dict[str, Any]:
    """Return the dvc.lock entry of ``stage`` (cmd, deps, params, outs)."""
    lock_file = root / "dvc.lock"
    try:
        content = yaml.safe_load(lock_file.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise DvcCommandFailed(f"{lock_file} not found after `dvc commit`") from None
    entry = (content.get("stages") or {}).get(stage)
    if entry is None:
        raise DvcCommandFailed(
            f"stage {stage!r} is not in {lock_file}; the stage names there are "
            f"{', '.join(sorted(content.get('stages') or {}))}"
        )
    return dict(entry)


def output_hashes(root: Path, outs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return each output of a dvc.lock entry with its DVC md5, size and our sha256.

    A directory's sha256 is computed over its listing: one ``<relative path> <sha256>``
    line per file, sorted by path, so it changes when any file in it changes.
    """
    from crossadapt.storage.hashing import sha256_file

    described = []
    for out in outs:
        path = root / str(out["path"])
        row: dict[str, Any] = {
            "path": str(out["path"]),
            "md5": out.get("md5"),
            "size": out.get("size"),
        }
        if "nfiles" in out:
            row["nfiles"] = out["nfiles"]
        if path.is_file():
            row["sha256"] = sha256_file(path)
        elif path.is_dir():
            listing = "".join(
                f"{file.relative_to(path).as_posix()} {sha256_file(file)}\n"
                for file in sorted(path.rglob("*"))
                if file.is_file()
            )
            row["sha256"] = hashlib.sha256(listing.encode()).hexdigest()
        else:
            row["sha256"] = None
        described.append(row)
    return described


def version_stages(
    params: Params,
    stages: Sequence[str],
    run_id: str | None = None,
    day: str | None = None,
    remote: str | None = None,
    push: bool = True,
    attempts: int = PUSH_ATTEMPTS,
    backoff_s: float = PUSH_BACKOFF_SECONDS,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Commit ``stages`` with DVC, push them when a remote is configured, write the records.

    ``remote`` None means the project's default remote; with no remote, or ``push`` False,
    nothing is pushed. ``overrides`` are the run's parameter overrides, written to the
    records. NOTE: dvc.lock lists the values of params.yaml, not these overrides, so a run
    with overrides is only reproducible from its record, not from dvc.lock alone.
    """
    from crossadapt.storage.locks import run_lock

    layout = layout_of(params)
    root = layout.root
    if not stages:
        raise ParamsError("version: give at least one dvc.yaml stage name")
    if not (root / ".dvc").is_dir():
        raise DvcCommandFailed(
            f"{root} is not a DVC project (no .dvc folder); run `dvc init` there first"
        )
    started = time.monotonic()

    with run_lock(layout.lock_file):
        commit_stages(root, stages)
        entries = {stage: lock_entry(root, stage) for stage in stages}

    remote_name = (remote or default_remote(root)) if push else None
    push_attempts = 0
    if remote_name:
        push_attempts = push_with_retries(root, remote_name, stages, attempts, backoff_s)
    else:
        logger.info("no DVC remote configured: outputs committed to the local cache only")

    records = {}
    for stage in stages:
        record = {
            "format_version": FORMAT_VERSION,
            "stage": stage,
            "airflow_run_id": run_id,
            "day": day,
            "versioned_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "git_commit": _git_commit(root),
            "params_overrides": dict(overrides or {}),
            "params": entries[stage].get("params", {}),
            "remote": remote_name,
            "pushed": bool(remote_name),
            "outs": output_hashes(root, entries[stage].get("outs", [])),
        }
        path = layout.artifacts_dir / "versions" / f"{stage}.json"
        atomic_write_json(path, record)
        records[stage] = str(path)
    logger.info(
        "versioned %d stages in %.1f s (remote %s)",
        len(stages),
        time.monotonic() - started,
        remote_name or "none",
    )
    return {
        "stages": list(stages),
        "remote": remote_name,
        "pushed": bool(remote_name),
        "push_attempts": push_attempts,
        "records": records,
    }


def _git_commit(root: Path) -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:]) if lines else "no output"


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stage",
        dest="stages",
        action="append",
        default=[],
        help="dvc.yaml stage to commit, repeatable (online days: online_day@YYYY-MM-DD); "
        "default: the offline stages",
    )
    parser.add_argument("--run-id", default=None, help="Airflow run id written to the records")
    parser.add_argument("--day", default=None, help="online day written to the records")
    parser.add_argument(
        "--remote", default=None, help="DVC remote to push to (default: the default remote)"
    )
    parser.add_argument("--no-push", action="store_true", help="commit only, push nothing")
    parser.add_argument(
        "--attempts",
        type=int,
        default=PUSH_ATTEMPTS,
        help="push attempts before giving up (default: %(default)s)",
    )
    parser.add_argument(
        "--backoff",
        type=float,
        default=PUSH_BACKOFF_SECONDS,
        help="seconds before the first retry, doubled after each failure (default: %(default)s)",
    )


SUBCOMMAND, main = simple_step(
    "version",
    "dvc commit a step's outputs, push them to the remote, write artifacts/versions/<stage>.json",
    lambda params: {},
    extra_arguments=_add_arguments,
    call=lambda params, args: version_stages(
        params,
        args.stages or list(OFFLINE_STAGES),
        run_id=args.run_id,
        day=args.day,
        remote=args.remote,
        push=not args.no_push,
        attempts=args.attempts,
        backoff_s=args.backoff,
    ),
)

if __name__ == "__main__":
    exit_with(main)
