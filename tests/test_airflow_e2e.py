"""A real Airflow 3 stack runs the migration DAG, triggered through the REST API with a conf."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from crossadapt.services.airflow_local import LocalAirflow
from crossadapt.storage.checkpoint import load_checkpoint

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAG_ID = "crossadapt_migration"
RUN_TIMEOUT_SECONDS = 900


def test_migration_runs_one_at_a_time_via_rest(
    airflow_stack: Callable[..., LocalAirflow],
    pipeline_project: Path,
    project_copy: Callable[[Path], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = project_copy(pipeline_project)
    # LocalAirflow hands its own environment to every component, so the tasks see these.
    monkeypatch.setenv("CROSSADAPT_PROJECT_DIR", str(project))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    stack = airflow_stack(project / "dags")
    stack.wait_dag_parsed(DAG_ID, timeout_s=180)
    stack.unpause(DAG_ID)
    client = stack.client()

    first = stack.trigger(DAG_ID, {"student_arch": "dnn"})
    second = stack.trigger(DAG_ID, {"student_arch": "dnn", "distill_alpha": 0.5})

    # max_active_runs=1: the second run waits queued while the first one runs.
    overlaps = []
    order = []
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    states = {first: "queued", second: "queued"}
    while time.monotonic() < deadline and set(states.values()) - {"success", "failed"}:
        states = {run_id: client.run_state(DAG_ID, run_id) for run_id in (first, second)}
        if list(states.values()) == ["running", "running"]:
            overlaps.append(dict(states))
        for run_id, state in states.items():
            if state in ("success", "failed") and run_id not in order:
                order.append(run_id)
        time.sleep(2.0)

    assert states == {first: "success", second: "success"}, (
        f"run states {states}; task states of the second run: "
        f"{stack.task_states(DAG_ID, second)}; logs in {stack.log_dir}"
    )
    assert overlaps == []
    assert order == [first, second]

    artifacts = project / "artifacts"
    student = load_checkpoint(artifacts / "distill" / "student.pt")
    assert student.arch == "dnn"
    assert student.role == "student"
    distill_metrics = json.loads((artifacts / "distill" / "metrics.json").read_text())
    assert distill_metrics
    record = json.loads((artifacts / "versions" / "distill.json").read_text())
    assert record["airflow_run_id"] == second
    assert record["params_overrides"] == {"student.arch": "dnn", "distill.alpha": 0.5}
    task_states = stack.task_states(DAG_ID, second)
    assert set(task_states.values()) == {"success"}
    assert "version" in task_states
    # The timings bench/airflow_overhead.py reads.
    run = client.dag_run(DAG_ID, second)
    assert run["start_date"] and run["end_date"]
    instances = client.task_instances(DAG_ID, second)
    assert {instance["task_id"] for instance in instances} == set(task_states)
    assert all(instance["duration"] >= 0 and instance["start_date"] for instance in instances)
