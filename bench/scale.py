"""Scale benchmark: ingest and a full one-online-day migration of a large synthetic stream.

Each pipeline step runs as ``python -m tasks.<step> --params <project>/params.yaml`` in its
own process; its wall time and peak RSS (``ru_maxrss`` from ``os.wait4``) are recorded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    WORK_DIR,
    command_line,
    machine_info,
    markdown_table,
    mib,
    now_utc,
    thread_environment,
    write_results,
)

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
# Vocabulary sizes shaped like the 26 categorical fields of the Criteo Kaggle log, scaled to
# --distinct-ids so the stream keeps a mix of tiny and huge fields.
# NOTE: recalled from published preprocessing counts, not recounted from the data.
CRITEO_CARDINALITIES = [
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194,
    27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
]  # fmt: skip
START_DATE = "2020-01-01"


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (``os.getloadavg``), rounded to 0.01."""
    return [round(value, 2) for value in os.getloadavg()]


def scaled_vocab_sizes(total_ids: int) -> list[int]:
    """Scale the Criteo cardinalities so they sum to about ``total_ids`` (each at least 2)."""
    factor = total_ids / sum(CRITEO_CARDINALITIES)
    return [max(2, round(size * factor)) for size in CRITEO_CARDINALITIES]


def day_of(index: int) -> str:
    import datetime as dt

    return (dt.date.fromisoformat(START_DATE) + dt.timedelta(days=index)).isoformat()


def project_params(
    rows: int,
    days: int,
    total_ids: int,
    min_count: int,
    batch_size: int,
    seed: int,
    sparse_gradients: bool = False,
) -> dict[str, Any]:
    """Params of a synthetic project: days 0..d-5 history, 2 retained, 1 online, 1 test day.

    Keys not set here come from the repository's params.yaml.
    """
    if days < 5:
        raise ValueError(f"--days {days}: the split needs at least 5 days")
    history_end = days - 5
    overrides = {
        "seed": seed,
        "dataset": {
            "name": "synthetic",
            "synthetic": {
                "n_days": days,
                "rows_per_day": rows // days,
                "n_categorical": 26,
                "n_numeric": 13,
                "vocab_sizes": scaled_vocab_sizes(total_ids),
                "zipf_exponent": 1.1,
                "start_date": START_DATE,
                "seed": seed,
            },
        },
        "split": {
            "history_start": day_of(0),
            "retained_start": day_of(history_end + 1),
            "online_start": day_of(days - 2),
            "online_end": day_of(days - 2),
            "test_start": day_of(days - 1),
            "test_end": day_of(days - 1),
        },
        "features": {"min_count": min_count, "numeric_transform": "log"},
        "teacher": {
            "arch": "dnn",
            "embedding_dim": 8,
            "epochs": 1,
            "batch_size": batch_size,
            "sparse_gradients": sparse_gradients,
        },
        "student": {"arch": "dcnv2", "embedding_dim": 16, "sparse_gradients": sparse_gradients},
        "sampling": {"strategy": "balanced", "ratio": 0.1},
        "distill": {"batch_size": batch_size},
        "online": {"batch_size": batch_size},
        "paths": {"data_dir": "data", "artifacts_dir": "artifacts"},
    }
    return merge_params(yaml.safe_load((REPO / "params.yaml").read_text()), overrides)


def merge_params(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``overrides`` merged in, section by section (mappings recursively)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_params(merged[key], value)
        else:
            merged[key] = value
    return merged


def run_step(
    project: Path, module: str, extra: list[str], log_path: Path, timeout_s: float
) -> dict[str, Any]:
    """Run ``python -m <module>`` in ``project``; return wall time, peak RSS and exit status."""
    command = [sys.executable, "-m", module, "--params", str(project / "params.yaml"), *extra]
    env = thread_environment()
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "src")])
    env["GX_ANALYTICS_ENABLED"] = "False"
    started = time.perf_counter()
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(command, cwd=project, env=env, stdout=log, stderr=log)
        deadline = started + timeout_s
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    result = {
        "step": module.removeprefix("tasks."),
        "seconds": round(seconds, 2),
        "peak_rss_mib": mib(usage.ru_maxrss * 1024),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "exit_code": process.returncode,
    }
    logger.info("%s", result)
    return result


def step_metrics(project: Path, step: str) -> dict[str, Any]:
    path = project / "artifacts" / step / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def run_scale(
    rows: int,
    days: int,
    total_ids: int,
    min_count: int,
    batch_size: int,
    work_dir: Path,
    ingest_only: bool,
    timeout_s: float,
    seed: int = 0,
    sparse_gradients: bool = False,
) -> dict[str, Any]:
    """Build a project in ``work_dir``; run ingest, then the migration unless ``ingest_only``."""
    project = work_dir / f"scale_{rows}"
    if project.exists():
        shutil.rmtree(project)
    project.mkdir(parents=True)
    params = project_params(
        rows, days, total_ids, min_count, batch_size, seed, sparse_gradients=sparse_gradients
    )
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log_path = project / "steps.log"
    online_day = params["split"]["online_start"]

    plan: list[tuple[str, list[str]]] = [("tasks.ingest", [])]
    if not ingest_only:
        plan += [
            ("tasks.validate", []),
            ("tasks.train_teacher", []),
            ("tasks.sample", []),
            ("tasks.transfer", []),
            ("tasks.distill", []),
            ("tasks.shadow_evaluate", []),
            ("tasks.online_day", ["--day", online_day, "--replace"]),
        ]
    steps: list[dict[str, Any]] = []
    for module, extra in plan:
        result = run_step(project, module, extra, log_path, timeout_s)
        steps.append(result)
        if result["exit_code"] != 0:
            logger.error("step %s failed, see %s", module, log_path)
            break

    rows_per_second = rows / steps[0]["seconds"] if steps[0]["exit_code"] == 0 else None
    teacher_schema = project / "artifacts" / "teacher" / "schema.json"
    vocab: dict[str, Any] = {}
    if teacher_schema.is_file():
        fields = json.loads(teacher_schema.read_text())["fields"]
        sizes = [field["vocab_size"] for field in fields if field["type"] != "numeric"]
        vocab = {"teacher_vocab_rows": sum(sizes), "largest_field_vocab": max(sizes)}
    online_path = project / "artifacts" / "online" / online_day / "metrics.json"
    online = json.loads(online_path.read_text()) if online_path.is_file() else {}
    return {
        "rows": rows,
        "days": days,
        "rows_per_day": rows // days,
        "vocab_sizes_sum": sum(scaled_vocab_sizes(total_ids)),
        "min_count": min_count,
        "batch_size": batch_size,
        "sparse_gradients": sparse_gradients,
        "ingest_rows_per_second": round(rows_per_second) if rows_per_second else None,
        "steps": steps,
        "total_seconds": round(sum(step["seconds"] for step in steps), 1),
        "completed": all(step["exit_code"] == 0 for step in steps) and len(steps) == len(plan),
        **vocab,
        "teacher_metrics": step_metrics(project, "teacher").get("test"),
        "online_day_metrics": {
            key: online.get(key) for key in ("before_training", "drift", "training", "seconds")
        },
        "project": str(project),
    }


def render_markdown(payload: dict[str, Any]) -> str:
    machine = payload["machine"]
    load = payload["load_average"]
    lines = [
        "# Scale benchmark",
        "",
        f"Command: `{payload['command']}` ({payload['measured_at']}).",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB.",
        f"Load average (1, 5, 15 min) at start {load['start']}, at end {load.get('end')}.",
        "",
    ]
    for run in payload["runs"]:
        lines += [
            f"## {run['rows']:,} rows, {run['days']} days, vocab sizes summing to "
            f"{run['vocab_sizes_sum']:,}, min_count {run['min_count']}",
            "",
            f"Ingest: {run['ingest_rows_per_second']} rows/s. Completed: {run['completed']}. "
            f"Teacher vocabulary rows: {run.get('teacher_vocab_rows')}. Batch size "
            f"{run['batch_size']}, sparse_gradients {run.get('sparse_gradients', False)}.",
            "",
            markdown_table(
                ["step", "wall s", "CPU s", "peak RSS MiB", "exit"],
                [
                    [s["step"], s["seconds"], s["cpu_seconds"], s["peak_rss_mib"], s["exit_code"]]
                    for s in run["steps"]
                ],
            ),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[5_000_000, 20_000_000])
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--distinct-ids", type=int, default=10_000_000)
    parser.add_argument("--min-count", type=int, default=1, help="features.min_count")
    parser.add_argument("--batch-size", type=int, default=1024, help="teacher/distill/online")
    parser.add_argument(
        "--sparse-gradients",
        action="store_true",
        help="teacher and student sparse_gradients: true (lazy Adam on the embedding rows)",
    )
    parser.add_argument("--ingest-only", action="store_true", help="run only the ingest step")
    parser.add_argument("--step-timeout-s", type=float, default=1800.0)
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR / "scale")
    parser.add_argument("--name", default="scale", help="results file name")
    parser.add_argument("--results-dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the project folders")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    payload: dict[str, Any] = {
        "command": command_line(),
        "measured_at": now_utc(),
        "machine": machine_info(),
        "load_average": {"start": load_average()},
        "runs": [],
    }
    extra = {} if args.results_dir is None else {"results_dir": args.results_dir}
    for rows in args.rows:
        run = run_scale(
            rows,
            args.days,
            args.distinct_ids,
            args.min_count,
            args.batch_size,
            args.work_dir.resolve(),
            args.ingest_only,
            args.step_timeout_s,
            sparse_gradients=args.sparse_gradients,
        )
        payload["runs"].append(run)
        payload["load_average"]["end"] = load_average()
        # Written after each size, so an interrupted run keeps the sizes that finished.
        write_results(args.name, payload, render_markdown(payload), **extra)
        if not args.keep:
            shutil.rmtree(run["project"], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
