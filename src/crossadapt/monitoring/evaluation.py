"""Shadow evaluation of the student against the teacher, and the promotion gate."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from numpy.typing import ArrayLike

from crossadapt.storage.atomic import atomic_write_json
from crossadapt.training.metrics import evaluate_predictions

logger = logging.getLogger(__name__)

METRICS = ("auc", "log_loss", "prediction_bias", "normalized_entropy")


def compare_models(y: ArrayLike, p_teacher: ArrayLike, p_student: ArrayLike) -> dict[str, Any]:
    """Evaluate teacher and student on the same rows, side by side.

    Returns one flat row: ``teacher_<metric>``, ``student_<metric>`` and
    ``delta_<metric> = student - teacher`` for auc, log_loss, prediction_bias and
    normalized_entropy, plus ``rows`` and ``positives``. A higher delta_auc and a lower
    delta_log_loss favour the student.
    """
    teacher = evaluate_predictions(y, p_teacher)
    student = evaluate_predictions(y, p_student)
    row: dict[str, Any] = {"rows": teacher["rows"], "positives": teacher["positives"]}
    for metric in METRICS:
        row[f"teacher_{metric}"] = teacher[metric]
        row[f"student_{metric}"] = student[metric]
        row[f"delta_{metric}"] = student[metric] - teacher[metric]
    logger.info(
        "shadow evaluation on %d rows: AUC teacher %.4f student %.4f, "
        "LogLoss teacher %.4f student %.4f",
        row["rows"],
        row["teacher_auc"],
        row["student_auc"],
        row["teacher_log_loss"],
        row["student_log_loss"],
    )
    return row


@dataclass
class GateDecision:
    """Outcome of the promotion gate: the verdict, the reasons against it, the numbers compared."""

    promote: bool
    reasons: list[str]
    days: list[str]
    teacher_auc: float
    student_auc: float
    student_prediction_bias: float
    auc_margin: float
    max_abs_prediction_bias: float
    checks: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("teacher_auc", "student_auc", "student_prediction_bias"):
            if not math.isfinite(data[key]):
                data[key] = None
        return data


def promotion_gate(
    daily_rows: Sequence[Mapping[str, Any]],
    last_n_days: int,
    auc_margin: float,
    max_abs_prediction_bias: float,
) -> GateDecision:
    """Decide whether the student replaces the teacher, from the last ``last_n_days`` days.

    Rows are the per-day outputs of ``compare_models`` with a ``day`` key, evaluated before
    training on that day. The student is promoted when all hold:

    1. at least ``last_n_days`` days were evaluated;
    2. ``mean_d AUC_student(d) >= mean_d AUC_teacher(d) - auc_margin``: the mean of the daily
       AUCs, over the days where both are defined. The mean, not every single day, because the
       AUC of one small day is noisy and one bad day should not block a student that is better
       over the week;
    3. ``|b| <= max_abs_prediction_bias`` for the student's bias over the window, pooled as
       ``b = sum_d (1 + b_d) P_d / sum_d P_d - 1``. This is the bias of all rows together,
       computed from each day's bias ``b_d`` and positives ``P_d``. Rows without a
       ``positives`` count fall back to the unweighted mean of ``b_d``.
    """
    rows = (
        sorted(daily_rows, key=lambda row: str(row["day"]))[-last_n_days:]
        if last_n_days > 0
        else []
    )
    days = [str(row["day"]) for row in rows]
    reasons: list[str] = []
    checks: dict[str, bool] = {}

    checks["enough_days"] = len(rows) >= last_n_days
    if not checks["enough_days"]:
        reasons.append(
            f"only {len(rows)} evaluated days; the gate needs promotion.last_n_days={last_n_days}"
        )

    auc_pairs = [
        (float(row["teacher_auc"]), float(row["student_auc"]))
        for row in rows
        if _is_finite(row.get("teacher_auc")) and _is_finite(row.get("student_auc"))
    ]
    teacher_auc = sum(pair[0] for pair in auc_pairs) / len(auc_pairs) if auc_pairs else math.nan
    student_auc = sum(pair[1] for pair in auc_pairs) / len(auc_pairs) if auc_pairs else math.nan
    checks["auc"] = bool(auc_pairs) and student_auc >= teacher_auc - auc_margin
    if not auc_pairs:
        reasons.append(
            "no evaluated day has a defined AUC for both models (each day needs both classes)"
        )
    elif not checks["auc"]:
        reasons.append(
            f"student mean AUC {student_auc:.4f} is below teacher mean AUC {teacher_auc:.4f} "
            f"minus promotion.auc_margin={auc_margin} over {len(auc_pairs)} days"
        )

    student_bias = _pooled_bias(rows)
    checks["prediction_bias"] = (
        math.isfinite(student_bias) and abs(student_bias) <= max_abs_prediction_bias
    )
    if not math.isfinite(student_bias):
        reasons.append("the student's prediction bias is undefined over the window (no positives)")
    elif not checks["prediction_bias"]:
        reasons.append(
            f"student prediction bias {student_bias:+.4f} exceeds "
            f"promotion.max_abs_prediction_bias={max_abs_prediction_bias} in absolute value"
        )

    decision = GateDecision(
        promote=all(checks.values()),
        reasons=reasons,
        days=days,
        teacher_auc=teacher_auc,
        student_auc=student_auc,
        student_prediction_bias=student_bias,
        auc_margin=auc_margin,
        max_abs_prediction_bias=max_abs_prediction_bias,
        checks=checks,
    )
    logger.info(
        "promotion gate over %d days: promote=%s "
        "(mean AUC teacher %.4f student %.4f, student bias %+.4f)%s",
        len(days),
        decision.promote,
        teacher_auc,
        student_auc,
        student_bias,
        "" if decision.promote else f"; reasons: {'; '.join(reasons)}",
    )
    return decision


def write_promotion_record(
    path: str | os.PathLike[str],
    decision: GateDecision,
    student_checkpoint: str | os.PathLike[str],
    sha256: str,
) -> Path:
    """Write the decision with the student checkpoint's path and sha256 as JSON, atomically."""
    record = {
        "promoted": decision.promote,
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "student_checkpoint": str(student_checkpoint),
        "student_checkpoint_sha256": sha256,
        "decision": decision.to_dict(),
    }
    target = Path(path)
    atomic_write_json(target, record)
    logger.info("promotion record written to %s (promoted=%s)", target, decision.promote)
    return target


def _pooled_bias(rows: Sequence[Mapping[str, Any]]) -> float:
    usable = [row for row in rows if _is_finite(row.get("student_prediction_bias"))]
    if not usable:
        return math.nan
    if all(_is_finite(row.get("positives")) for row in usable):
        positives = sum(float(row["positives"]) for row in usable)
        if positives > 0:
            predicted = sum(
                (1.0 + float(row["student_prediction_bias"])) * float(row["positives"])
                for row in usable
            )
            return predicted / positives - 1.0
    return sum(float(row["student_prediction_bias"]) for row in usable) / len(usable)


def _is_finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
