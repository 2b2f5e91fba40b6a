"""Benchmark 3, orchestration: the wall time of the migration DAG in a real Airflow 3.

Run from the repository root after set-up: ``.venv/bin/python bench/airflow_overhead.py``
(see bench/SCALE.md). It builds two identical projects (git + DVC, the repository's
``params.yaml``, the MovieLens-100K raw files copied from ``data/raw``) under
``bench/work/airflow_overhead/``, then:

1. runs the migration DAG's steps in the first project as ``python -m tasks.<step>
   --params params.yaml``, one process per step, in the DAG's order: the cost of each
   step with a bare process start;
2. starts a loopback Airflow (api-server, scheduler, dag-processor on 127.0.0.1, SQLite)
   with its home in the work folder, triggers ``crossadapt_migration`` with an empty conf
   on the second project, and reads the run and its task instances through the REST API.

Orchestration overhead: the run's wall time minus the sum of its task durations (the
time between tasks: queueing and scheduling). Each task's Airflow duration minus its CLI
time is the cost of running the step as an Airflow task instead of a bare process.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import WORK_DIR, command_line, machine_info, markdown_table, now_utc, write_results

from tasks.version import OFFLINE_STAGES

logger = logging.getLogger("bench.airflow_overhead")

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "crossadapt_migration"
# The migration DAG's tasks, in order: the offline stages, then `version`.
STEPS = (*OFFLINE_STAGES, "version")
PROJECT_FILES = ("src", "tasks", "dags", "dvc.yaml", ".dvcignore", "params.yaml")


def project_env() -> dict[str, str]:
    """Environment of every command: the venv first on PATH, no analytics, a git identity."""
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "DVC_NO_ANALYTICS": "1",
            "GX_ANALYTICS_ENABLED": "False",
            "GIT_AUTHOR_NAME": "CrossAdapt bench",
            "GIT_AUTHOR_EMAIL": "bench@crossadapt.invalid",
            "GIT_COMMITTER_NAME": "CrossAdapt bench",
            "GIT_COMMITTER_EMAIL": "bench@crossadapt.invalid",
        }
    )
    return env


def run_in(project: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``project``; raise with its output tail when it fails."""
    result = subprocess.run(
        list(command), cwd=project, env=project_env(), capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(command)}` failed with status {result.returncode} in {project}:\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    return result


def build_project(folder: Path) -> Path:
    """Create a git + DVC project in ``folder`` with the MovieLens raw files already fetched."""
    raw = ROOT / "data" / "raw" / "movielens-100k"
    if not raw.is_dir():
        raise SystemExit(f"{raw} not found: run `bash scripts/setup.sh` first")
    if folder.exists():
        shutil.rmtree(folder)
    storage = folder.parent / f"{folder.name}.dvc-storage"
    if storage.exists():
        shutil.rmtree(storage)
    folder.mkdir(parents=True)

    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=ignore)
        else:
            shutil.copy2(source, folder / name)
    shutil.copytree(raw, folder / "data" / "raw" / "movielens-100k")
    (folder / ".gitignore").write_text(
        "__pycache__/\n*.pyc\n/data/\n/logs/\n/artifacts/.crossadapt.lock*\n"
    )

    python = sys.executable
    run_in(folder, python, "-m", "tasks.plan_days", "--params", "params.yaml")
    run_in(folder, "git", "init", "--quiet", "--initial-branch=main")
    run_in(folder, python, "-m", "dvc", "init", "--quiet")
    run_in(folder, python, "-m", "dvc", "config", "core.analytics", "false")
    run_in(folder, python, "-m", "dvc", "remote", "add", "--default", "local", str(storage))
    run_in(folder, "git", "add", "--all")
    run_in(folder, "git", "commit", "--quiet", "-m", "CrossAdapt project for the benchmark")
    return folder


def run_cli_steps(project: Path) -> list[dict[str, Any]]:
    """Run every step as its own process; return the wall time of each."""
    results = []
    for step in STEPS:
        started = time.perf_counter()
        run_in(project, sys.executable, "-m", f"tasks.{step}", "--params", "params.yaml")
        seconds = time.perf_counter() - started
        logger.info("CLI %s: %.1f s", step, seconds)
        results.append({"step": step, "seconds": seconds})
    return results


def run_airflow(project: Path, home: Path, timeout_s: float) -> dict[str, Any]:
    """Start a loopback Airflow on ``project``'s DAGs, run the migration once, stop it."""
    from crossadapt.services.airflow_local import LocalAirflow

    # LocalAirflow hands this process's environment to every component and task.
    os.environ.update(project_env())
    os.environ["CROSSADAPT_PROJECT_DIR"] = str(project)
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    stack = LocalAirflow(home, project / "dags")
    started = time.perf_counter()
    try:
        stack.migrate()
        stack.start()
        stack.wait_healthy()
        stack.wait_dag_parsed(DAG_ID, timeout_s=300)
        start_up_seconds = time.perf_counter() - started
        stack.unpause(DAG_ID)
        triggered = time.perf_counter()
        run_id = stack.trigger(DAG_ID, {})
        state = stack.wait_for_run(DAG_ID, run_id, timeout_s=timeout_s)
        observed_seconds = time.perf_counter() - triggered
        client = stack.client()
        run = client.dag_run(DAG_ID, run_id)
        instances = client.task_instances(DAG_ID, run_id)
    finally:
        stack.stop()
    if state != "success":
        raise RuntimeError(f"DAG run {run_id} ended {state}; logs in {stack.log_dir}")
    tasks = sorted(
        (
            {
                "step": instance["task_id"],
                "seconds": float(instance["duration"]),
                "start_date": instance["start_date"],
                "end_date": instance["end_date"],
                "try_number": instance.get("try_number"),
            }
            for instance in instances
        ),
        key=lambda task: task["start_date"],
    )
    return {
        "run_id": run_id,
        "start_up_seconds": start_up_seconds,
        "observed_seconds": observed_seconds,
        "run_wall_seconds": _seconds_between(run["start_date"], run["end_date"]),
        "queued_at": run.get("queued_at"),
        "start_date": run["start_date"],
        "end_date": run["end_date"],
        "tasks": tasks,
    }


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def summarise(cli: list[dict[str, Any]], airflow: dict[str, Any]) -> dict[str, Any]:
    """Return the overhead figures from the CLI and Airflow timings."""
    task_seconds = sum(task["seconds"] for task in airflow["tasks"])
    cli_seconds = sum(step["seconds"] for step in cli)
    gaps = []
    for before, after in zip(airflow["tasks"], airflow["tasks"][1:], strict=False):
        gaps.append(_seconds_between(before["end_date"], after["start_date"]))
    run_wall = airflow["run_wall_seconds"]
    return {
        "cli_total_seconds": cli_seconds,
        "airflow_task_total_seconds": task_seconds,
        "airflow_run_wall_seconds": run_wall,
        "between_tasks_seconds": run_wall - task_seconds,
        "between_tasks_share": (run_wall - task_seconds) / run_wall if run_wall else None,
        "gap_seconds": gaps,
        "airflow_over_cli_seconds": run_wall - cli_seconds,
    }


def render_markdown(payload: dict[str, Any]) -> str:
    """Return the Markdown report of a payload."""
    machine = payload["machine"]
    summary = payload["summary"]
    airflow = payload["airflow"]
    cli = {step["step"]: step["seconds"] for step in payload["cli"]}
    rows = []
    for task in airflow["tasks"]:
        cli_seconds = cli.get(task["step"])
        rows.append(
            [
                task["step"],
                f"{cli_seconds:.1f}" if cli_seconds is not None else "",
                f"{task['seconds']:.1f}",
                f"{task['seconds'] - cli_seconds:+.1f}" if cli_seconds is not None else "",
            ]
        )
    gaps = ", ".join(f"{gap:.1f}" for gap in summary["gap_seconds"])
    lines = [
        "# Airflow orchestration overhead of the migration DAG\n",
        f"Measured {payload['measured_at']} on {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_gib']} GiB memory. Command: `{payload['command']}`\n",
        "Load average (1, 5, 15 min) at start: "
        + ", ".join(f"{value:.2f}" for value in payload["load_average_start"])
        + "; at end: "
        + ", ".join(f"{value:.2f}" for value in payload["load_average_end"])
        + ".\n",
        f"Project: the repository's params.yaml (MovieLens-100K), DAG `{DAG_ID}`, run "
        f"`{airflow['run_id']}`. Airflow start-up (migrate, start, healthy, DAG parsed): "
        f"{airflow['start_up_seconds']:.1f} s.\n",
        f"- DAG run wall time (Airflow's start_date to end_date): "
        f"{summary['airflow_run_wall_seconds']:.1f} s; seen from the client (trigger to "
        f"success): {airflow['observed_seconds']:.1f} s.",
        f"- Sum of task durations: {summary['airflow_task_total_seconds']:.1f} s.",
        f"- Between tasks (run wall time minus task durations): "
        f"{summary['between_tasks_seconds']:.1f} s, "
        f"{100 * summary['between_tasks_share']:.1f}% of the run. Gaps: {gaps} s.",
        f"- The same steps as bare processes: {summary['cli_total_seconds']:.1f} s; the "
        f"Airflow run took {summary['airflow_over_cli_seconds']:+.1f} s more.\n",
        markdown_table(["step", "CLI s", "Airflow task s", "Airflow - CLI s"], rows),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--work-dir", default=str(WORK_DIR / "airflow_overhead"), help="projects and Airflow home"
    )
    parser.add_argument("--results-dir", default=None, help="where results go (bench/results)")
    parser.add_argument("--timeout-s", type=float, default=3600.0, help="limit of the DAG run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    work_dir = Path(args.work_dir).resolve()
    load_start = list(os.getloadavg())
    cli_project = build_project(work_dir / "cli" / "project")
    cli = run_cli_steps(cli_project)
    airflow_project = build_project(work_dir / "airflow" / "project")
    airflow = run_airflow(airflow_project, work_dir / "airflow" / "home", args.timeout_s)
    payload = {
        "benchmark": "airflow_overhead",
        "measured_at": now_utc(),
        "command": command_line(),
        "machine": machine_info(),
        "load_average_start": load_start,
        "load_average_end": list(os.getloadavg()),
        "cli": cli,
        "airflow": airflow,
        "summary": summarise(cli, airflow),
    }
    kwargs = {"results_dir": Path(args.results_dir)} if args.results_dir else {}
    paths = write_results("airflow_overhead", payload, render_markdown(payload), **kwargs)
    logger.info("results written to %s", ", ".join(str(path) for path in paths))


if __name__ == "__main__":
    main()
