"""Airflow DAG ``crossadapt_online``: one run per online day of params.yaml, in day order.

Wiring only: every task calls a step of tasks/ with the day of the run's logical date.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import dag, get_current_context, task

from tasks.airflow_conf import (
    check_run_day,
    fail_fast_on_user_error,
    load_file_params,
    load_run_params,
)

DEFAULT_PROJECT = Path(__file__).resolve().parents[1]

DOC_MD = """
### CrossAdapt online stage (one run per day)

Each run applies one online day, the run's logical date (`ds`, UTC), starting from the
checkpoints of the day before (the offline stage's for the first day):

1. `check`: validate the day's partition with Great Expectations and measure its drift
   against the reference window with Evidently. A day that fails validation is moved to
   quarantine and the run fails with the validation message.
2. `drift_branch`: a day whose drift score is above `adaptation.drift_threshold` goes
   through `drift_alert`, which writes `artifacts/online/alerts/<day>.json` and logs a
   warning; either way the run continues with `co_distill`.
3. `co_distill`: asymmetric co-distillation of teacher and student on the day, with the
   drift-aware weights; writes `artifacts/online/<day>/` and a ledger row. Re-running a day
   with the same input does nothing.
4. `promote`: the promotion gate over the ledger's last `promotion.last_n_days` days;
   writes `artifacts/online/promotion.json`. `promote_or_hold` branches to
   `student_promoted` or `teacher_kept`.
5. `version`: `dvc commit` of stage `online_day@<day>` and `dvc push` when a DVC remote is
   configured; writes `artifacts/versions/online_day@<day>.json` with this run's id.

The schedule runs `@daily` from `split.online_start` to `split.online_end` of params.yaml
(read when the DAG file is parsed), with catch-up and one run at a time, so days apply in
order. Parameter and data errors fail a task at once; other failures are retried with
exponential backoff. The project folder is the parent of `dags/`, or
`$CROSSADAPT_PROJECT_DIR`; run `crossadapt plan-days` after changing the split so that
dvc.yaml has a stage for every day.
"""

_split = load_file_params(DEFAULT_PROJECT).split

DEFAULT_ARGS = {
    "owner": "crossadapt",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


def _day_and_params() -> tuple[str, Any]:
    """Return the run's day (its logical date) and params.yaml."""
    context = get_current_context()
    day = check_run_day(context["ds"], "logical date")
    return day, load_run_params(None, DEFAULT_PROJECT)


@dag(
    dag_id="crossadapt_online",
    schedule="@daily",
    start_date=datetime.fromisoformat(_split.online_start).replace(tzinfo=UTC),
    end_date=datetime.fromisoformat(_split.online_end).replace(tzinfo=UTC),
    catchup=True,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    doc_md=DOC_MD,
    tags=["crossadapt"],
)
def crossadapt_online() -> None:
    @task
    def check() -> dict[str, Any]:
        from tasks import online_day

        with fail_fast_on_user_error():
            day, params = _day_and_params()
            drift = online_day.check(params, day)
        return {
            "day": day,
            "drift_score": drift["drift_score"],
            "flagged": bool(drift["flagged"]),
            "share_drifted": drift.get("share_drifted"),
            "reference_window": drift.get("reference_window"),
        }

    @task.branch
    def drift_branch(drift: dict[str, Any]) -> str:
        return "drift_alert" if drift["flagged"] else "co_distill"

    @task
    def drift_alert(drift: dict[str, Any]) -> dict[str, Any]:
        from tasks.promote import write_drift_alert

        with fail_fast_on_user_error():
            day, params = _day_and_params()
            return write_drift_alert(params, day, drift)

    @task(trigger_rule="none_failed_min_one_success")
    def co_distill() -> dict[str, Any]:
        from tasks import online_day

        with fail_fast_on_user_error():
            day, params = _day_and_params()
            result = online_day.run(params, day)
        return {key: result.get(key) for key in ("day", "status", "drift", "weights")}

    @task
    def promote() -> dict[str, Any]:
        from tasks import promote as promotion

        with fail_fast_on_user_error():
            day, params = _day_and_params()
            return promotion.run(params, day)

    @task.branch
    def promote_or_hold(decision: dict[str, Any]) -> str:
        return "student_promoted" if decision["promote"] else "teacher_kept"

    @task
    def student_promoted(decision: dict[str, Any]) -> str:
        return f"student {decision['student_checkpoint']} promoted after {decision['day']}"

    @task
    def teacher_kept(decision: dict[str, Any]) -> str:
        return f"teacher kept after {decision['day']}: {'; '.join(decision['reasons'])}"

    @task(trigger_rule="none_failed_min_one_success")
    def version() -> dict[str, Any]:
        from tasks.version import online_stage, version_stages

        with fail_fast_on_user_error():
            day, params = _day_and_params()
            return version_stages(
                params, [online_stage(day)], run_id=get_current_context()["run_id"], day=day
            )

    drift = check()
    alert = drift_alert(drift)
    distilled = co_distill()
    drift_branch(drift) >> [alert, distilled]
    alert >> distilled

    decision = promote()
    distilled >> decision
    promoted = student_promoted(decision)
    kept = teacher_kept(decision)
    promote_or_hold(decision) >> [promoted, kept]
    [promoted, kept] >> version()


crossadapt_online()
