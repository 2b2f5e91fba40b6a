"""Pipeline step ``promote``: promote the student or keep the teacher after an online day.

Runs the promotion gate over the ledger's days so far and writes
``artifacts/online/promotion.json``; also writes the drift alert of a flagged day.
Runs as ``crossadapt promote [--day YYYY-MM-DD]``.
"""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossadapt.errors import LedgerError
from tasks.common import exit_with, layout_of, simple_step

if TYPE_CHECKING:
    from crossadapt.config.params import Params
    from tasks.layout import Layout

logger = logging.getLogger(__name__)


def promotion_file(layout: Layout) -> Path:
    """Return the path of the latest promotion decision of the online stage."""
    return layout.artifacts_dir / "online" / "promotion.json"


def run(params: Params, day: str | None = None) -> dict[str, Any]:
    """Decide promote-or-hold from the ledger rows up to ``day`` (default: all of them).

    Each ledger row's ``metrics`` are the teacher and student metrics of that day, measured
    before training on it. The record names the student checkpoint of the last day used.
    """
    from crossadapt.monitoring.evaluation import promotion_gate, write_promotion_record
    from crossadapt.storage.hashing import sha256_file
    from crossadapt.storage.ledger import Ledger

    layout = layout_of(params)
    rows = Ledger(layout.ledger_file).rows()
    if day is not None:
        rows = [row for row in rows if row.day <= day]
        if not rows or rows[-1].day != day:
            raise LedgerError(
                f"day {day} is not in the ledger {layout.ledger_file}; apply it first with "
                f"`crossadapt online-day --day {day}`"
            )
    if not rows:
        raise LedgerError(
            f"the ledger {layout.ledger_file} has no online day yet; apply one with "
            "`crossadapt online-day --day DAY` before deciding on promotion"
        )

    daily_rows = [{"day": row.day, **row.metrics} for row in rows]
    promotion = params.promotion
    decision = promotion_gate(
        daily_rows, promotion.last_n_days, promotion.auc_margin, promotion.max_abs_prediction_bias
    )

    last_day = rows[-1].day
    student_checkpoint = layout.online_day_dir(last_day) / "student.pt"
    if not student_checkpoint.is_file():
        raise LedgerError(
            f"{student_checkpoint} of ledger day {last_day} does not exist; restore it with "
            f"`dvc checkout` or re-apply the day with `crossadapt online-day --day {last_day} "
            "--replace`"
        )
    record_path = write_promotion_record(
        promotion_file(layout),
        decision,
        _relative_to(student_checkpoint, layout.root),
        sha256_file(student_checkpoint),
    )
    logger.info(
        "day %s: %s (%d days in the gate)",
        last_day,
        "student promoted" if decision.promote else "teacher kept",
        len(decision.days),
    )
    return {
        "promote": decision.promote,
        "day": last_day,
        "days": decision.days,
        "reasons": decision.reasons,
        "student_checkpoint": _relative_to(student_checkpoint, layout.root),
        "record": str(record_path),
    }


def write_drift_alert(params: Params, day: str, drift: dict[str, Any]) -> dict[str, Any]:
    """Write ``artifacts/online/alerts/<day>.json`` for a day whose drift score is flagged."""
    from crossadapt.storage.atomic import atomic_write_json

    layout = layout_of(params)
    alert = {
        "day": day,
        "drift_score": drift.get("drift_score"),
        "flagged": bool(drift.get("flagged")),
        "drift_threshold": params.adaptation.drift_threshold,
        "share_drifted": drift.get("share_drifted"),
        "reference_window": drift.get("reference_window"),
        "drift_report": _relative_to(layout.online_day_dir(day) / "drift", layout.root),
        "raised_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = layout.artifacts_dir / "online" / "alerts" / f"{day}.json"
    atomic_write_json(path, alert)
    logger.warning(
        "drift alert for day %s: drift score %s above adaptation.drift_threshold=%s; "
        "co-distillation shifts weight to the new data (%s)",
        day,
        alert["drift_score"],
        alert["drift_threshold"],
        path,
    )
    return {**alert, "alert": str(path)}


def _relative_to(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--day",
        default=None,
        help="decide with the ledger days up to this one, YYYY-MM-DD (default: every day)",
    )


SUBCOMMAND, main = simple_step(
    "promote",
    "run the promotion gate over the online days applied so far and write promotion.json",
    run,
    extra_arguments=_add_arguments,
    call=lambda params, args: run(params, args.day),
)

if __name__ == "__main__":
    exit_with(main)
