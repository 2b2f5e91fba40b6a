"""Great Expectations suites for daily partitions (raw and encoded), and quarantine of failed days.

Each suite runs in an ephemeral GE 1.x context; results are saved as JSON plus a Data Docs site.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crossadapt.errors import ValidationFailed
from crossadapt.storage.atomic import atomic_write_json

logger = logging.getLogger(__name__)

RAW_SUITE = "raw_day"
ENCODED_SUITE = "encoded_day"

STRING_TYPES = ["object", "str", "string", "StringDtype"]
NUMERIC_TYPES = ["float64", "float32", "int64", "int32", "int16", "int8", "Float64", "Int64"]
INTEGER_TYPES = ["int8", "int16", "int32", "int64", "uint8", "Int8", "Int64"]

# Largest finite float64: a bound of ±FLOAT_MAX rejects ±inf while nulls are skipped.
FLOAT_MAX = float(np.finfo(np.float64).max)

# Fix for each failed expectation type, quoted in the ValidationFailed message.
FIXES: dict[str, str] = {
    "expect_column_to_exist": (
        "add the column to the input file or correct the dataset spec, then re-run ingest"
    ),
    "expect_column_values_to_be_in_type_list": (
        "re-run ingest so the column has its documented dtype"
    ),
    "expect_column_values_to_not_be_null": (
        "drop or repair rows with a missing timestamp or label before ingest"
    ),
    "expect_column_values_to_be_in_set": (
        "map labels to 0/1 in the dataset spec (for example label_threshold)"
    ),
    "expect_column_values_to_be_between": (
        "remove infinite values (and negative counts) from the source file"
    ),
    "expect_timestamp_in_day": "re-run ingest so the partition holds only rows of its UTC day",
    "expect_table_row_count_to_be_between": (
        "check the source export for this day or lower validation.min_rows"
    ),
    "expect_oov_rate_to_be_at_most": (
        "refit the feature schema on recent data (fit step) or raise validation.max_oov_rate"
    ),
}


@dataclass(frozen=True)
class FeatureColumns:
    """Raw feature columns of a daily partition by type, and the numeric ones that must be >= 0."""

    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    multi_valued: tuple[str, ...] = ()
    non_negative: tuple[str, ...] = ()
    label: str = "label"
    timestamp: str = "timestamp"

    @property
    def features(self) -> list[str]:
        """All feature columns: categorical, multi-valued, numeric."""
        return [*self.categorical, *self.multi_valued, *self.numeric]

    @classmethod
    def from_schema(
        cls, schema: Mapping[str, Any] | Any, non_negative: Sequence[str] = ()
    ) -> FeatureColumns:
        """Build the column lists from a ``FeatureSchema`` or its JSON form (``schema.json``)."""
        if hasattr(schema, "to_dict"):
            schema = schema.to_dict()
        by_type: dict[str, list[str]] = {"categorical": [], "numeric": [], "multi_valued": []}
        for spec in schema["fields"]:
            by_type[spec["type"]].append(spec["name"])
        return cls(
            categorical=tuple(by_type["categorical"]),
            numeric=tuple(by_type["numeric"]),
            multi_valued=tuple(by_type["multi_valued"]),
            non_negative=tuple(non_negative),
            label=str(schema.get("label", "label")),
        )


@dataclass(frozen=True)
class FailedExpectation:
    """One failed expectation: the column it checks, its GE type, what was observed, and the fix."""

    column: str | None
    expectation: str
    observed: str
    fix: str

    def describe(self) -> str:
        where = f"column {self.column!r}" if self.column else "table"
        return f"{self.expectation} on {where}: observed {self.observed}; fix: {self.fix}"


@dataclass
class ValidationResult:
    """Outcome of one suite on one day, with the paths of its JSON and Data Docs page once saved."""

    day: str
    suite: str
    success: bool
    rows: int
    evaluated: int
    failures: list[FailedExpectation] = field(default_factory=list)
    json_path: Path | None = None
    docs_dir: Path | None = None
    docs_page: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "suite": self.suite,
            "success": self.success,
            "rows": self.rows,
            "evaluated_expectations": self.evaluated,
            "failed_expectations": [asdict(failure) for failure in self.failures],
            "docs_page": str(self.docs_page) if self.docs_page else None,
        }


def day_bounds(day: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Return [start, end) of the UTC day ``YYYY-MM-DD`` as tz-aware timestamps."""
    start = pd.Timestamp(day, tz="UTC")
    return start, start + pd.Timedelta(days=1)


@dataclass(frozen=True)
class RawDayCheck:
    """One raw-day check reduced to a number: ``metric`` must lie in [min_value, max_value].

    ``metric`` names the column of the one-row frame that GE validates. ``column`` is the
    checked day column (None for the table), and ``expectation`` is the row-level GE
    expectation that the count replaces. ``observed`` describes the invalid rows.
    """

    metric: str
    column: str | None
    expectation: str
    value: int
    observed: str
    fix: str
    min_value: int | None = None
    max_value: int | None = 0

    def failure(self) -> FailedExpectation:
        return FailedExpectation(
            column=self.column, expectation=self.expectation, observed=self.observed, fix=self.fix
        )


# Suffixes of the aggregate metrics of one day column. Each of these metrics must be 0.
_MISSING = "__missing"
_WRONG_TYPE = "__wrong_type_count"
_NULL = "__null_count"
_OUTSIDE_SET = "__outside_set_count"
_OUTSIDE_RANGE = "__outside_range_count"
_OUTSIDE_DAY = "__outside_day_count"
ROW_COUNT_METRIC = "table__row_count"
# Invalid values quoted in a failure message.
MAX_EXAMPLES = 3


def validate_raw_day(
    df: pd.DataFrame,
    day: str,
    columns: FeatureColumns,
    *,
    min_rows: int = 1,
    out_dir: str | os.PathLike[str] | None = None,
    data_docs: bool = True,
) -> ValidationResult:
    """Run the raw-partition suite on one day's frame.

    Checks: every column exists and has its dtype (timestamp int64, label integer, categorical and
    multi-valued strings, numeric numbers); timestamp and label are non-null; label is in {0, 1};
    numeric values are finite (nulls allowed) and >= 0 for ``columns.non_negative``; the row
    count is >= ``min_rows``; every timestamp lies in [day 00:00, next day 00:00) UTC.
    Expectations on a missing column are left out, so a missing column fails once, by name.

    Each check is first reduced over the whole day to one number in one vectorised pass (the
    row count, or a count of invalid rows), see ``raw_day_checks``. GE then validates the
    one-row frame of these numbers, so its cost does not grow with the rows. A failure is
    reported under the day column it checks and the name of the row-level expectation, while
    the Data Docs page lists the aggregate metrics (for example ``label__outside_set_count``).
    With ``out_dir`` the result is saved to ``out_dir/<day>/raw_day.json`` and, if ``data_docs``,
    a GE Data Docs site to ``out_dir/<day>/raw_day_docs/``.
    """
    _disable_gx_analytics()
    import great_expectations.expectations as gxe

    start_time = time.perf_counter()
    logger.info(
        "validate raw day %s: %d rows, %d feature columns", day, len(df), len(columns.features)
    )

    checks = raw_day_checks(df, day, columns, min_rows=min_rows)
    aggregate_seconds = time.perf_counter() - start_time
    frame = pd.DataFrame({check.metric: [check.value] for check in checks})
    expectations = [
        gxe.ExpectColumnValuesToBeBetween(
            column=check.metric, min_value=check.min_value, max_value=check.max_value
        )
        for check in checks
    ]
    result = _run_suite(frame, day, RAW_SUITE, expectations, out_dir, data_docs, rows=len(df))

    by_metric = {check.metric: check for check in checks}
    result.failures = [
        by_metric[failure.column].failure() if failure.column in by_metric else failure
        for failure in result.failures
    ]
    if result.json_path is not None:
        atomic_write_json(result.json_path, result.to_dict())
    logger.info(
        "validate raw day %s: success=%s, %d of %d expectations failed in %.2f s "
        "(%.2f s to aggregate %d rows)",
        day,
        result.success,
        len(result.failures),
        result.evaluated,
        time.perf_counter() - start_time,
        aggregate_seconds,
        len(df),
    )
    return result


def raw_day_checks(
    df: pd.DataFrame, day: str, columns: FeatureColumns, *, min_rows: int = 1
) -> list[RawDayCheck]:
    """Reduce every raw-day check to one number over the whole frame, in the suite's order.

    Each count is computed with vectorised pandas/numpy over a column, without copying the
    frame or converting string columns. Memory beyond ``df`` is a few arrays of
    ``len(df)`` booleans or floats at a time. The checks are listed in ``validate_raw_day``.
    """
    rows = len(df)
    present = set(df.columns)
    checks = [
        RawDayCheck(
            metric=ROW_COUNT_METRIC,
            column=None,
            expectation="expect_table_row_count_to_be_between",
            fix=FIXES["expect_table_row_count_to_be_between"],
            value=rows,
            observed=str(rows),
            min_value=min_rows,
            max_value=None,
        )
    ]
    typed_columns = [
        (columns.timestamp, ["int64"]),
        (columns.label, INTEGER_TYPES),
        *[(name, STRING_TYPES) for name in (*columns.categorical, *columns.multi_valued)],
        *[(name, NUMERIC_TYPES) for name in columns.numeric],
    ]
    for name, type_list in typed_columns:
        missing = name not in present
        checks.append(
            RawDayCheck(
                metric=f"{name}{_MISSING}",
                column=name,
                expectation="expect_column_to_exist",
                fix=FIXES["expect_column_to_exist"],
                value=int(missing),
                observed="column missing",
            )
        )
        if not missing:
            checks.append(_type_check(df[name], name, type_list))

    if columns.label in present:
        label = df[columns.label]
        checks.append(_null_check(label, columns.label))
        checks.append(_label_set_check(label, columns.label))

    for name in columns.numeric:
        if name in present:
            checks.append(_range_check(df[name], name, name in columns.non_negative))

    # A feature column may have missing values, but one that is null on every row of a
    # day means its feed broke upstream.
    for name in columns.features:
        if name in present and rows:
            checks.append(_all_null_check(df[name], name))

    if columns.timestamp in present:
        timestamp = df[columns.timestamp]
        checks.append(_null_check(timestamp, columns.timestamp))
        if pd.api.types.is_numeric_dtype(timestamp.dtype):
            checks.append(_day_check(timestamp, columns.timestamp, day))
    return checks


def _type_check(series: pd.Series, name: str, type_list: list[str]) -> RawDayCheck:
    """Count the values of a column whose type is not in ``type_list``.

    A column of a wrong dtype counts all its rows (at least 1), and an object column expected
    to hold strings counts its non-null values that are not ``str``. This follows GE 1.24
    ``expect_column_values_to_be_in_type_list`` on pandas, which checks a typed column by its
    dtype and an object column value by value. Two differences: every ``pd.StringDtype``
    storage counts as a string dtype (GE accepts only the default one, so it rejected
    ``string[pyarrow]``), and an object column expected to hold numbers fails as a whole.
    """
    dtype = series.dtype
    strings_expected = type_list == STRING_TYPES
    wrong = 0
    observed = f"dtype {dtype}; expected one of {', '.join(type_list)}"
    if strings_expected and dtype == np.dtype(object):
        if pd.api.types.infer_dtype(series, skipna=True) not in ("string", "empty"):
            # This loop over the values runs only when infer_dtype found a value that is not str.
            values = series.to_numpy()
            bad = np.fromiter(
                (not isinstance(value, str) for value in values), dtype=bool, count=len(values)
            )
            bad &= series.notna().to_numpy()
            wrong = int(np.count_nonzero(bad))
            observed = _describe_invalid(
                series, bad, wrong, "non-null values of dtype object are not str"
            )
    elif str(dtype) not in type_list and not (
        strings_expected and isinstance(dtype, pd.StringDtype)
    ):
        # GE fails a typed column by its dtype alone, even with no values, so the count is >= 1.
        wrong = max(len(series), 1)
    return RawDayCheck(
        metric=f"{name}{_WRONG_TYPE}",
        column=name,
        expectation="expect_column_values_to_be_in_type_list",
        fix=FIXES["expect_column_values_to_be_in_type_list"],
        value=wrong,
        observed=observed,
    )


def _null_check(series: pd.Series, name: str) -> RawDayCheck:
    bad = series.isna().to_numpy()
    count = int(np.count_nonzero(bad))
    return RawDayCheck(
        metric=f"{name}{_NULL}",
        column=name,
        expectation="expect_column_values_to_not_be_null",
        fix=FIXES["expect_column_values_to_not_be_null"],
        value=count,
        observed=_describe_invalid(series, bad, count, "rows are null", examples=False),
    )


def _all_null_check(series: pd.Series, name: str) -> RawDayCheck:
    all_null = not series.notna().any()
    return RawDayCheck(
        metric=f"{name}__all_null",
        column=name,
        expectation="expect_column_values_to_not_all_be_null",
        fix=(
            "the column's feed is broken for this day: fix the source export, or drop the "
            "feature from the dataset spec"
        ),
        value=int(all_null),
        observed=f"all {len(series)} rows are null" if all_null else "has values",
    )


def _label_set_check(series: pd.Series, name: str) -> RawDayCheck:
    """Count the non-null labels outside {0, 1}, with the ``isin`` test GE uses on pandas."""
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iu":
        values = series.to_numpy()
        bad = (values != 0) & (values != 1)
    else:
        bad = (series.notna() & ~series.isin([0, 1])).to_numpy(dtype=bool, na_value=False)
    count = int(np.count_nonzero(bad))
    return RawDayCheck(
        metric=f"{name}{_OUTSIDE_SET}",
        column=name,
        expectation="expect_column_values_to_be_in_set",
        fix=FIXES["expect_column_values_to_be_in_set"],
        value=count,
        observed=_describe_invalid(series, bad, count, "rows outside {0, 1}"),
    )


def _range_check(series: pd.Series, name: str, non_negative: bool) -> RawDayCheck:
    """Count the values that are infinite, or negative when ``non_negative``; nulls pass.

    Same rows as ``expect_column_values_to_be_between(min_value, max_value=FLOAT_MAX)`` with
    ``min_value`` 0 or -FLOAT_MAX. A column that is not numeric is read with
    ``pd.to_numeric(errors="coerce")``, so values that are not numbers count as nulls here
    and fail the type check instead.
    """
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        numbers = series
    else:
        numbers = pd.to_numeric(series, errors="coerce")
    if isinstance(numbers.dtype, np.dtype):
        values = numbers.to_numpy()
    else:
        values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isinf(values) if values.dtype.kind == "f" else np.zeros(len(values), dtype=bool)
    if non_negative:
        bad |= values < 0
    count = int(np.count_nonzero(bad))
    what = "rows are infinite or negative" if non_negative else "rows are infinite"
    return RawDayCheck(
        metric=f"{name}{_OUTSIDE_RANGE}",
        column=name,
        expectation="expect_column_values_to_be_between",
        value=count,
        observed=_describe_invalid(series, bad, count, what),
        fix=FIXES["expect_column_values_to_be_between"],
    )


def _day_check(series: pd.Series, name: str, day: str) -> RawDayCheck:
    """Count the timestamps (Unix seconds) outside [day start, next day start); nulls pass.

    Compares the seconds with the bounds as numbers, with no datetime column.
    """
    start, end = day_bounds(day)
    start_s, end_s = start.timestamp(), end.timestamp()
    if isinstance(series.dtype, np.dtype):
        values = series.to_numpy()
    else:
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = (values < start_s) | (values >= end_s)
    count = int(np.count_nonzero(bad))
    what = f"rows outside [{start.isoformat()}, {end.isoformat()})"
    return RawDayCheck(
        metric=f"{name}{_OUTSIDE_DAY}",
        column=name,
        expectation="expect_column_values_to_be_between",
        value=count,
        observed=_describe_invalid(series, bad, count, what, format_value=_format_seconds),
        fix=FIXES["expect_timestamp_in_day"],
    )


def _describe_invalid(
    series: pd.Series,
    bad: np.ndarray,
    count: int,
    what: str,
    *,
    examples: bool = True,
    format_value: Any = None,
) -> str:
    """Describe ``count`` invalid rows (``bad`` marks them) with examples and the first index.

    For example "3 of 1000 rows outside {0, 1}; examples: 2, -1; first at row index 17". The
    examples are the first distinct values among the first 1000 invalid rows.
    """
    if count == 0:
        return f"0 of {len(series)} {what}"
    positions = np.flatnonzero(bad)
    text = f"{count} of {len(series)} {what}"
    if examples:
        shown: list[str] = []
        for value in series.iloc[positions[:1000]]:
            formatted = (format_value or _short)(value)
            if formatted not in shown:
                shown.append(formatted)
            if len(shown) == MAX_EXAMPLES:
                break
        text += f"; examples: {', '.join(shown)}"
    return f"{text}; first at row index {series.index[positions[0]]}"


def _format_seconds(value: Any) -> str:
    try:
        moment = pd.Timestamp(float(value), unit="s", tz="UTC")
    except (OverflowError, ValueError):
        return _short(value)
    return f"{_short(value)} ({moment.isoformat()})"


def oov_rates(
    indices: Mapping[str, np.ndarray], oov_index: int = 1, pad_index: int = 0
) -> dict[str, tuple[float, int]]:
    """Return ``{field: (oov_rate, tokens)}`` for encoded index arrays of shape (N,) or (N, L).

    ``oov_rate = count(index == oov_index) / count(index != pad_index)``, over all tokens of a
    multi-valued field; a field with no non-PAD token has rate 0.
    """
    rates: dict[str, tuple[float, int]] = {}
    for name, array in indices.items():
        values = np.asarray(array).ravel()
        tokens = int(np.count_nonzero(values != pad_index))
        oov = int(np.count_nonzero(values == oov_index))
        rates[name] = (oov / tokens if tokens else 0.0, tokens)
    return rates


def validate_encoded_day(
    indices: Mapping[str, np.ndarray],
    day: str,
    *,
    max_oov_rate: float,
    oov_index: int = 1,
    pad_index: int = 0,
    out_dir: str | os.PathLike[str] | None = None,
    data_docs: bool = True,
    max_oov_rate_by_field: Mapping[str, float] | None = None,
) -> ValidationResult:
    """Run the encoded-partition suite: the OOV rate of every field is <= its limit.

    The limit is ``max_oov_rate_by_field[field]`` where given, else ``max_oov_rate``. A
    per-field limit suits ids that are new every day by nature (users in a cold-start log).

    ``indices`` maps each categorical, bucket and multi-valued field to its encoded index array
    (see ``oov_rates`` for the rate). The rates go into a one-row frame, one column per field,
    checked with ``expect_column_values_to_be_between(max_value=max_oov_rate)``, so a failure
    names the field and its observed rate. Saved as ``out_dir/<day>/encoded_day.json``.
    """
    _disable_gx_analytics()
    import great_expectations.expectations as gxe

    start_time = time.perf_counter()
    rates = oov_rates(indices, oov_index=oov_index, pad_index=pad_index)
    rows = len(next(iter(indices.values()))) if indices else 0
    logger.info(
        "validate encoded day %s: %d rows, %d fields, max_oov_rate=%s",
        day,
        rows,
        len(rates),
        max_oov_rate,
    )

    limits = {name: float((max_oov_rate_by_field or {}).get(name, max_oov_rate)) for name in rates}
    frame = pd.DataFrame({name: [rate] for name, (rate, _) in rates.items()})
    expectations = [
        gxe.ExpectColumnValuesToBeBetween(column=name, min_value=0.0, max_value=limits[name])
        for name in rates
    ]
    result = _run_suite(frame, day, ENCODED_SUITE, expectations, out_dir, data_docs, rows=rows)

    # The GE type names a range check, but this suite checks only the OOV rate: name that check.
    relabelled: list[FailedExpectation] = []
    for failure in result.failures:
        observed = failure.observed
        if failure.column in rates:
            rate, tokens = rates[failure.column]
            observed = f"oov_rate={rate:.4f} over {tokens} tokens (max {limits[failure.column]})"
        relabelled.append(
            FailedExpectation(
                column=failure.column,
                expectation="expect_oov_rate_to_be_at_most",
                observed=observed,
                fix=FIXES["expect_oov_rate_to_be_at_most"],
            )
        )
    result.failures = relabelled
    if result.json_path is not None:
        atomic_write_json(
            result.json_path, {**result.to_dict(), "oov_rates": {k: v[0] for k, v in rates.items()}}
        )
    logger.info(
        "validate encoded day %s: success=%s, %d fields over the limit in %.2f s",
        day,
        result.success,
        len(result.failures),
        time.perf_counter() - start_time,
    )
    return result


def quarantine_day(
    partition_path: str | os.PathLike[str],
    quarantine_dir: str | os.PathLike[str],
    result: ValidationResult,
) -> None:
    """Move a failed day's partition, JSON and Data Docs to ``quarantine_dir/<day>/``, then raise.

    Each item is moved with one ``os.replace``, a rename that is atomic on one file system.
    Across file systems it is first copied to a temporary name in the target folder, then
    renamed. The partition is moved last, so after a crash it is still in place and its failed
    result is still on disk.

    Raises:
        ValidationFailed: always, listing every failed expectation and its fix.
        ValueError: if ``result`` is a passing result.
    """
    if result.success:
        raise ValueError(
            f"day {result.day} passed suite {result.suite}; there is nothing to quarantine"
        )

    partition = Path(partition_path)
    target_dir = Path(quarantine_dir) / result.day
    target_dir.mkdir(parents=True, exist_ok=True)

    for source in (result.json_path, result.docs_dir):
        if source is not None and source.exists():
            _move(source, target_dir / source.name)
    quarantined_partition = target_dir / partition.name
    if partition.exists():
        _move(partition, quarantined_partition)
    logger.error(
        "quarantined day %s (suite %s, %d failed expectations) to %s",
        result.day,
        result.suite,
        len(result.failures),
        target_dir,
    )

    listing = "\n".join(f"  - {failure.describe()}" for failure in result.failures)
    raise ValidationFailed(
        f"day {result.day} failed the {result.suite} suite on {partition}; the partition and "
        f"its validation results were moved to {target_dir}. Failed expectations:\n{listing}\n"
        f"After fixing the source, re-run ingest for {result.day}; "
        "the quarantined copy can then be deleted."
    )


def _run_suite(
    frame: pd.DataFrame,
    day: str,
    suite_name: str,
    expectations: list[Any],
    out_dir: str | os.PathLike[str] | None,
    data_docs: bool,
    rows: int | None = None,
) -> ValidationResult:
    """Validate ``frame`` in an ephemeral context; save JSON and Data Docs under ``out_dir``."""
    _disable_gx_analytics()
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    # The ephemeral context comes with a site in a fresh temp folder; build only ours.
    for site_name in list(context.variables.data_docs_sites or {}):
        context.delete_data_docs_site(site_name)

    batch_definition = (
        context.data_sources.add_pandas(f"{suite_name}_source")
        .add_dataframe_asset(day)
        .add_batch_definition_whole_dataframe("whole_day")
    )
    suite = gx.ExpectationSuite(name=suite_name)
    for expectation in expectations:
        suite.add_expectation(expectation)
    suite = context.suites.add(suite)
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite_name}_{day}", data=batch_definition, suite=suite)
    )

    day_dir = Path(out_dir) / day if out_dir is not None else None
    staging_docs: Path | None = None
    actions: list[Any] = []
    if day_dir is not None and data_docs:
        day_dir.mkdir(parents=True, exist_ok=True)
        staging_docs = Path(tempfile.mkdtemp(prefix=f".{suite_name}_docs.", dir=day_dir))
        context.add_data_docs_site(
            "crossadapt",
            {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(staging_docs.resolve()),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        actions.append(
            gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["crossadapt"])
        )

    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{suite_name}_checkpoint",
            validation_definitions=[validation],
            actions=actions,
            result_format="SUMMARY",
        )
    )
    try:
        checkpoint_result = checkpoint.run(
            batch_parameters={"dataframe": frame},
            run_id=RunIdentifier(run_name=f"{suite_name}_{day}"),
        )
    except BaseException:
        if staging_docs is not None:
            shutil.rmtree(staging_docs, ignore_errors=True)
        raise

    validation_result = next(iter(checkpoint_result.run_results.values()))
    failures = [_describe_failure(item) for item in validation_result.results if not item.success]
    result = ValidationResult(
        day=day,
        suite=suite_name,
        success=bool(validation_result.success),
        rows=len(frame) if rows is None else rows,
        evaluated=len(validation_result.results),
        failures=failures,
    )

    if day_dir is not None:
        if staging_docs is not None:
            result.docs_dir = day_dir / f"{suite_name}_docs"
            _prune_unused_assets(staging_docs)
            _replace_dir(staging_docs, result.docs_dir)
            pages = sorted((result.docs_dir / "validations").rglob("*.html"))
            result.docs_page = pages[0] if pages else None
        result.json_path = day_dir / f"{suite_name}.json"
        atomic_write_json(result.json_path, result.to_dict())
    return result


def _disable_gx_analytics() -> None:
    # GE reads this variable when it is first imported; an explicit setting by the user wins.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


def _describe_failure(item: Any) -> FailedExpectation:
    """Convert a GE ExpectationValidationResult to a FailedExpectation with a readable value."""
    expectation_type = item.expectation_config.type
    column = item.expectation_config.kwargs.get("column")
    details = item.result or {}
    exception = (item.exception_info or {}).get("exception_message")

    if exception:
        observed = f"error: {exception}"
    elif expectation_type == "expect_column_to_exist":
        observed = "column missing"
    elif "observed_value" in details and details.get("observed_value") is not None:
        observed = str(details["observed_value"])
    elif details.get("unexpected_count") is not None:
        examples = [_short(value) for value in details.get("partial_unexpected_list", [])[:5]]
        percent = details.get("unexpected_percent") or 0.0
        observed = (
            f"{details['unexpected_count']} unexpected values ({percent:.2f}%), e.g. {examples}"
        )
    else:
        observed = str(details)
    fix = FIXES.get(expectation_type, "")
    return FailedExpectation(
        column=column, expectation=expectation_type, observed=observed, fix=fix
    )


def _short(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def _prune_unused_assets(site_dir: Path) -> None:
    # GE 1.24 copies two tutorial GIFs (3.3 MB together) into every site, and no page links them.
    for name in ("glossary_scroller.gif", "validation_failed_unexpected_values.gif"):
        asset = site_dir / "static" / "images" / name
        if asset.exists():
            asset.unlink()


def _replace_dir(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; an older ``target`` is renamed away first, then deleted."""
    old: Path | None = None
    if target.exists():
        old = target.with_name(f".{target.name}.old.{os.getpid()}")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _move(source: Path, target: Path) -> None:
    """Move a file or folder with a rename; across file systems copy to a temp name, then rename."""
    if target.exists():
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
    try:
        os.replace(source, target)
    except OSError:
        staging = target.with_name(f".{target.name}.tmp.{os.getpid()}")
        if source.is_dir():
            shutil.copytree(source, staging)
        else:
            shutil.copy2(source, staging)
        os.replace(staging, target)
        if source.is_dir():
            shutil.rmtree(source)
        else:
            source.unlink()
