"""Airflow DAG ``crossadapt_migration``: the offline stage of a CrossAdapt migration, run on demand.

Wiring only: each task loads params.yaml with the run's overrides through
tasks.airflow_conf and calls one step of tasks/.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from crossadapt.models.registry import architecture_names
from tasks.airflow_conf import fail_fast_on_user_error, load_file_params, load_run_params

DEFAULT_PROJECT = Path(__file__).resolve().parents[1]
SAMPLING_STRATEGIES = ["uniform", "balanced", "recency", "balanced_recency", "uncertainty", "none"]

DOC_MD = """
### CrossAdapt migration (offline stage)

Replaces the production **teacher** by a **student** of another architecture:
`fetch_data -> ingest -> validate -> train_teacher -> sample -> transfer -> distill ->
shadow_evaluate -> version`. `transfer` projects the teacher's embedding tables into the
student's dimension, `distill` trains the student on a sample of the retained window
against the teacher's logits, `shadow_evaluate` scores both models on the online and
test days, and `version` runs `dvc commit` on these stages (and `dvc push` when a DVC
remote is configured), writing `artifacts/versions/<stage>.json` with this run's id.

**Parameters.** The form starts from the values of `params.yaml` when the DAG was
parsed; a run sets only these keys, and every other setting comes from `params.yaml`.
`student_arch` / `teacher_arch` are registered model architectures, `*_embedding_dim`
the embedding width of every field, `retained_start` and `online_start` the first day
of the retained window and of the online stage (`YYYY-MM-DD`, UTC), `sampling_strategy`
/ `sampling_ratio` how the distillation sample is drawn from the retained window, and
`distill_alpha` / `distill_temperature` the weight of the teacher's soft labels and the
softmax temperature of the KD loss.

**Runs.** One run at a time (`max_active_runs=1`); a second trigger waits in the queue.
Parameter and data errors fail the task at once without retries; other failures are
retried with exponential backoff. The project folder is the parent of `dags/`, or
`$CROSSADAPT_PROJECT_DIR`. Changing the split dates here does not change the online
DAG's schedule, which follows `params.yaml`, and dvc.lock records the values of
`params.yaml`: a run's own values are in its `artifacts/versions/<stage>.json`.
"""

_file_params = load_file_params(DEFAULT_PROJECT)

PARAMS = {
    "student_arch": Param(
        _file_params.student.arch,
        type="string",
        enum=architecture_names(),
        description="Architecture of the new model (the student).",
    ),
    "student_embedding_dim": Param(
        _file_params.student.embedding_dim,
        type="integer",
        minimum=1,
        maximum=512,
        description="Embedding width of the student, per field.",
    ),
    "teacher_arch": Param(
        _file_params.teacher.arch,
        type="string",
        enum=architecture_names(),
        description="Architecture of the production model (the teacher) trained on the history.",
    ),
    "teacher_embedding_dim": Param(
        _file_params.teacher.embedding_dim,
        type="integer",
        minimum=1,
        maximum=512,
        description="Embedding width of the teacher, per field.",
    ),
    "retained_start": Param(
        _file_params.split.retained_start,
        type="string",
        format="date",
        description="First day of the retained window (YYYY-MM-DD, UTC).",
    ),
    "online_start": Param(
        _file_params.split.online_start,
        type="string",
        format="date",
        description="First online day (YYYY-MM-DD, UTC); the retained window ends the day before.",
    ),
    "sampling_strategy": Param(
        _file_params.sampling.strategy,
        type="string",
        enum=SAMPLING_STRATEGIES,
        description="How the distillation sample is drawn from the retained window.",
    ),
    "sampling_ratio": Param(
        _file_params.sampling.ratio,
        type="number",
        exclusiveMinimum=0,
        maximum=1,
        description="Share of the retained window's rows in the sample (0 < ratio <= 1).",
    ),
    "distill_alpha": Param(
        _file_params.distill.alpha,
        type="number",
        minimum=0,
        maximum=1,
        description="Weight of the teacher's soft labels in the distillation loss (0..1).",
    ),
    "distill_temperature": Param(
        _file_params.distill.temperature,
        type="number",
        exclusiveMinimum=0,
        description="Softmax temperature of the distillation loss (> 0).",
    ),
}

DEFAULT_ARGS = {
    "owner": "crossadapt",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


def _run_step(module_name: str) -> dict[str, Any]:
    """Run ``tasks.<module_name>.run`` with this run's parameters."""
    import importlib

    params_conf = dict(get_current_context()["params"])
    with fail_fast_on_user_error():
        params = load_run_params(params_conf, DEFAULT_PROJECT)
        return importlib.import_module(f"tasks.{module_name}").run(params) or {}


@dag(
    dag_id="crossadapt_migration",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    params=PARAMS,
    default_args=DEFAULT_ARGS,
    doc_md=DOC_MD,
    tags=["crossadapt"],
)
def crossadapt_migration() -> None:
    @task
    def fetch_data() -> dict[str, Any]:
        return _run_step("fetch_data")

    @task
    def ingest() -> dict[str, Any]:
        return _run_step("ingest")

    @task
    def validate() -> dict[str, Any]:
        return _run_step("validate")

    @task
    def train_teacher() -> dict[str, Any]:
        return _run_step("train_teacher")

    @task
    def sample() -> dict[str, Any]:
        return _run_step("sample")

    @task
    def transfer() -> dict[str, Any]:
        return _run_step("transfer")

    @task
    def distill() -> dict[str, Any]:
        return _run_step("distill")

    @task
    def shadow_evaluate() -> dict[str, Any]:
        return _run_step("shadow_evaluate")

    @task
    def version() -> dict[str, Any]:
        from tasks.airflow_conf import changed_overrides
        from tasks.version import OFFLINE_STAGES, version_stages

        context = get_current_context()
        params_conf = dict(context["params"])
        with fail_fast_on_user_error():
            return version_stages(
                load_run_params(params_conf, DEFAULT_PROJECT),
                list(OFFLINE_STAGES),
                run_id=context["run_id"],
                overrides=changed_overrides(params_conf, DEFAULT_PROJECT),
            )

    (
        fetch_data()
        >> ingest()
        >> validate()
        >> train_teacher()
        >> sample()
        >> transfer()
        >> distill()
        >> shadow_evaluate()
        >> version()
    )


crossadapt_migration()
