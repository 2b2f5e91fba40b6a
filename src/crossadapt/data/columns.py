"""Conversion of raw log columns into partition columns: label (int8), timestamp (int64 Unix
seconds), categorical and multi-valued (str), numeric (float64); errors name file, line, value."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crossadapt.config.days import SECONDS_PER_DAY, day_start_timestamp
from crossadapt.data.spec import (
    CategoricalColumn,
    DatasetSpec,
    FeatureColumn,
    LabelSpec,
    MultiValuedColumn,
    NumericColumn,
    TimestampSpec,
)
from crossadapt.errors import DataError

if TYPE_CHECKING:
    from crossadapt.data.readers import RawChunk

MULTI_VALUE_JOINER = "|"
# Spellings of a missing value in numeric, label and timestamp columns. Categorical
# columns keep them as tokens ("NA" may be a real category).
MISSING_TOKENS = frozenset({"", "nan", "NaN", "NA", "N/A", "null", "NULL", "None"})
_EPOCH = pd.Timestamp(0, tz="UTC")


def convert_main(chunk: RawChunk, spec: DatasetSpec, row_offset: int) -> pd.DataFrame:
    """Typed frame of a main-log chunk: timestamp, label and the main-table features.

    ``row_offset`` is the number of rows read before this chunk (all files), used when the
    log has no time column.
    """
    frame = pd.DataFrame(
        {
            "timestamp": parse_timestamp(chunk, spec.timestamp, row_offset),
            "label": parse_label(chunk, spec.label),
        }
    )
    features = convert_features(chunk, [f for f in spec.features() if f.table is None])
    for name in features.columns:
        frame[name] = features[name].to_numpy()
    return frame


def convert_features(chunk: RawChunk, features: list[FeatureColumn]) -> pd.DataFrame:
    """Convert each feature's source column in ``chunk`` into one typed column."""
    columns: dict[str, pd.Series] = {}
    for feature in features:
        values = chunk.frame[feature.source_column]
        if isinstance(feature, NumericColumn):
            columns[feature.name] = parse_numeric(chunk, feature.source_column)
        elif isinstance(feature, MultiValuedColumn):
            columns[feature.name] = parse_multi_valued(chunk, feature)
        elif isinstance(feature, CategoricalColumn):
            columns[feature.name] = parse_categorical(values, feature.prefix_length)
        else:
            raise TypeError(f"unknown feature kind {type(feature).__name__}")
    return pd.DataFrame(columns, index=pd.RangeIndex(len(chunk.frame)))


def parse_label(chunk: RawChunk, spec: LabelSpec) -> np.ndarray:
    """Label as int8 0/1 from ``spec.column``.

    With ``positive_values``: 1 if the value is one of them (numbers compared by value),
    0 if it is one of ``negative_values`` (or any other value when those are not set).
    With ``threshold``: 1 if ``value >= threshold``.
    """
    values = chunk.frame[spec.column]
    text = _as_text(values)
    missing = text.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"{chunk.locate(int(np.argmax(missing)))}: label column {spec.column} is empty; "
            "every row needs a label"
        )
    numbers = pd.to_numeric(text, errors="coerce")

    if spec.threshold is not None:
        not_number = numbers.isna().to_numpy()
        if not_number.any():
            index = int(np.argmax(not_number))
            raise DataError(
                f"{chunk.locate(index)}: label column {spec.column} has the value "
                f"{text.iloc[index]!r}, not a number; label.threshold needs numeric labels"
            )
        if spec.valid_range is not None:
            low, high = spec.valid_range
            outside = ((numbers < low) | (numbers > high)).to_numpy()
            if outside.any():
                index = int(np.argmax(outside))
                raise DataError(
                    f"{chunk.locate(index)}: label column {spec.column} has the value "
                    f"{text.iloc[index]!r}, outside the allowed range [{low:g}, {high:g}]"
                )
        return (numbers >= spec.threshold).to_numpy().astype(np.int8)

    positive_values = spec.positive_values or []
    is_positive = _matches(text, numbers, positive_values)
    if spec.negative_values is None:
        return is_positive.astype(np.int8)
    is_negative = _matches(text, numbers, spec.negative_values)
    invalid = ~(is_positive | is_negative)
    if invalid.any():
        index = int(np.argmax(invalid))
        allowed = [*positive_values, *spec.negative_values]
        raise DataError(
            f"{chunk.locate(index)}: label column {spec.column} has the value "
            f"{text.iloc[index]!r}; allowed values are {allowed} (positive: {positive_values})"
        )
    return is_positive.astype(np.int8)


def parse_timestamp(chunk: RawChunk, spec: TimestampSpec, row_offset: int) -> np.ndarray:
    """Unix seconds (int64, UTC, floored) of every row of ``chunk``."""
    rows = len(chunk.frame)
    if spec.format == "none":
        # Row i of day d gets d's midnight plus i/rows_per_day of a day: time order = row order.
        assert spec.rows_per_day is not None and spec.start_date is not None
        index = row_offset + np.arange(rows, dtype=np.int64)
        day = index // spec.rows_per_day
        within = (index % spec.rows_per_day) * SECONDS_PER_DAY // spec.rows_per_day
        return day_start_timestamp(spec.start_date) + day * SECONDS_PER_DAY + within

    assert spec.column is not None
    values = chunk.frame[spec.column]
    text = _as_text(values)
    missing = text.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"{chunk.locate(int(np.argmax(missing)))}: timestamp column {spec.column} is empty; "
            "every row needs a time"
        )

    if spec.format in ("unix_s", "unix_ms"):
        numbers = pd.to_numeric(text, errors="coerce")
        invalid = (numbers.isna() | ~np.isfinite(numbers)).to_numpy()
        seconds = numbers / 1000.0 if spec.format == "unix_ms" else numbers
        parsed = None
    else:
        parsed = (
            pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
            if spec.format == "iso8601"
            else pd.to_datetime(text, utc=True, format=spec.format, errors="coerce")
        )
        invalid = parsed.isna().to_numpy()
        seconds = None
    if invalid.any():
        index = int(np.argmax(invalid))
        raise DataError(
            f"{chunk.locate(index)}: timestamp column {spec.column} has the value "
            f"{text.iloc[index]!r}, which does not parse as {spec.format!r}; fix the value or "
            "timestamp.format"
        )
    if parsed is not None:
        result = ((parsed - _EPOCH) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)
    else:
        assert seconds is not None
        result = np.floor(seconds.to_numpy(dtype=np.float64)).astype(np.int64)

    # A log holds events that happened: a time more than a day ahead of this machine's
    # clock is a broken clock or a wrong unit (milliseconds read as seconds, say).
    latest = int(time.time()) + SECONDS_PER_DAY
    future = result > latest
    if future.any():
        index = int(np.argmax(future))
        raise DataError(
            f"{chunk.locate(index)}: timestamp column {spec.column} has the value "
            f"{text.iloc[index]!r}, which is in the future "
            f"({pd.Timestamp(min(int(result[index]), 2**33), unit='s', tz='UTC')}); fix the "
            "value, or check timestamp.format (unix_s vs unix_ms)"
        )
    return result


def parse_numeric(chunk: RawChunk, column: str) -> pd.Series:
    """Column as float64; missing spellings become NaN, any other text raises DataError."""
    values = chunk.frame[column]
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.astype(np.float64).reset_index(drop=True)
    text = _as_text(values)
    numbers = pd.to_numeric(text, errors="coerce")
    invalid = (text.notna() & numbers.isna()).to_numpy()
    if invalid.any():
        index = int(np.argmax(invalid))
        raise DataError(
            f"{chunk.locate(index)}: numeric column {column} has the text {text.iloc[index]!r}; "
            "fix the value or declare the column categorical"
        )
    return numbers.astype(np.float64).reset_index(drop=True)


def parse_categorical(values: pd.Series, prefix_length: int | None) -> pd.Series:
    """Column as str with None for missing; integral numbers print without '.0'."""
    text = values.astype(object).where(values.notna(), None).reset_index(drop=True)
    if pd.api.types.infer_dtype(text, skipna=True) not in ("string", "empty"):
        text = text.map(lambda v: v if v is None or isinstance(v, str) else _token(v))
    if prefix_length is not None:
        text = _keep_none(text.str.slice(0, prefix_length))
    return text


def parse_multi_valued(chunk: RawChunk, feature: MultiValuedColumn) -> pd.Series:
    """Tokens split on ``feature.separator``, blanks dropped, joined by ``|`` (None if none)."""
    values = parse_categorical(chunk.frame[feature.source_column], None)
    separator = feature.separator

    def join_tokens(value: str | None) -> str | None:
        if value is None:
            return None
        tokens = [token.strip() for token in value.split(separator)]
        return MULTI_VALUE_JOINER.join(token for token in tokens if token) or None

    if separator != MULTI_VALUE_JOINER:
        clash = values.map(lambda v: v is not None and MULTI_VALUE_JOINER in v).to_numpy()
        if clash.any():
            index = int(np.argmax(clash))
            raise DataError(
                f"{chunk.locate(index)}: multi-valued column {feature.source_column} has the "
                f"value {values.iloc[index]!r}, whose tokens contain '|', the joiner of the "
                "partitions; clean the value or use '|' as the separator"
            )
    return values.map(join_tokens)


def _as_text(values: pd.Series) -> pd.Series:
    # Strings stripped, with the missing spellings as None; numbers as their text.
    text = _keep_none(parse_categorical(values, None).str.strip())
    return text.where(~text.isin(MISSING_TOKENS), None)


def _keep_none(text: pd.Series) -> pd.Series:
    # ``.str`` methods turn None into NaN; put None back so columns stay str-or-None.
    return text.astype(object).where(text.notna(), None)


def _matches(text: pd.Series, numbers: pd.Series, allowed: list[str]) -> np.ndarray:
    allowed_numbers = pd.to_numeric(pd.Series(allowed, dtype=object), errors="coerce").dropna()
    return (text.isin(allowed) | numbers.isin(allowed_numbers.tolist())).to_numpy()


def _token(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
