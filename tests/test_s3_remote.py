"""DVC S3 remote on a local SeaweedFS server: checkpoint push and pull, an unreachable remote."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from conftest import ONLINE_DAYS, dvc

from crossadapt.config.params import load_params
from crossadapt.services.processes import free_port
from crossadapt.services.s3_local import LocalS3
from crossadapt.storage.hashing import sha256_file
from tasks.version import RemoteUnavailable, version_stages

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REMOTE = "s3remote"
STAGES = ["train_teacher", "distill", *(f"online_day@{day}" for day in ONLINE_DAYS)]
CHECKPOINTS = [
    "artifacts/teacher/teacher.pt",
    "artifacts/distill/student.pt",
    *(
        f"artifacts/online/{day}/{role}.pt"
        for day in ONLINE_DAYS
        for role in ("teacher", "student")
    ),
]


def add_s3_remote(project: Path, server: LocalS3, endpoint_url: str, prefix: str) -> None:
    """Configure remote ``s3remote``; the key pair goes to .dvc/config.local (not in git)."""
    dvc(project, "remote", "add", "--force", REMOTE, f"s3://{server.bucket}/{prefix}")
    dvc(project, "remote", "modify", REMOTE, "endpointurl", endpoint_url)
    dvc(project, "remote", "modify", "--local", REMOTE, "access_key_id", server.access_key)
    dvc(project, "remote", "modify", "--local", REMOTE, "secret_access_key", server.secret_key)


def remote_objects(server: LocalS3, prefix: str) -> list[str]:
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
    )
    listing = client.list_objects_v2(Bucket=server.bucket, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


@pytest.fixture
def s3_project(reproduced_project: Path, project_copy: Callable[[Path], Path]) -> Path:
    return project_copy(reproduced_project)


def test_push_then_pull_restores_checkpoints(s3_project: Path, local_s3: LocalS3) -> None:
    prefix = "roundtrip"
    add_s3_remote(s3_project, local_s3, local_s3.endpoint_url, prefix)
    original = {path: sha256_file(s3_project / path) for path in CHECKPOINTS}
    params = load_params(s3_project / "params.yaml")

    summary = version_stages(params, STAGES, run_id="manual__roundtrip", remote=REMOTE)

    assert summary["pushed"] is True
    assert summary["push_attempts"] == 1
    assert remote_objects(local_s3, f"{prefix}/")
    record = json.loads((s3_project / "artifacts" / "versions" / "distill.json").read_text())
    assert record["remote"] == REMOTE
    assert record["airflow_run_id"] == "manual__roundtrip"
    recorded = {out["path"]: out["sha256"] for out in record["outs"]}
    assert recorded["artifacts/distill/student.pt"] == original["artifacts/distill/student.pt"]
    assert local_s3.secret_key not in json.dumps(record)

    shutil.rmtree(s3_project / ".dvc" / "cache")
    for path in CHECKPOINTS:
        (s3_project / path).unlink()
    dvc(s3_project, "pull", "--remote", REMOTE, *STAGES)

    for path in CHECKPOINTS:
        assert sha256_file(s3_project / path) == original[path], path


def test_unreachable_remote_fails_after_retries(
    s3_project: Path,
    local_s3: LocalS3,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A port nobody listens on stands for the server being down; pointing the remote back
    # at the running server stands for its restart.
    prefix = "outage"
    add_s3_remote(s3_project, local_s3, f"http://127.0.0.1:{free_port()}", prefix)
    # One HTTP try per dvc push, so each of our attempts fails in seconds, not minutes.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    params = load_params(s3_project / "params.yaml")
    lock_before = (s3_project / "dvc.lock").read_bytes()
    checkpoints_before = {path: sha256_file(s3_project / path) for path in CHECKPOINTS}
    stage = f"online_day@{ONLINE_DAYS[0]}"

    with pytest.raises(RemoteUnavailable) as failure:
        version_stages(
            params, [stage], run_id="manual__outage", remote=REMOTE, attempts=2, backoff_s=0.1
        )

    message = str(failure.value)
    assert "failed 2 times" in message
    assert REMOTE in message
    assert "Could not connect" in message
    assert local_s3.secret_key not in message
    assert local_s3.secret_key not in caplog.text
    assert "retrying in 0.1 s" in caplog.text
    assert (s3_project / "dvc.lock").read_bytes() == lock_before
    assert {path: sha256_file(s3_project / path) for path in CHECKPOINTS} == checkpoints_before
    assert not (s3_project / "artifacts" / "versions" / f"{stage}.json").exists()

    dvc(s3_project, "remote", "modify", REMOTE, "endpointurl", local_s3.endpoint_url)
    summary = version_stages(params, [stage], run_id="manual__retry", remote=REMOTE)

    assert summary["pushed"] is True
    assert remote_objects(local_s3, f"{prefix}/")
    record = json.loads((s3_project / "artifacts" / "versions" / f"{stage}.json").read_text())
    assert record["airflow_run_id"] == "manual__retry"
    assert record["day"] is None
