"""Pipeline step ``report``: the migration's evaluation report, promotion decision and final table.

Runs as ``crossadapt report`` or ``python -m tasks.report``.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from crossadapt.errors import LedgerError
from tasks.common import exit_with, layout_of, simple_step, write_metrics

if TYPE_CHECKING:
    from crossadapt.config.params import Params

logger = logging.getLogger(__name__)


def run(params: Params) -> dict[str, Any]:
    """Collect the per-day rows, score the final models on the test days, decide promotion."""
    from crossadapt.monitoring.evaluation import promotion_gate, write_promotion_record
    from crossadapt.monitoring.report import write_evaluation_report
    from crossadapt.storage.hashing import sha256_file
    from crossadapt.storage.ledger import Ledger
    from tasks.shadow_evaluate import compare_checkpoints

    layout = layout_of(params)
    days = params.split.online_days()
    ledger = Ledger(layout.ledger_file)
    missing = [day for day in days if ledger.get(day) is None]
    if missing:
        raise LedgerError(
            f"online days {missing[:3]}{' ...' if len(missing) > 3 else ''} are not in "
            f"{layout.ledger_file}; apply them with `crossadapt online-day --day DAY` first"
        )
    ledger.verify(layout.artifacts_dir / "online")

    daily_rows = []
    for day in days:
        metrics = json.loads((layout.online_day_dir(day) / "metrics.json").read_text())
        daily_rows.append(
            {
                "day": day,
                **metrics["before_training"],
                "drift_score": metrics["drift"]["drift_score"],
                "flagged": metrics["drift"]["flagged"],
                "alpha": metrics["weights"]["alpha"],
                "replay_ratio": metrics["weights"]["replay_ratio"],
                "teacher_update_interval": metrics["weights"]["teacher_update_interval"],
            }
        )

    last = layout.online_day_dir(days[-1])
    test = compare_checkpoints(
        params,
        last / "teacher.pt",
        last / "student.pt",
        params.split.test_start,
        params.split.test_end,
    )
    offline_test = json.loads(layout.metrics_file("shadow").read_text())["test"]
    final = {
        "teacher": _side(test, "teacher"),
        "student": _side(test, "student"),
        "student_after_offline_stage": _side(offline_test, "student"),
        "teacher_before_online_stage": _side(offline_test, "teacher"),
    }
    promotion = params.promotion
    decision = promotion_gate(
        daily_rows,
        promotion.last_n_days,
        promotion.auc_margin,
        promotion.max_abs_prediction_bias,
    )
    report_dir = layout.step_dir("report")
    paths = write_evaluation_report(
        report_dir,
        daily_rows,
        final,
        gate=decision.to_dict(),
        csv_name="daily.csv",
    )
    write_promotion_record(
        report_dir / "promotion.json",
        decision,
        last / "student.pt",
        sha256_file(last / "student.pt"),
    )
    summary = {
        "test": test,
        "promoted": decision.promote,
        "flagged_days": [row["day"] for row in daily_rows if row["flagged"]],
        "report": str(paths.html.relative_to(layout.root))
        if paths.html.is_relative_to(layout.root)
        else str(paths.html),
    }
    return write_metrics(report_dir / "final.json", summary)


def _side(row: dict[str, Any], role: str) -> dict[str, Any]:
    prefix = f"{role}_"
    side = {key[len(prefix) :]: value for key, value in row.items() if key.startswith(prefix)}
    side["rows"] = row.get("rows")
    return side


SUBCOMMAND, main = simple_step(
    "report", "write the evaluation report, the promotion record and the final table", run
)

if __name__ == "__main__":
    exit_with(main)
