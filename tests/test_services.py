"""Integration tests of the local SeaweedFS S3 server and the loopback Airflow 3 stack."""

from __future__ import annotations

import logging
import os
import stat
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

# Fixtures come from tests/services.py until a conftest.py imports them for every module.
from services import TEST_BUCKET, airflow_stack, local_s3, require_weed  # noqa: F401

from crossadapt.services.airflow_local import LocalAirflow
from crossadapt.services.processes import (
    LOOPBACK,
    descendant_pids,
    is_alive,
    listening_sockets,
    port_is_free,
)
from crossadapt.services.s3_local import LocalS3

pytestmark = pytest.mark.integration

logger = logging.getLogger(__name__)

PROBE_DAG = textwrap.dedent(
    '''
    """Two-task probe: read the run configuration, then write a file from it."""

    from pathlib import Path

    from airflow.sdk import dag, get_current_context, task


    @dag(dag_id="services_probe", schedule=None, catchup=False)
    def services_probe():
        @task
        def read_conf() -> dict:
            conf = get_current_context()["dag_run"].conf
            return {"out": conf["out"], "value": conf["value"]}

        @task
        def write_value(settings: dict) -> None:
            Path(settings["out"]).write_text(settings["value"] * 2)

        write_value(read_conf())


    services_probe()
    '''
)


def s3_client(endpoint_url: str) -> object:
    # A new session reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the environment
    # now; boto3.client() would reuse the credentials its default session cached earlier.
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url, region_name="us-east-1")


def test_s3_roundtrip_and_clean_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_weed()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "crossadapt-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "crossadapt-test-secret")
    server = LocalS3(
        tmp_path / "s3",
        bucket="roundtrip",
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    )

    started = time.monotonic()
    server.start()
    try:
        ready_s = server.wait_ready()
        pid = server.pid
        assert pid is not None
        logger.info("SeaweedFS ready after %.1f s", ready_s)

        listeners = listening_sockets([pid, *descendant_pids(pid)])
        assert server.endpoint_url == f"http://{LOOPBACK}:{server.port}"
        assert server.port in {listener.port for listener in listeners}
        assert {listener.address for listener in listeners} == {LOOPBACK}

        client = s3_client(server.endpoint_url)
        client.put_object(Bucket="roundtrip", Key="days/1998-03-01.txt", Body=b"clicks")
        body = client.get_object(Bucket="roundtrip", Key="days/1998-03-01.txt")["Body"].read()
        assert body == b"clicks"

        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
        with pytest.raises(ClientError) as rejected:
            s3_client(server.endpoint_url).get_object(Bucket="roundtrip", Key="days/1998-03-01.txt")
        assert rejected.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    finally:
        server.stop()
    logger.info("SeaweedFS start, round trip and stop took %.1f s", time.monotonic() - started)

    assert not is_alive(pid)
    assert not server.pid_file.exists()
    assert port_is_free(server.port)


def test_s3_fixture_serves_bucket(local_s3: LocalS3) -> None:  # noqa: F811
    client = boto3.client(
        "s3",
        endpoint_url=local_s3.endpoint_url,
        aws_access_key_id=local_s3.access_key,
        aws_secret_access_key=local_s3.secret_key,
        region_name="us-east-1",
    )
    client.put_object(Bucket=TEST_BUCKET, Key="probe", Body=b"1")

    listed = client.list_objects_v2(Bucket=TEST_BUCKET)
    assert [entry["Key"] for entry in listed["Contents"]] == ["probe"]


@pytest.mark.slow
def test_airflow_runs_dag_on_loopback(
    tmp_path: Path,
    airflow_stack: Callable[..., LocalAirflow],  # noqa: F811
) -> None:
    dags_folder = tmp_path / "dags"
    dags_folder.mkdir()
    (dags_folder / "services_probe.py").write_text(PROBE_DAG)
    output = tmp_path / "probe-output.txt"

    started = time.monotonic()
    stack = airflow_stack(dags_folder)
    logger.info("Airflow migrated, started and healthy after %.1f s", time.monotonic() - started)

    password_mode = stat.S_IMODE(stack.password_file.stat().st_mode)
    assert password_mode == 0o600
    assert stat.S_IMODE(stack.secrets_file.stat().st_mode) == 0o600
    password = stack.admin_password()
    assert len(password) >= 20
    assert password != "admin"
    assert stack.token()

    stack.wait_dag_parsed("services_probe")
    stack.unpause("services_probe")
    run_started = time.monotonic()
    run_id = stack.trigger("services_probe", {"out": str(output), "value": "abc"})
    state = stack.wait_for_run("services_probe", run_id, timeout_s=120)
    logger.info("probe DAG run took %.1f s", time.monotonic() - run_started)

    assert state == "success"
    assert stack.task_states("services_probe", run_id) == {
        "read_conf": "success",
        "write_value": "success",
    }
    assert output.read_text() == "abcabc"

    running = stack.running_components()
    assert sorted(running) == ["api-server", "dag-processor", "scheduler"]
    pids = [pid for leader in running.values() for pid in (leader, *descendant_pids(leader))]
    listeners = listening_sockets(pids)
    assert stack.port in {listener.port for listener in listeners}
    assert {listener.address for listener in listeners} == {LOOPBACK}

    stack.stop()

    assert [pid for pid in pids if is_alive(pid)] == []
    assert listening_sockets(pids) == []
    assert port_is_free(stack.port)
    assert list(stack.pid_dir.glob("*.pid")) == []
    assert stack.running_components() == {}
