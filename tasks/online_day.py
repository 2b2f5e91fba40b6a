"""Pipeline step ``online-day``: validate, measure drift, co-distill and record one online day.

Runs as ``crossadapt online-day --day YYYY-MM-DD [--replace]`` or
``python -m tasks.online_day --day ...``. Outputs go to ``artifacts/online/<day>/`` and a
row in ``artifacts/online/ledger.json``; a failed day writes neither.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crossadapt.errors import CheckpointError, LedgerError, ParamsError
from crossadapt.storage.atomic import atomic_write_json
from tasks.common import exit_with, layout_of, simple_step, write_metrics

if TYPE_CHECKING:
    from crossadapt.config.params import Params
    from tasks.layout import Layout

logger = logging.getLogger(__name__)

LOCK_TIMEOUT_SECONDS = 0.0
DRIFT_REFERENCE_MAX_ROWS = 50_000


def input_checkpoints(params: Params, day: str) -> tuple[Path, Path]:
    """Teacher and student checkpoints a day starts from: the previous day's or the offline ones."""
    layout = layout_of(params)
    days = params.split.online_days()
    if day not in days:
        raise ParamsError(
            f"day {day!r} is not an online day of params.yaml split "
            f"({params.split.online_start}..{params.split.online_end}); pick one of those days"
        )
    position = days.index(day)
    if position == 0:
        return layout.teacher_checkpoint, layout.distilled_student_checkpoint
    previous = layout.online_day_dir(days[position - 1])
    return previous / "teacher.pt", previous / "student.pt"


def run(params: Params, day: str, replace: bool = False) -> dict[str, Any]:
    """Apply one online day under the run lock; re-applying the same input is a no-op."""
    from crossadapt.storage.locks import run_lock

    layout = layout_of(params)
    with run_lock(layout.lock_file, timeout=LOCK_TIMEOUT_SECONDS):
        return _run_locked(params, layout, day, replace)


def check(params: Params, day: str) -> dict[str, Any]:
    """Validate the day and measure its drift, without training (the DAG's first tasks).

    Results go to ``artifacts/online/.checks/<day>/``; ``run`` reuses them when their
    inputs are unchanged. Returns the drift summary (``drift_score``, ``flagged``).
    """
    from crossadapt.storage.locks import run_lock

    layout = layout_of(params)
    with run_lock(layout.lock_file, timeout=LOCK_TIMEOUT_SECONDS):
        teacher_in, _ = input_checkpoints(params, day)
        return _check_into(params, layout, day, teacher_in, _checks_dir(layout, day))


def _checks_dir(layout: Layout, day: str) -> Path:
    return layout.artifacts_dir / "online" / ".checks" / day


def _check_into(
    params: Params, layout: Layout, day: str, teacher_in: Path, out_dir: Path
) -> dict[str, Any]:
    from crossadapt.data.partitions import read_day
    from crossadapt.data.schema import FeatureSchema
    from crossadapt.storage.checkpoint import load_model
    from crossadapt.storage.hashing import sha256_file

    key = {
        "partition": sha256_file(_partition(layout, day)),
        "teacher_in": sha256_file(teacher_in),
        "settings": _settings(params),
    }
    summary_path = out_dir / "check.json"
    if summary_path.is_file():
        previous = json.loads(summary_path.read_text())
        if previous.get("key") == key:
            logger.info("day %s: validation and drift already checked, reusing %s", day, out_dir)
            return previous["drift"]
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)

    teacher, checkpoint = load_model(teacher_in)
    teacher_schema = FeatureSchema.from_dict(checkpoint.schema, origin=str(teacher_in))
    raw = read_day(layout.data_dir, layout.dataset, day)
    validate_day(params, layout, day, raw, teacher_schema, out_dir)
    drift = measure_drift(params, layout, day, raw, teacher, teacher_schema, out_dir / "drift")
    atomic_write_json(summary_path, {"key": key, "drift": drift})
    return drift


def _partition(layout: Layout, day: str) -> Path:
    from crossadapt.data.partitions import day_path, read_day

    path = day_path(layout.data_dir, layout.dataset, day)
    if not path.is_file():
        read_day(layout.data_dir, layout.dataset, day)  # raises the DataError with the fix
    return path


def _settings(params: Params) -> dict[str, Any]:
    return {
        "seed": params.seed,
        "online": params.online.model_dump(),
        "adaptation": params.adaptation.model_dump(),
        "validation": params.validation.model_dump(),
    }


def _run_locked(params: Params, layout: Layout, day: str, replace: bool) -> dict[str, Any]:
    from crossadapt.storage.hashing import sha256_bytes, sha256_file
    from crossadapt.storage.ledger import Ledger

    started = time.perf_counter()
    teacher_in, student_in = input_checkpoints(params, day)
    ledger = Ledger(layout.ledger_file)
    for path, what in ((teacher_in, "teacher"), (student_in, "student")):
        if not path.is_file():
            raise LedgerError(
                f"day {day}: the {what} checkpoint it starts from, {path}, does not exist; "
                "apply the days before it first (or run the offline stage)"
            )
    partition = _partition(layout, day)
    input_sha256 = sha256_bytes(
        json.dumps(
            {
                "partition": sha256_file(partition),
                "teacher_in": sha256_file(teacher_in),
                "student_in": sha256_file(student_in),
                "settings": _settings(params),
            },
            sort_keys=True,
        ).encode()
    )
    existing = ledger.get(day)
    if existing is not None and existing.input_sha256 == input_sha256 and not replace:
        logger.info("day %s is already in the ledger with the same input: nothing to do", day)
        return {"day": day, "status": "skipped", **existing.metrics}
    if replace:
        ledger.rewind_to(day)
    decision = ledger.check_next(day, input_sha256, expected_days=params.split.online_days())
    if decision == "skip":
        return {"day": day, "status": "skipped"}

    final_dir = layout.online_day_dir(day)
    staging = final_dir.parent / f".staging-{day}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        drift = _check_into(params, layout, day, teacher_in, _checks_dir(layout, day))
        shutil.copytree(_checks_dir(layout, day), staging, dirs_exist_ok=True)
        metrics = apply_day(params, layout, day, teacher_in, student_in, staging, drift)
        metrics["seconds"] = time.perf_counter() - started
        write_metrics(staging / "metrics.json", metrics)
        _swap_into_place(staging, final_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)

    ledger.append(
        {
            "day": day,
            "input_sha256": input_sha256,
            "teacher_checkpoint_sha256": sha256_file(final_dir / "teacher.pt"),
            "student_checkpoint_sha256": sha256_file(final_dir / "student.pt"),
            "drift_score": metrics["drift"]["drift_score"],
            "weights": metrics["weights"],
            "metrics": metrics["before_training"],
        }
    )
    _write_dvc_metrics(layout, day, metrics)
    return {"day": day, "status": "applied", **metrics}


def apply_day(
    params: Params,
    layout: Layout,
    day: str,
    teacher_in: Path,
    student_in: Path,
    out_dir: Path,
    drift: dict[str, Any],
) -> dict[str, Any]:
    """Evaluate both models on the checked day, set the day's weights from ``drift``, co-distill.

    Writes the day's checkpoints into ``out_dir``.
    """
    from crossadapt.data.dataset import encode_range
    from crossadapt.data.encoding import encode
    from crossadapt.data.partitions import read_day
    from crossadapt.data.schema import FeatureSchema
    from crossadapt.monitoring.evaluation import compare_models
    from crossadapt.online.adaptation import AdaptationConfig
    from crossadapt.online.codistill import CoDistillConfig, codistill_day, teacher_view_of
    from crossadapt.storage.checkpoint import load_model, save_model_checkpoint
    from crossadapt.training.trainer import make_optimizer, predict, set_seed

    teacher, teacher_checkpoint = load_model(teacher_in)
    student, student_checkpoint = load_model(student_in)
    for checkpoint, role in ((teacher_checkpoint, "teacher"), (student_checkpoint, "student")):
        if checkpoint.role != role:
            raise CheckpointError(
                f"{checkpoint.path} contains a {checkpoint.role} ({checkpoint.arch}) where "
                f"the {role} is expected; restore the {role} checkpoint of the previous day, or "
                "rerun that day with --replace"
            )
    teacher_schema = FeatureSchema.from_dict(teacher_checkpoint.schema, origin=str(teacher_in))
    student_schema = FeatureSchema.from_dict(student_checkpoint.schema, origin=str(student_in))

    raw = read_day(layout.data_dir, layout.dataset, day)
    student_frame = encode(raw, student_schema)
    teacher_frame = encode(raw, teacher_schema)
    before = compare_models(
        student_frame.label, predict(teacher, teacher_frame), predict(student, student_frame)
    )

    adaptation = AdaptationConfig.from_mapping(params.adaptation)
    online = params.online
    if adaptation.enabled:
        weights = adaptation.weights_for_day(
            drift["drift_score"],
            alpha=online.alpha,
            replay_ratio=online.replay_ratio,
            teacher_update_interval=online.teacher_update_interval,
        ).to_dict()
    else:
        weights = {
            "alpha": online.alpha,
            "replay_ratio": online.replay_ratio,
            "teacher_update_interval": online.teacher_update_interval,
        }

    retained_days = params.split.retained_days()
    replay = encode_range(
        layout.data_dir, layout.dataset, retained_days[0], retained_days[-1], student_schema
    )
    teacher_optimizer = make_optimizer(teacher, online.lr_embedding, online.lr_dense)
    if teacher_checkpoint.optimizer_state:
        _restore_optimizer(teacher_optimizer, teacher_checkpoint.optimizer_state, online)
    student_optimizer = make_optimizer(student, online.lr_embedding, online.lr_dense)
    if student_checkpoint.optimizer_state:
        _restore_optimizer(student_optimizer, student_checkpoint.optimizer_state, online)

    set_seed(params.seed + int(day.replace("-", "")))
    config = CoDistillConfig(
        batch_size=online.batch_size,
        alpha=weights["alpha"],
        temperature=online.temperature,
        replay_ratio=weights["replay_ratio"],
        teacher_update_interval=weights["teacher_update_interval"],
        reverse_kd_weight=online.reverse_kd_weight,
        seed=params.seed,
    )
    result = codistill_day(
        teacher,
        student,
        teacher_optimizer,
        student_optimizer,
        student_frame,
        replay,
        config,
        day=day,
        teacher_view=teacher_view_of(teacher_schema, student_schema),
    )

    meta = {"step": "online_day", "day": day}
    save_model_checkpoint(
        out_dir / "teacher.pt", teacher, teacher_optimizer, teacher_schema, "teacher", meta
    )
    save_model_checkpoint(
        out_dir / "student.pt", student, student_optimizer, student_schema, "student", meta
    )
    return {
        "day": day,
        "before_training": before,
        "drift": {key: drift[key] for key in ("drift_score", "flagged", "share_drifted")},
        "weights": weights,
        "training": {
            "batches": result.batches,
            "rows": result.rows,
            "replay_rows": result.replay_rows,
            "teacher_steps": result.teacher_steps,
            "student_loss": result.student_loss,
            "teacher_loss": result.teacher_loss,
            "train_seconds": result.train_seconds,
        },
    }


def validate_day(
    params: Params,
    layout: Layout,
    day: str,
    raw,
    schema,
    out_dir: Path,
) -> None:
    """Run the raw and encoded suites; on failure quarantine the partition and raise."""
    from crossadapt.data.encoding import encode
    from crossadapt.data.partitions import day_path
    from crossadapt.monitoring.validation import (
        FeatureColumns,
        quarantine_day,
        validate_encoded_day,
        validate_raw_day,
    )

    columns = FeatureColumns.from_schema(schema.to_dict())
    validation_dir = out_dir / "validation"
    raw_result = validate_raw_day(
        raw, day, columns, min_rows=params.validation.min_rows, out_dir=validation_dir
    )
    results = [raw_result]
    if raw_result.success:
        encoded = encode(raw, schema)
        indices = _field_indices(encoded, schema)
        results.append(
            validate_encoded_day(
                indices,
                day,
                max_oov_rate=params.validation.max_oov_rate,
                max_oov_rate_by_field=params.validation.max_oov_rate_by_field,
                out_dir=validation_dir,
            )
        )
    failed = next((result for result in results if not result.success), None)
    if failed is not None:
        quarantine_day(
            day_path(layout.data_dir, layout.dataset, day),
            layout.quarantine_dir,
            failed,
        )


def _field_indices(encoded, schema) -> dict[str, np.ndarray]:
    indices: dict[str, np.ndarray] = {}
    for position, spec in enumerate(schema.categorical_fields()):
        if not spec.is_bucket:
            indices[spec.name] = encoded.categorical[:, position]
    for position, spec in enumerate(schema.multi_valued_fields()):
        indices[spec.name] = encoded.multi_valued[:, position, :]
    return indices


def measure_drift(
    params: Params, layout: Layout, day: str, raw, teacher, teacher_schema, out_dir: Path
) -> dict[str, Any]:
    """Evidently drift of the day against the reference window, reduced to a drift score."""
    from crossadapt.data.dataset import read_range
    from crossadapt.data.encoding import encode
    from crossadapt.monitoring.drift import compute_drift
    from crossadapt.monitoring.validation import FeatureColumns
    from crossadapt.training.trainer import predict

    adaptation = params.adaptation
    if adaptation.reference == "last_n_days":
        days = params.split.online_days()
        earlier = days[max(0, days.index(day) - adaptation.last_n_days) : days.index(day)]
        window = (earlier[0], earlier[-1]) if earlier else None
    else:
        window = None
    if window is None:
        retained = params.split.retained_days()
        window = (retained[0], retained[-1])
    reference = read_range(layout.data_dir, layout.dataset, *window)
    if len(reference) > DRIFT_REFERENCE_MAX_ROWS:
        keep = np.sort(
            np.random.default_rng(params.seed).choice(
                len(reference), DRIFT_REFERENCE_MAX_ROWS, replace=False
            )
        )
        reference = reference.iloc[keep].reset_index(drop=True)

    result = compute_drift(
        reference,
        raw,
        FeatureColumns.from_schema(teacher_schema.to_dict()),
        teacher_probs_ref=predict(teacher, encode(reference, teacher_schema)),
        teacher_probs_cur=predict(teacher, encode(raw, teacher_schema)),
        out_dir=out_dir,
        drift_threshold=adaptation.drift_threshold,
        statistical_threshold=adaptation.statistical_threshold,
        seed=params.seed,
    )
    summary = result.to_dict()
    summary["reference_window"] = list(window)
    logger.info(
        "day %s drift score %.3f (%s) against %s..%s",
        day,
        result.drift_score,
        "flagged" if result.flagged else "not flagged",
        *window,
    )
    return summary


def _restore_optimizer(optimizer, state: dict, online) -> None:
    optimizer.load_state_dict(state)
    # The saved state carries the learning rates of the stage that wrote it; the online
    # stage's own rates apply from here on.
    for group in optimizer.param_groups:
        group["lr"] = online.lr_embedding if group.get("name") == "embedding" else online.lr_dense


def _swap_into_place(staging: Path, final_dir: Path) -> None:
    """Replace ``final_dir`` with ``staging`` so a reader sees the old or the new day, whole."""
    old = final_dir.parent / f".old-{final_dir.name}"
    if old.exists():
        shutil.rmtree(old)
    if final_dir.exists():
        final_dir.rename(old)
    staging.rename(final_dir)
    if old.exists():
        shutil.rmtree(old)


def _write_dvc_metrics(layout: Layout, day: str, metrics: dict[str, Any]) -> None:
    row = {"day": day, **metrics["before_training"], "drift_score": metrics["drift"]["drift_score"]}
    atomic_write_json(layout.online_day_dir(day) / "summary.json", row)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--day", required=True, help="the online day to apply, YYYY-MM-DD (UTC)")
    parser.add_argument(
        "--replace",
        action="store_true",
        help="re-apply a day the ledger already has (later days are dropped from the ledger)",
    )


SUBCOMMAND, main = simple_step(
    "online-day",
    "validate one online day, measure drift, co-distill teacher and student, record it",
    lambda params: {},
    extra_arguments=_add_arguments,
    call=lambda params, args: run(params, args.day, replace=args.replace),
)

if __name__ == "__main__":
    exit_with(main)
