"""Pipeline step ``validate``: run the raw-partition suite on every day of the split.

Failing days are moved to the quarantine folder with their validation result, and the
step fails with their list. Rerun it after fixing or dropping those days. Runs as
``crossadapt validate`` or ``python -m tasks.validate``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from crossadapt.errors import DataError, ValidationFailed
from tasks.common import exit_with, field_defs, layout_of, simple_step, write_metrics

if TYPE_CHECKING:
    from crossadapt.config.params import Params

logger = logging.getLogger(__name__)


def run(params: Params) -> dict[str, Any]:
    """Validate each day partition of history_start..test_end; quarantine the failing ones."""
    from crossadapt.data.partitions import day_path, days_in_range, read_day
    from crossadapt.monitoring.validation import FeatureColumns, quarantine_day, validate_raw_day

    layout = layout_of(params)
    started = time.perf_counter()
    columns = FeatureColumns.from_schema({"fields": field_defs(params)})
    out_dir = layout.step_dir("validation")
    days = days_in_range(
        layout.data_dir, layout.dataset, params.split.history_start, params.split.test_end
    )
    if not days:
        raise DataError(
            f"no day partition of dataset {layout.dataset!r} lies in the split "
            f"{params.split.history_start}..{params.split.test_end}; set the split dates in "
            f"{params.source} to the days of your log (see {layout.partitions_dir})"
        )
    failures: dict[str, str] = {}
    rows = 0
    for day in days:
        frame = read_day(layout.data_dir, layout.dataset, day)
        rows += len(frame)
        result = validate_raw_day(
            frame,
            day,
            columns,
            min_rows=params.validation.min_rows,
            out_dir=out_dir / "days",
            data_docs=False,
        )
        # Free this day before reading the next: two 2M-row days of string columns held at
        # once raised the step's peak to 9.5 GiB (bench/results/scale_20m.md).
        del frame
        if not result.success:
            try:
                quarantine_day(
                    day_path(layout.data_dir, layout.dataset, day), layout.quarantine_dir, result
                )
            except ValidationFailed as error:
                failures[day] = str(error)

    summary = {
        "days": len(days),
        "rows": rows,
        "failed_days": sorted(failures),
        "seconds": time.perf_counter() - started,
    }
    write_metrics(out_dir / "summary.json", summary)
    if failures:
        details = "\n".join(f"- {day}: {message}" for day, message in sorted(failures.items()))
        raise ValidationFailed(
            f"{len(failures)} of {len(days)} days failed validation and were moved to "
            f"{layout.quarantine_dir}:\n{details}"
        )
    return summary


SUBCOMMAND, main = simple_step(
    "validate", "validate every day partition of the split with Great Expectations", run
)

if __name__ == "__main__":
    exit_with(main)
