"""``crossadapt summary``: where the reports of a migration are, and its final table."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from crossadapt.errors import DataError
from tasks.common import exit_with, layout_of, simple_step

if TYPE_CHECKING:
    from crossadapt.config.params import Params

METRICS = ("auc", "log_loss", "prediction_bias", "normalized_entropy")


def run(params: Params) -> dict[str, Any]:
    """Print the report locations and the final table; return nothing to print as JSON."""
    layout = layout_of(params)
    final_path = layout.step_dir("report") / "final.json"
    try:
        final = json.loads(final_path.read_text())
    except FileNotFoundError:
        raise DataError(f"{final_path} not found: run the migration first (dvc repro)") from None
    days = params.split.online_days()
    test = final["test"]
    lines = [
        "",
        "Reports",
        f"  evaluation report : {layout.step_dir('report') / 'evaluation_report.html'}",
        f"  promotion record  : {layout.step_dir('report') / 'promotion.json'}",
        f"  drift reports     : {layout.artifacts_dir / 'online'}/<day>/drift/drift_report.html"
        f" ({len(days)} days)",
        f"  validation results: {layout.artifacts_dir / 'online'}/<day>/validation/"
        f" and {layout.step_dir('validation') / 'days'}",
        f"  ledger            : {layout.ledger_file}",
        "",
        f"Test days {params.split.test_start}..{params.split.test_end} ({test['rows']} rows)",
        f"  {'metric':<20}{'teacher':>10}{'student':>10}{'delta':>10}",
    ]
    for metric in METRICS:
        lines.append(
            f"  {metric:<20}{_number(test[f'teacher_{metric}'])}"
            f"{_number(test[f'student_{metric}'])}{_number(test[f'delta_{metric}'])}"
        )
    lines.append(
        f"  promotion: {'student promoted' if final['promoted'] else 'teacher kept'}; "
        f"days flagged for drift: {len(final['flagged_days'])} of {len(days)}"
    )
    print("\n".join(lines))
    return None


def _number(value: float | None) -> str:
    return f"{value:>10.4f}" if value is not None else f"{'n/a':>10}"


SUBCOMMAND, main = simple_step(
    "summary", "print where the migration's reports are and the final teacher-vs-student table", run
)

if __name__ == "__main__":
    exit_with(main)
