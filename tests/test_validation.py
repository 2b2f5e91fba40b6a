"""Great Expectations suites on daily partitions, and the quarantine of a failed day."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crossadapt.errors import ValidationFailed
from crossadapt.monitoring.validation import (
    FIXES,
    FeatureColumns,
    oov_rates,
    quarantine_day,
    raw_day_checks,
    validate_encoded_day,
    validate_raw_day,
)

DAY = "1998-03-01"
COLUMNS = FeatureColumns(
    categorical=("user_id",),
    multi_valued=("genres",),
    numeric=("age", "clicks"),
    non_negative=("clicks",),
)


def make_day(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = int(pd.Timestamp(DAY, tz="UTC").timestamp())
    frame = pd.DataFrame(
        {
            "timestamp": np.sort(rng.integers(start, start + 86_400, rows)).astype("int64"),
            "label": rng.integers(0, 2, rows).astype("int8"),
            "user_id": rng.integers(0, 50, rows).astype(str),
            "genres": rng.choice(["Comedy|Drama", "Action", ""], rows),
            "age": rng.normal(30.0, 8.0, rows),
            "clicks": rng.poisson(3.0, rows).astype("float64"),
        }
    )
    frame.loc[5, "user_id"] = None
    frame.loc[6, "age"] = np.nan
    return frame


def write_partition(folder: Path, frame: pd.DataFrame) -> Path:
    path = folder / "partitions" / f"{DAY}.parquet"
    path.parent.mkdir(parents=True)
    frame.to_parquet(path)
    return path


def test_feature_columns_from_schema() -> None:
    schema = {
        "label": "clicked",
        "fields": [
            {"name": "user_id", "type": "categorical"},
            {"name": "genres", "type": "multi_valued"},
            {"name": "price", "type": "numeric"},
            {"name": "item_id", "type": "categorical"},
        ],
    }

    columns = FeatureColumns.from_schema(schema, non_negative=["price"])

    assert columns.categorical == ("user_id", "item_id")
    assert columns.multi_valued == ("genres",)
    assert columns.numeric == ("price",)
    assert columns.non_negative == ("price",)
    assert columns.label == "clicked"
    assert columns.features == ["user_id", "item_id", "genres", "price"]


def test_raw_day_passes_and_saves_docs(tmp_path: Path) -> None:
    result = validate_raw_day(
        make_day(), DAY, COLUMNS, min_rows=10, out_dir=tmp_path / "validation"
    )

    assert result.success
    assert result.failures == []
    assert result.rows == 200
    saved = json.loads((tmp_path / "validation" / DAY / "raw_day.json").read_text())
    assert saved["success"] is True
    assert saved["evaluated_expectations"] == result.evaluated
    assert result.docs_page is not None
    assert result.docs_page.is_file()
    assert "raw_day" in result.docs_page.read_text()


def test_raw_day_failure_is_quarantined(tmp_path: Path) -> None:
    frame = make_day()
    frame.loc[3, "label"] = 2
    frame.loc[4, "timestamp"] += 86_400
    frame.loc[7, "clicks"] = -1.0
    frame.loc[8, "age"] = np.inf
    frame = frame.drop(columns=["genres"])
    partition = write_partition(tmp_path, frame)
    out_dir = tmp_path / "validation"
    quarantine = tmp_path / "quarantine"

    result = validate_raw_day(frame, DAY, COLUMNS, out_dir=out_dir)
    failed = {(failure.column, failure.expectation) for failure in result.failures}

    assert not result.success
    assert failed == {
        ("label", "expect_column_values_to_be_in_set"),
        ("genres", "expect_column_to_exist"),
        ("timestamp", "expect_column_values_to_be_between"),
        ("clicks", "expect_column_values_to_be_between"),
        ("age", "expect_column_values_to_be_between"),
    }
    observed = {failure.column: failure.observed for failure in result.failures}
    assert "1998-03-02" in observed["timestamp"]
    assert "inf" in observed["age"]

    with pytest.raises(ValidationFailed) as raised:
        quarantine_day(partition, quarantine, result)
    message = str(raised.value)
    assert "expect_column_to_exist on column 'genres'" in message
    assert "expect_column_values_to_be_in_set on column 'label'" in message
    assert "fix:" in message

    assert not partition.exists()
    assert (quarantine / DAY / partition.name).is_file()
    assert (quarantine / DAY / "raw_day.json").is_file()
    assert (quarantine / DAY / "raw_day_docs" / "index.html").is_file()
    assert list((out_dir / DAY).iterdir()) == []
    assert list(partition.parent.iterdir()) == []


def test_raw_day_below_min_rows_fails(tmp_path: Path) -> None:
    result = validate_raw_day(make_day(rows=20), DAY, COLUMNS, min_rows=100, data_docs=False)

    assert not result.success
    assert [(f.expectation, f.observed) for f in result.failures] == [
        ("expect_table_row_count_to_be_between", "20")
    ]


def checks_by_metric(frame: pd.DataFrame, columns: FeatureColumns = COLUMNS) -> dict:
    return {check.metric: check for check in raw_day_checks(frame, DAY, columns)}


def test_raw_day_checks_count_invalid_rows() -> None:
    frame = make_day()
    frame.loc[3, "label"] = 2
    frame.loc[11, "label"] = -1
    frame.loc[12, "label"] = 2
    frame.loc[4, "timestamp"] += 86_400
    frame.loc[7, "clicks"] = -1.0
    frame.loc[8, "age"] = np.inf
    frame.loc[9, "age"] = -np.inf
    frame.loc[10, "age"] = -5.0

    checks = checks_by_metric(frame)

    assert checks["table__row_count"].value == 200
    assert checks["label__outside_set_count"].value == 3
    assert checks["label__outside_set_count"].observed == (
        "3 of 200 rows outside {0, 1}; examples: 2, -1; first at row index 3"
    )
    assert checks["timestamp__outside_day_count"].value == 1
    assert "first at row index 4" in checks["timestamp__outside_day_count"].observed
    assert "(1998-03-02T" in checks["timestamp__outside_day_count"].observed
    # age may be negative (it is not in non_negative); NaN at row 6 counts as null, not invalid.
    assert checks["age__outside_range_count"].value == 2
    assert "examples: inf, -inf" in checks["age__outside_range_count"].observed
    assert checks["clicks__outside_range_count"].value == 1
    assert checks["label__null_count"].value == 0
    assert checks["user_id__wrong_type_count"].value == 0
    assert checks["genres__missing"].value == 0


def test_raw_day_checks_suite_order_and_count() -> None:
    metrics = [check.metric for check in raw_day_checks(make_day(), DAY, COLUMNS)]

    assert metrics == [
        "table__row_count",
        "timestamp__missing",
        "timestamp__wrong_type_count",
        "label__missing",
        "label__wrong_type_count",
        "user_id__missing",
        "user_id__wrong_type_count",
        "genres__missing",
        "genres__wrong_type_count",
        "age__missing",
        "age__wrong_type_count",
        "clicks__missing",
        "clicks__wrong_type_count",
        "label__null_count",
        "label__outside_set_count",
        "age__outside_range_count",
        "clicks__outside_range_count",
        "user_id__all_null",
        "genres__all_null",
        "age__all_null",
        "clicks__all_null",
        "timestamp__null_count",
        "timestamp__outside_day_count",
    ]


def test_raw_day_string_dtypes_pass_type_check() -> None:
    frame = make_day()
    frame["user_id"] = frame["user_id"].astype("string[pyarrow]")
    frame["genres"] = frame["genres"].astype("string[python]")

    checks = checks_by_metric(frame)

    assert checks["user_id__wrong_type_count"].value == 0
    assert checks["genres__wrong_type_count"].value == 0


def test_raw_day_type_check_finds_bad_values() -> None:
    frame = make_day()
    frame["user_id"] = frame["user_id"].astype(object)
    frame.loc[[9, 20], "user_id"] = [5, 2.5]
    frame["genres"] = np.nan
    frame["label"] = frame["label"].astype("float64")

    checks = checks_by_metric(frame)

    user_id = checks["user_id__wrong_type_count"]
    assert user_id.value == 2
    assert user_id.observed == (
        "2 of 200 non-null values of dtype object are not str; examples: 5, 2.5; "
        "first at row index 9"
    )
    # A wrong dtype fails as a whole, even when every value is null.
    assert checks["genres__wrong_type_count"].value == 200
    assert checks["genres__wrong_type_count"].observed.startswith("dtype float64; expected")
    assert checks["label__wrong_type_count"].value == 200
    assert checks["label__outside_set_count"].value == 0


def test_raw_day_nullable_dtypes() -> None:
    frame = make_day()
    frame["label"] = pd.array([None, 3, *frame["label"].iloc[2:]], dtype="Int8")
    frame["clicks"] = pd.array([None, -2.0, *frame["clicks"].iloc[2:]], dtype="Float64")
    frame["timestamp"] = pd.array([None, *frame["timestamp"].iloc[1:]], dtype="Int64")

    checks = checks_by_metric(frame)

    assert checks["label__null_count"].value == 1
    assert checks["label__null_count"].observed == "1 of 200 rows are null; first at row index 0"
    assert checks["label__outside_set_count"].value == 1
    assert checks["clicks__outside_range_count"].value == 1
    assert checks["timestamp__null_count"].value == 1
    assert checks["timestamp__outside_day_count"].value == 0
    # Int64 is not int64: GE 1.24 fails the nullable timestamp by its dtype.
    assert checks["timestamp__wrong_type_count"].value == 200
    assert checks["label__wrong_type_count"].value == 0


def test_raw_day_failures_name_day_columns(tmp_path: Path) -> None:
    frame = make_day()
    frame.loc[[5, 6], "label"] = np.nan
    frame.loc[7, "timestamp"] = int(pd.Timestamp(DAY, tz="UTC").timestamp()) - 1

    result = validate_raw_day(frame, DAY, COLUMNS, out_dir=tmp_path, data_docs=False)

    assert not result.success
    assert result.evaluated == 23
    assert [(f.column, f.expectation) for f in result.failures] == [
        ("label", "expect_column_values_to_be_in_type_list"),
        ("label", "expect_column_values_to_not_be_null"),
        ("timestamp", "expect_column_values_to_be_between"),
    ]
    assert result.failures[1].observed == "2 of 200 rows are null; first at row index 5"
    assert result.failures[2].fix == FIXES["expect_timestamp_in_day"]
    assert "1998-02-28T23:59:59" in result.failures[2].observed
    saved = json.loads((tmp_path / DAY / "raw_day.json").read_text())
    assert saved["rows"] == 200
    assert [item["column"] for item in saved["failed_expectations"]] == [
        "label",
        "label",
        "timestamp",
    ]
    assert saved["failed_expectations"][1]["observed"] == result.failures[1].observed


def test_raw_day_empty_frame_fails_row_count() -> None:
    result = validate_raw_day(make_day().iloc[:0], DAY, COLUMNS, data_docs=False)

    assert not result.success
    assert [(f.expectation, f.observed) for f in result.failures] == [
        ("expect_table_row_count_to_be_between", "0")
    ]


def test_oov_rates_ignore_pad_tokens() -> None:
    rates = oov_rates(
        {"user_id": np.array([1, 2, 1, 3]), "genres": np.array([[1, 0], [0, 0], [2, 1]])}
    )

    assert rates["user_id"] == (0.5, 4)
    assert rates["genres"] == (2 / 3, 3)
    assert oov_rates({"empty": np.zeros((3, 2), dtype=np.int64)})["empty"] == (0.0, 0)


def test_encoded_day_oov_too_high_is_quarantined(tmp_path: Path) -> None:
    indices = {
        "user_id": np.array([1, 1, 1, 2]),
        "genres": np.array([[2, 3], [4, 0], [1, 0], [2, 0]]),
    }
    partition = write_partition(tmp_path, make_day())

    result = validate_encoded_day(indices, DAY, max_oov_rate=0.5, out_dir=tmp_path / "validation")

    assert not result.success
    assert [(f.column, f.expectation) for f in result.failures] == [
        ("user_id", "expect_oov_rate_to_be_at_most")
    ]
    assert "oov_rate=0.7500" in result.failures[0].observed
    saved = json.loads(result.json_path.read_text())
    assert saved["oov_rates"] == {"user_id": 0.75, "genres": 0.2}

    with pytest.raises(ValidationFailed, match="expect_oov_rate_to_be_at_most on column 'user_id'"):
        quarantine_day(partition, tmp_path / "quarantine", result)
    assert (tmp_path / "quarantine" / DAY / "encoded_day.json").is_file()
    assert not partition.exists()


def test_quarantine_rejects_passing_result(tmp_path: Path) -> None:
    result = validate_encoded_day(
        {"user_id": np.array([2, 3])}, DAY, max_oov_rate=0.5, data_docs=False
    )

    assert result.success
    with pytest.raises(ValueError, match="nothing to quarantine"):
        quarantine_day(tmp_path / "missing.parquet", tmp_path / "quarantine", result)
