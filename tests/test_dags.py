"""The Airflow DAGs: they import cleanly, expose a usable trigger form, and run end to end.

``dag.test()`` runs every task in this process against a small project copy, with an
Airflow database migrated once for the module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ONLINE_DAYS, PIPELINE_PARAMS, copy_project

from crossadapt.config.params import ARCHITECTURES

pytestmark = pytest.mark.integration

DAG_IDS = ("crossadapt_migration", "crossadapt_online")
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


@pytest.fixture(scope="module")
def airflow_project(
    pipeline_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A project copy whose dags/ is the dags_folder of a freshly migrated Airflow database."""
    project = copy_project(pipeline_project, tmp_path_factory.mktemp("dags") / "project")
    home = tmp_path_factory.mktemp("airflow-home")
    settings = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "CROSSADAPT_PROJECT_DIR": str(project),
        "DVC_NO_ANALYTICS": "1",
        "GX_ANALYTICS_ENABLED": "False",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    migrated = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-2000:]

    # NOTE: Airflow reads its configuration when first imported; this module must be the
    # first in the session to import it, which holds while no other test imports airflow.
    from airflow.configuration import conf

    conf.set("core", "dags_folder", str(project / "dags"))
    try:
        yield project
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def dag_bag(airflow_project: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    # Airflow 3.3's DagBag has no include_examples argument: the example DAGs are a
    # separate bundle, off through AIRFLOW__CORE__LOAD_EXAMPLES=False.
    return DagBag(dag_folder=str(airflow_project / "dags"))


@pytest.fixture(scope="module")
def migrated_by_dag(airflow_project: Path, dag_bag: Any) -> dict[str, Any]:
    """Run the migration DAG once with ``student_arch=dnn``; return the run's id and state."""
    dag = dag_bag.get_dag("crossadapt_migration")
    run = dag.test(run_conf={"student_arch": "dnn"})
    return {"run_id": run.run_id, "state": str(run.state)}


def scheduled_days(dag: Any) -> list[str]:
    """Logical dates, as days, of the runs the scheduler creates between start and end date."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    timetable = coerce_to_core_timetable(dag.timetable)
    restriction = TimeRestriction(earliest=dag.start_date, latest=dag.end_date, catchup=True)
    days = []
    info = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    while info is not None and len(days) <= len(ONLINE_DAYS):
        days.append(info.logical_date.date().isoformat())
        info = timetable.next_dagrun_info(
            last_automated_data_interval=info.data_interval, restriction=restriction
        )
    return days


def test_dag_folder_imports_without_errors(dag_bag: Any) -> None:
    assert dag_bag.import_errors == {}
    for dag_id in DAG_IDS:
        assert dag_id in dag_bag.dag_ids


def test_migration_params_schema(dag_bag: Any) -> None:
    dag = dag_bag.get_dag("crossadapt_migration")
    params = dict(dag.params.items())
    schemas = {name: param.schema for name, param in params.items()}

    assert schemas["student_arch"]["enum"] == list(ARCHITECTURES)
    assert schemas["teacher_arch"]["enum"] == list(ARCHITECTURES)
    assert schemas["student_embedding_dim"]["minimum"] == 1
    assert schemas["student_embedding_dim"]["maximum"] == 512
    assert schemas["sampling_ratio"]["exclusiveMinimum"] == 0
    assert schemas["sampling_ratio"]["maximum"] == 1
    assert schemas["distill_alpha"]["minimum"] == 0
    assert schemas["distill_alpha"]["maximum"] == 1
    assert schemas["distill_temperature"]["exclusiveMinimum"] == 0
    assert schemas["online_start"]["format"] == "date"
    assert "uncertainty" in schemas["sampling_strategy"]["enum"]
    for name, param in params.items():
        assert param.description, f"param {name} has no description"
    # The form starts from params.yaml.
    assert params["student_arch"].value == PIPELINE_PARAMS["student"]["arch"]
    assert params["distill_alpha"].value == PIPELINE_PARAMS["distill"]["alpha"]
    assert dag.max_active_runs == 1
    assert dag.doc_md and "student_arch" in dag.doc_md


def test_online_dag_schedule_covers_online_days(dag_bag: Any) -> None:
    dag = dag_bag.get_dag("crossadapt_online")

    assert dag.start_date == datetime.fromisoformat(ONLINE_DAYS[0]).replace(tzinfo=UTC)
    assert dag.end_date == datetime.fromisoformat(ONLINE_DAYS[-1]).replace(tzinfo=UTC)
    assert dag.catchup is True
    assert dag.max_active_runs == 1
    assert scheduled_days(dag) == ONLINE_DAYS
    assert dag.task_dict["co_distill"].trigger_rule == "none_failed_min_one_success"
    assert dag.task_dict["version"].trigger_rule == "none_failed_min_one_success"
    assert dag.task_dict["check"].retries == 2


@pytest.mark.slow
def test_migration_dag_runs_end_to_end(airflow_project: Path, migrated_by_dag: dict) -> None:
    from crossadapt.storage.checkpoint import load_checkpoint

    assert migrated_by_dag["state"] == "success"
    artifacts = airflow_project / "artifacts"
    student = load_checkpoint(artifacts / "distill" / "student.pt")
    teacher = load_checkpoint(artifacts / "teacher" / "teacher.pt")
    assert student.arch == "dnn"
    assert student.role == "student"
    assert teacher.arch == PIPELINE_PARAMS["teacher"]["arch"]
    shadow = json.loads((artifacts / "shadow" / "metrics.json").read_text())
    assert 0.0 <= shadow["test"]["student_auc"] <= 1.0

    lock = yaml.safe_load((airflow_project / "dvc.lock").read_text())["stages"]
    for stage in OFFLINE_STAGES:
        assert stage in lock
        record = json.loads((artifacts / "versions" / f"{stage}.json").read_text())
        assert record["airflow_run_id"] == migrated_by_dag["run_id"]
        assert record["params_overrides"] == {"student.arch": "dnn"}
    distill_record = json.loads((artifacts / "versions" / "distill.json").read_text())
    [student_out] = [out for out in distill_record["outs"] if out["path"].endswith("student.pt")]
    [locked_student] = [
        out for out in lock["distill"]["outs"] if out["path"].endswith("student.pt")
    ]
    assert student_out["md5"] == locked_student["md5"]
    assert len(student_out["sha256"]) == 64
    # The project's default remote is a local folder: the checkpoints were pushed there.
    assert distill_record["pushed"] is True
    storage = airflow_project.parent / f"{airflow_project.name}.dvc-storage"
    assert any(storage.rglob("*"))


@pytest.mark.slow
def test_online_dag_runs_each_day(
    airflow_project: Path, dag_bag: Any, migrated_by_dag: dict
) -> None:
    from crossadapt.storage.checkpoint import load_checkpoint
    from crossadapt.storage.hashing import sha256_file
    from crossadapt.storage.ledger import Ledger

    assert migrated_by_dag["state"] == "success"
    dag = dag_bag.get_dag("crossadapt_online")
    run_ids = {}
    for day in ONLINE_DAYS:
        run = dag.test(logical_date=datetime.fromisoformat(day).replace(tzinfo=UTC))
        assert str(run.state) == "success", f"online run of {day} ended {run.state}"
        run_ids[day] = run.run_id

    artifacts = airflow_project / "artifacts"
    ledger = Ledger(artifacts / "online" / "ledger.json")
    assert ledger.days() == ONLINE_DAYS
    for day in ONLINE_DAYS:
        day_dir = artifacts / "online" / day
        assert load_checkpoint(day_dir / "student.pt").arch == "dnn"
        assert (day_dir / "drift" / "drift_report.html").is_file()
        assert (day_dir / "drift" / "drift_report.json").is_file()
        record = json.loads((artifacts / "versions" / f"online_day@{day}.json").read_text())
        assert record["airflow_run_id"] == run_ids[day]
        assert record["day"] == day

    # Only the drifted second day went through drift_alert.
    assert not (artifacts / "online" / "alerts" / f"{ONLINE_DAYS[0]}.json").exists()
    alert = json.loads((artifacts / "online" / "alerts" / f"{ONLINE_DAYS[1]}.json").read_text())
    assert alert["flagged"] is True
    assert alert["drift_score"] > PIPELINE_PARAMS["adaptation"]["drift_threshold"]

    promotion = json.loads((artifacts / "online" / "promotion.json").read_text())
    last_student = artifacts / "online" / ONLINE_DAYS[-1] / "student.pt"
    assert promotion["student_checkpoint"] == f"artifacts/online/{ONLINE_DAYS[-1]}/student.pt"
    assert promotion["student_checkpoint_sha256"] == sha256_file(last_student)
    assert promotion["decision"]["days"] == ONLINE_DAYS
    assert promotion["promoted"] == all(promotion["decision"]["checks"].values())


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ({"student_arch": "dnn"}, {"student.arch": "dnn"}),
        ({"distill_alpha": 1, "sampling_ratio": None}, {"distill.alpha": 1.0}),
        ({"online_start": "2024-01-06"}, {"split.online_start": "2024-01-06"}),
        (None, {}),
    ],
)
def test_conf_overrides_accepted(conf: dict | None, expected: dict) -> None:
    from tasks.airflow_conf import overrides_from_conf

    assert overrides_from_conf(conf) == expected


@pytest.mark.parametrize(
    ("conf", "named_key"),
    [
        ({"params_file": "../params.yaml"}, "params_file"),
        ({"paths.data_dir": "/etc"}, "paths.data_dir"),
        ({"student_embedding_dim": True}, "student_embedding_dim"),
        ({"student_embedding_dim": "8"}, "student_embedding_dim"),
        ({"online_start": "2024-1-6"}, "online_start"),
        ({"retained_start": "2024-02-30"}, "retained_start"),
    ],
)
def test_conf_overrides_rejected(conf: dict, named_key: str) -> None:
    from crossadapt.errors import ParamsError
    from tasks.airflow_conf import overrides_from_conf

    with pytest.raises(ParamsError) as error:
        overrides_from_conf(conf)
    assert named_key in str(error.value)


def test_conf_out_of_range_value_names_key(pipeline_project: Path) -> None:
    from crossadapt.errors import ParamsError
    from tasks.airflow_conf import load_run_params

    with pytest.raises(ParamsError) as error:
        load_run_params({"distill_alpha": 1.5}, pipeline_project)
    assert "distill.alpha" in str(error.value)


def test_project_dir_from_environment(
    pipeline_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crossadapt.errors import ParamsError
    from tasks.airflow_conf import PROJECT_DIR_ENV, project_dir

    monkeypatch.setenv(PROJECT_DIR_ENV, str(pipeline_project))
    assert project_dir(tmp_path) == pipeline_project.resolve()
    monkeypatch.setenv(PROJECT_DIR_ENV, str(tmp_path))
    with pytest.raises(ParamsError, match=PROJECT_DIR_ENV):
        project_dir(pipeline_project)


def test_version_redacts_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.version import redact

    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config.local").write_text(
        "['remote \"s3\"']\n"
        "    access_key_id = AKIALOCALKEY\n"
        "    secret_access_key = s3cr3t-value\n"
    )
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-value")
    text = "denied for AKIALOCALKEY/s3cr3t-value env-secret-value at https://user:pw@host/x"

    redacted = redact(text, tmp_path)

    for secret in ("AKIALOCALKEY", "s3cr3t-value", "env-secret-value", "user:pw"):
        assert secret not in redacted
    assert "https://***@host/x" in redacted
