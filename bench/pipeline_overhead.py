"""Pipeline overhead benchmark: where the time of a migration goes, step by step and by part.

Runs the steps in-process with the functions of ``tasks/`` and times the library calls that
make up each step (validation, drift, training, prediction) by wrapping them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import logging
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    WORK_DIR,
    command_line,
    machine_info,
    markdown_table,
    now_utc,
    thread_environment,
    write_results,
)
from scale import REPO, load_average, merge_params, scaled_vocab_sizes

logger = logging.getLogger(__name__)

# (module, function, part): the library calls timed inside each step. A call's time goes to
# its innermost timed part, so nested calls (predict inside train) are not counted twice.
TIMED_CALLS: list[tuple[str, str, str]] = [
    ("crossadapt.monitoring.validation", "validate_raw_day", "validation (GE raw suite)"),
    ("crossadapt.monitoring.validation", "validate_encoded_day", "validation (GE encoded suite)"),
    ("crossadapt.monitoring.drift", "compute_drift", "drift (Evidently report)"),
    ("crossadapt.training.trainer", "train", "training: teacher"),
    ("crossadapt.distill.progressive", "progressive_distill", "training: distill"),
    ("crossadapt.online.codistill", "codistill_day", "training: co-distill"),
    ("crossadapt.training.trainer", "predict", "evaluation: predictions"),
    ("crossadapt.distill.progressive", "teacher_logits", "evaluation: predictions"),
    ("crossadapt.monitoring.evaluation", "compare_models", "evaluation: metrics"),
    ("crossadapt.data.dataset", "encode_range", "data: read + encode"),
    ("crossadapt.data.dataset", "read_range", "data: read + encode"),
    ("crossadapt.data.partitions", "read_day", "data: read + encode"),
    ("crossadapt.data.encoding", "encode", "data: read + encode"),
]
OTHER_PART = "rest of the step (checkpoints, hashing, files)"
HEAVY_IMPORTS = ("torch", "great_expectations", "evidently")


class PartTimer:
    """Exclusive wall time per part and per step; see TIMED_CALLS."""

    def __init__(self) -> None:
        self.seconds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.inclusive: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.step_seconds: dict[str, float] = defaultdict(float)
        self.step_calls: dict[str, int] = defaultdict(int)
        self._stack: list[list[float]] = []  # per open call: [start, time of nested calls]
        self._step = "none"

    def wrap(self, function: Callable[..., Any], part: str) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            frame = [time.perf_counter(), 0.0]
            self._stack.append(frame)
            try:
                return function(*args, **kwargs)
            finally:
                self._stack.pop()
                elapsed = time.perf_counter() - frame[0]
                self.seconds[self._step][part] += elapsed - frame[1]
                self.inclusive[self._step][part] += elapsed
                if self._stack:
                    self._stack[-1][1] += elapsed

        return timed

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self._step = name
        started = time.perf_counter()
        try:
            yield
        finally:
            self.step_seconds[name] += time.perf_counter() - started
            self.step_calls[name] += 1
            self._step = "none"

    def breakdown(self) -> dict[str, dict[str, float]]:
        """Seconds per step and part; the step time no part covers is ``OTHER_PART``."""
        table: dict[str, dict[str, float]] = {}
        for step, wall in self.step_seconds.items():
            parts = {part: round(value, 2) for part, value in self.seconds[step].items()}
            parts[OTHER_PART] = round(wall - sum(self.seconds[step].values()), 2)
            parts["step wall"] = round(wall, 2)
            table[step] = parts
        return table


def install_timers(timer: PartTimer) -> None:
    """Replace each function of TIMED_CALLS in its module by a timed wrapper."""
    for module_name, name, part in TIMED_CALLS:
        module = importlib.import_module(module_name)
        setattr(module, name, timer.wrap(getattr(module, name), part))


def import_seconds(python: str = sys.executable) -> dict[str, float]:
    """Wall time of a bare interpreter and of each heavy import, each in a fresh process."""
    env = thread_environment()
    env["GX_ANALYTICS_ENABLED"] = "False"
    results: dict[str, float] = {}
    for label, statement in [
        ("interpreter start", "pass"),
        ("import tasks.online_day (step module)", "import tasks.online_day"),
        *[(f"import {name}", f"import {name}") for name in HEAVY_IMPORTS],
    ]:
        started = time.perf_counter()
        subprocess.run([python, "-c", statement], env=env, check=True, cwd=REPO)
        results[label] = round(time.perf_counter() - started, 2)
    return results


def make_project(folder: Path, overrides: dict[str, Any]) -> Path:
    """Write ``folder/params.yaml`` (repository params with ``overrides``); return its path."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    params = merge_params(yaml.safe_load((REPO / "params.yaml").read_text()), overrides)
    params["paths"] = {"data_dir": "data", "artifacts_dir": "artifacts"}
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def run_migration(
    params_path: Path, timer: PartTimer, online_days: int | None, skip_ingest: bool = False
) -> list[str]:
    """Run ingest .. report in-process, each step timed; return the online days applied."""
    from crossadapt.config.params import load_params
    from tasks import (
        distill,
        ingest,
        online_day,
        report,
        sample,
        shadow_evaluate,
        train_teacher,
        transfer,
        validate,
    )

    params = load_params(params_path)
    offline = [
        ("ingest", ingest.run),
        ("validate", validate.run),
        ("train_teacher", train_teacher.run),
        ("sample", sample.run),
        ("transfer", transfer.run),
        ("distill", distill.run),
        ("shadow_evaluate", shadow_evaluate.run),
    ]
    for name, run in offline:
        if skip_ingest and name == "ingest":
            continue
        with timer.step(name):
            run(params)
    days = params.split.online_days()[:online_days]
    for day in days:
        with timer.step("online_day"):
            online_day.run(params, day, replace=True)
    if len(days) == len(params.split.online_days()):
        with timer.step("report"):
            report.run(params)
    return days


def subprocess_seconds(params_path: Path, module: str, extra: list[str]) -> float:
    """Wall time of one step run as ``python -m <module>``, as DVC runs it."""
    env = thread_environment()
    env["GX_ANALYTICS_ENABLED"] = "False"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", module, "--params", str(params_path), *extra],
        env=env,
        cwd=params_path.parent,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return round(time.perf_counter() - started, 2)


def movielens_overhead(work_dir: Path, online_days: int | None) -> dict[str, Any]:
    """Part (a): the MovieLens-100K migration of params.yaml, by step and part."""
    raw = REPO / "data" / "raw" / "movielens-100k"
    if not raw.is_dir():
        raise SystemExit(f"{raw} not found: run `crossadapt fetch-data` in the repository first")
    project = work_dir / "movielens"
    params_path = make_project(project, {})
    shutil.copytree(raw, project / "data" / "raw" / "movielens-100k")

    timer = PartTimer()
    install_timers(timer)
    started = time.perf_counter()
    days = run_migration(params_path, timer, online_days)
    in_process = time.perf_counter() - started

    # The same last day again as its own process: the difference is the per-process cost.
    last = days[-1]
    with timer.step("online_day (repeat of the last day)"):
        from crossadapt.config.params import load_params
        from tasks import online_day

        online_day.run(load_params(params_path), last, replace=True)
    repeat_in_process = timer.step_seconds["online_day (repeat of the last day)"]
    repeat_subprocess = subprocess_seconds(
        params_path, "tasks.online_day", ["--day", last, "--replace"]
    )
    return {
        "online_days": len(days),
        "in_process_seconds": round(in_process, 1),
        "breakdown": timer.breakdown(),
        "step_calls": dict(timer.step_calls),
        "last_day_in_process_seconds": round(repeat_in_process, 2),
        "last_day_subprocess_seconds": repeat_subprocess,
        "project": str(project),
    }


def large_day_overhead(work_dir: Path, rows: int, fit_rows: int, total_ids: int) -> dict[str, Any]:
    """Part (b): one online day of ``rows`` synthetic rows (26 categorical fields).

    History, retained and test days are cut to ``fit_rows`` rows (a uniform subset in time
    order) so the offline steps stay short; only the online day has ``rows`` rows.
    """
    from crossadapt.config.params import load_params
    from crossadapt.data.ingest import write_generated_days
    from crossadapt.data.synthetic import SyntheticConfig, generate_day

    days = ["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04"]
    synthetic = {
        "n_days": len(days),
        "rows_per_day": rows,
        "n_categorical": 26,
        "n_numeric": 13,
        "vocab_sizes": scaled_vocab_sizes(total_ids),
        "start_date": days[0],
        "seed": 0,
    }
    project = work_dir / "large_day"
    params_path = make_project(
        project,
        {
            "dataset": {"name": "synthetic", "synthetic": synthetic},
            "split": {
                "history_start": days[0],
                "retained_start": days[1],
                "online_start": days[2],
                "online_end": days[2],
                "test_start": days[3],
                "test_end": days[3],
            },
            "teacher": {"epochs": 1},
        },
    )
    config = SyntheticConfig(**synthetic)

    def cut_days() -> Iterator[tuple[str, Any]]:
        import numpy as np

        for index, day in enumerate(days):
            frame = generate_day(config, index)
            if day != days[2] and len(frame) > fit_rows:
                keep = np.sort(np.random.default_rng(index).choice(len(frame), fit_rows, False))
                frame = frame.iloc[keep].reset_index(drop=True)
            yield day, frame

    params = load_params(params_path)
    write_generated_days(cut_days(), params.data_dir(), params.dataset_name())

    timer = PartTimer()
    install_timers(timer)
    import tasks.online_day as online_module

    for function, part in (("validate_day", "validation (whole)"), ("measure_drift", "drift")):
        setattr(online_module, function, timer.wrap(getattr(online_module, function), part))
    run_migration(params_path, timer, online_days=None, skip_ingest=True)

    parts = timer.breakdown()["online_day"]
    inclusive = {part: round(value, 2) for part, value in timer.inclusive["online_day"].items()}
    # validate_day: both GE suites plus encoding the day; measure_drift: reading and sampling
    # the reference, teacher predictions on both frames, and the Evidently report.
    checks_total = round(inclusive["validation (whole)"] + inclusive["drift"], 2)
    wall = parts["step wall"]
    return {
        "rows": rows,
        "fit_rows_per_day": fit_rows,
        "vocab_sizes_sum": sum(scaled_vocab_sizes(total_ids)),
        "online_day": parts,
        "online_day_inclusive": inclusive,
        "validation_plus_drift_seconds": checks_total,
        "online_day_wall_seconds": wall,
        "share": round(checks_total / wall, 3) if wall else None,
        "target_share": 0.15,
        "project": str(project),
    }


def render_markdown(payload: dict[str, Any]) -> str:
    machine = payload["machine"]
    load = payload.get("load_average", {})
    lines = [
        "# Pipeline overhead",
        "",
        f"Command: `{payload['command']}` ({payload['measured_at']}).",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB.",
        f"Load average (1, 5, 15 min) at start {load.get('start')}, at end {load.get('end')}.",
        "",
        "## Import cost (fresh process each)",
        "",
        markdown_table(["import", "wall s"], [[k, v] for k, v in payload["imports"].items()]),
    ]
    movielens = payload.get("movielens")
    if movielens:
        breakdown = movielens["breakdown"]
        parts = sorted({part for step in breakdown.values() for part in step} - {"step wall"})
        lines += [
            f"## (a) MovieLens-100K migration, {movielens['online_days']} online days, in-process",
            "",
            f"In-process wall time {movielens['in_process_seconds']} s. Last online day again: "
            f"{movielens['last_day_in_process_seconds']} s in-process, "
            f"{movielens['last_day_subprocess_seconds']} s as `python -m tasks.online_day`.",
            "",
            markdown_table(
                ["step", "calls", "step wall s", *parts],
                [
                    [
                        step,
                        movielens["step_calls"].get(step, 1),
                        values["step wall"],
                        *[values.get(part, "") for part in parts],
                    ]
                    for step, values in breakdown.items()
                ],
            ),
        ]
    large = payload.get("large_day")
    if large:
        lines += [
            f"## (b) One online day of {large['rows']:,} synthetic rows",
            "",
            f"Validation + drift: {large['validation_plus_drift_seconds']} s of "
            f"{large['online_day_wall_seconds']} s online-day wall time = "
            f"{large['share']:.1%} (target under 15%).",
            "",
            "Inclusive seconds of the timed calls (a call includes the calls it makes):",
            "",
            markdown_table(
                ["call", "seconds"], [[k, v] for k, v in large["online_day_inclusive"].items()]
            ),
            "Exclusive seconds (each second counted once, in its innermost call):",
            "",
            markdown_table(["part", "seconds"], [[k, v] for k, v in large["online_day"].items()]),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--online-days", type=int, default=None, help="first N online days only")
    parser.add_argument("--large-rows", type=int, default=1_000_000, help="0 skips part (b)")
    parser.add_argument("--fit-rows", type=int, default=100_000)
    parser.add_argument("--distinct-ids", type=int, default=10_000_000)
    parser.add_argument("--skip-movielens", action="store_true")
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR / "overhead")
    parser.add_argument("--name", default="pipeline_overhead")
    parser.add_argument("--results-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")

    import torch

    torch.set_num_threads(2)
    payload: dict[str, Any] = {
        "command": command_line(),
        "measured_at": now_utc(),
        "machine": machine_info(),
        "load_average": {"start": load_average()},
        "imports": import_seconds(),
    }
    if not args.skip_movielens:
        payload["movielens"] = movielens_overhead(args.work_dir, args.online_days)
    if args.large_rows:
        payload["large_day"] = large_day_overhead(
            args.work_dir, args.large_rows, args.fit_rows, args.distinct_ids
        )
    payload["airflow"] = "not measured"
    payload["load_average"]["end"] = load_average()
    extra = {} if args.results_dir is None else {"results_dir": args.results_dir}
    write_results(args.name, payload, render_markdown(payload), **extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
