"""Tests of the chunked log readers: typed columns, presets on real samples, and the
errors for broken files (each must name the file, line, column and value)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crossadapt.data.presets import avazu_spec, criteo_spec, open_bandit_spec
from crossadapt.data.readers import read_log
from crossadapt.data.spec import (
    CategoricalColumn,
    DatasetSpec,
    LabelSpec,
    MultiValuedColumn,
    NumericColumn,
    SideTableSpec,
    TimestampSpec,
)
from crossadapt.errors import DataError

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

TOY_CSV = "ts,user,price,tags,clicked\n100,u1,1.5,a;b,1\n200,u2,,,0\n86500,,3,c;;d,1\n"


def toy_spec(path: Path | list[Path], **changes) -> DatasetSpec:
    files = [str(p) for p in path] if isinstance(path, list) else [str(path)]
    fields = {
        "name": "toy",
        "files": files,
        "label": LabelSpec(column="clicked", positive_values=["1"], negative_values=["0"]),
        "timestamp": TimestampSpec(column="ts", format="unix_s"),
        "categorical": [CategoricalColumn(name="user", source="user")],
        "numeric": [NumericColumn(name="price", source="context")],
        "multi_valued": [MultiValuedColumn(name="tags", source="item", separator=";")],
        **changes,
    }
    return DatasetSpec(**fields)


def read_all(spec: DatasetSpec) -> pd.DataFrame:
    return pd.concat(list(read_log(spec)), ignore_index=True)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_typed_columns(tmp_path: Path) -> None:
    frame = read_all(toy_spec(write(tmp_path, "log.csv", TOY_CSV)))

    assert list(frame.columns) == ["timestamp", "label", "user", "price", "tags"]
    assert frame["timestamp"].dtype == np.int64
    assert frame["label"].dtype == np.int8
    assert frame["price"].dtype == np.float64
    assert frame["timestamp"].tolist() == [100, 200, 86500]
    assert frame["label"].tolist() == [1, 0, 1]
    assert frame["user"].tolist() == ["u1", "u2", None]
    assert frame["price"].iloc[0] == 1.5
    assert np.isnan(frame["price"].iloc[1])
    assert frame["tags"].tolist() == ["a|b", None, "c|d"]


def test_gzip_and_chunks_match_plain(tmp_path: Path) -> None:
    plain = write(tmp_path, "log.csv", TOY_CSV)
    packed = tmp_path / "log.csv.gz"
    packed.write_bytes(gzip.compress(TOY_CSV.encode()))

    expected = read_all(toy_spec(plain))
    chunks = list(read_log(toy_spec(packed, chunk_rows=1)))

    assert len(chunks) == 3
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), expected)


def test_tsv_without_header(tmp_path: Path) -> None:
    path = write(tmp_path, "log.tsv", "100\tu1\t2\tx\t1\n200\tu2\t3\ty\t0\n")
    spec = toy_spec(
        path, delimiter="\t", header=False, column_names=["ts", "user", "price", "tags", "clicked"]
    )

    frame = read_all(spec)

    assert frame["user"].tolist() == ["u1", "u2"]
    assert frame["label"].tolist() == [1, 0]


def test_rename_maps_header(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "time:float,who,price,tags,y\n5,u9,1,t,0\n")
    spec = toy_spec(path, rename={"time:float": "ts", "who": "user", "y": "clicked"})

    frame = read_all(spec)

    assert frame["timestamp"].tolist() == [5]
    assert frame["user"].tolist() == ["u9"]


def test_blank_lines_skipped_line_numbers_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "ts,user,price,tags,clicked\n1,a,1,x,1\n\n2,b,zz,y,0\n")

    with pytest.raises(DataError, match=r"log.csv, line 4: numeric column price"):
        read_all(toy_spec(path))


def test_parquet_input(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    table = pa.table(
        {
            "ts": pa.array([300, 100], pa.int64()),
            "user": pa.array([7, None], pa.int64()),
            "price": pa.array([1, None], pa.int64()),
            "tags": ["a;b", None],
            "clicked": pa.array([1, 0], pa.int8()),
        }
    )
    pq.write_table(table, path)

    frame = read_all(toy_spec(path))

    assert frame["timestamp"].tolist() == [300, 100]
    assert frame["user"].tolist() == ["7", None]
    assert frame["price"].iloc[0] == 1.0
    assert np.isnan(frame["price"].iloc[1])
    assert frame["label"].tolist() == [1, 0]


def test_label_threshold(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "ts,user,price,tags,clicked\n1,a,1,x,4.5\n2,b,1,x,3\n")
    spec = toy_spec(path, label=LabelSpec(column="clicked", threshold=4, valid_range=(1, 5)))

    assert read_all(spec)["label"].tolist() == [1, 0]


def test_label_numbers_compared_by_value(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "ts,user,price,tags,clicked\n1,a,1,x,1.0\n2,b,1,x,0.0\n")

    assert read_all(toy_spec(path))["label"].tolist() == [1, 0]


@pytest.mark.parametrize(
    ("timestamp", "values", "expected"),
    [
        (TimestampSpec(column="ts", format="unix_ms"), ["1500", "86400999"], [1, 86400]),
        (
            TimestampSpec(column="ts", format="iso8601"),
            ["2019-11-24 00:00:17.004101+00:00", "2019-11-24T02:00:00+02:00"],
            [1574553617, 1574553600],
        ),
        (
            TimestampSpec(column="ts", format="%y%m%d%H"),
            ["14102100", "14102123"],
            [1413849600, 1413849600 + 23 * 3600],
        ),
        (TimestampSpec(column="ts", format="unix_s"), ["1.9", "-0.5"], [1, -1]),
    ],
)
def test_timestamp_formats(tmp_path: Path, timestamp, values, expected) -> None:
    rows = "".join(f"{value},u,1,x,0\n" for value in values)
    path = write(tmp_path, "log.csv", "ts,user,price,tags,clicked\n" + rows)

    frame = read_all(toy_spec(path, timestamp=timestamp))

    assert frame["timestamp"].tolist() == expected


def test_rows_per_day_without_time_column(tmp_path: Path) -> None:
    first = write(tmp_path, "a.csv", "user,price,tags,clicked\n" + "u,1,x,0\n" * 3)
    second = write(tmp_path, "b.csv", "user,price,tags,clicked\n" + "u,1,x,0\n" * 2)
    spec = toy_spec(
        [first, second],
        timestamp=TimestampSpec(format="none", rows_per_day=2, start_date="1970-01-02"),
        chunk_rows=2,
    )

    frame = read_all(spec)

    assert frame["timestamp"].tolist() == [86400, 86400 + 43200, 172800, 172800 + 43200, 259200]


def test_side_table_join(tmp_path: Path) -> None:
    log = write(tmp_path, "log.csv", "ts,user,price,tags,clicked\n1,u1,1,x,0\n2,u3,1,x,1\n")
    write(tmp_path, "users.tsv", "user_id\tage\tzip\nu1\t31\t94043\nu2\t20\t10001\n")
    spec = toy_spec(
        log,
        categorical=[
            CategoricalColumn(name="user", source="user"),
            CategoricalColumn(
                name="zip2", source="user", table="users", column="zip", prefix_length=2
            ),
        ],
        numeric=[NumericColumn(name="age", source="user", table="users")],
        side_tables=[
            SideTableSpec(
                name="users",
                path="{dir}/users.tsv",
                delimiter="\t",
                key="user_id",
                main_key="user",
            )
        ],
    )

    frame = read_all(spec)

    assert frame["zip2"].tolist() == ["94", None]
    assert frame["age"].iloc[0] == 31.0
    assert np.isnan(frame["age"].iloc[1])


def test_side_table_duplicate_key(tmp_path: Path) -> None:
    log = write(tmp_path, "log.csv", "ts,user,price,tags,clicked\n1,u1,1,x,0\n")
    write(tmp_path, "users.csv", "user,age\nu1,3\nu2,4\nu1,5\n")
    spec = toy_spec(
        log,
        numeric=[NumericColumn(name="age", source="user", table="users")],
        side_tables=[SideTableSpec(name="users", path=str(tmp_path / "users.csv"), key="user")],
    )

    with pytest.raises(DataError, match=r"users.csv, line 4: key 'u1' of side table users"):
        read_all(spec)


# --- broken inputs ------------------------------------------------------------------------


def test_truncated_gzip(tmp_path: Path) -> None:
    rows = "".join(f"{i},{os.urandom(8).hex()},1,x,0\n" for i in range(3000))
    data = gzip.compress(("ts,user,price,tags,clicked\n" + rows).encode())
    path = tmp_path / "log.csv.gz"
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(DataError, match=r"log.csv.gz: truncated or corrupt gzip file"):
        read_all(toy_spec(path))


def test_truncated_parquet(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pq.write_table(
        pa.table(
            {
                "ts": [1, 2],
                "user": ["a", "b"],
                "price": [1.0, 2.0],
                "tags": ["x", "y"],
                "clicked": [0, 1],
            }
        ),
        path,
    )
    path.write_bytes(path.read_bytes()[:-20])

    with pytest.raises(DataError, match=r"log.parquet: not a readable parquet file"):
        read_all(toy_spec(path))


def test_malformed_row_line_number(tmp_path: Path) -> None:
    text = "ts,user,price,tags,clicked\n1,a,1,x,0\n2,b,1,x,0\n3,c,1,x,0,extra\n"
    path = write(tmp_path, "log.csv", text)

    with pytest.raises(DataError, match=r"log.csv: malformed CSV .*line 4"):
        read_all(toy_spec(path))


def test_wrong_delimiter_detected(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "ts\tuser\tprice\ttags\tclicked\n1\ta\t1\tx\t0\n")

    with pytest.raises(DataError) as caught:
        read_all(toy_spec(path))

    message = str(caught.value)
    assert "found 1 column with delimiter ','" in message
    assert "set delimiter to '\\t'" in message


def test_missing_column_names_expected_and_found(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "ts,user_name,price,tags,clicked\n1,a,1,x,0\n")

    with pytest.raises(DataError) as caught:
        read_all(toy_spec(path))

    message = str(caught.value)
    assert "missing column(s) user;" in message
    assert "expected clicked, ts, user, price, tags" in message
    assert "found ts, user_name, price, tags, clicked" in message


def test_text_in_numeric_column(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "ts,user,price,tags,clicked\n1,a,1,x,0\n2,b,abc,x,0\n")

    with pytest.raises(DataError) as caught:
        read_all(toy_spec(path))

    message = str(caught.value)
    assert "log.csv, line 3" in message
    assert "numeric column price" in message
    assert "'abc'" in message


def test_missing_spellings_in_numeric_are_null(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "ts,user,price,tags,clicked\n1,a,NA,x,0\n2,b,nan,x,0\n")

    frame = read_all(toy_spec(path))

    assert frame["price"].isna().tolist() == [True, True]


def test_label_outside_allowed_set(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "ts,user,price,tags,clicked\n1,a,1,x,0\n2,b,1,x,2\n")

    with pytest.raises(DataError) as caught:
        read_all(toy_spec(path))

    message = str(caught.value)
    assert "log.csv, line 3" in message
    assert "label column clicked has the value '2'" in message
    assert "allowed values are ['1', '0']" in message


def test_label_outside_valid_range(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "ts,user,price,tags,clicked\n1,a,1,x,7\n")
    spec = toy_spec(path, label=LabelSpec(column="clicked", threshold=4, valid_range=(1, 5)))

    with pytest.raises(DataError, match=r"line 2: label column clicked has the value '7', outside"):
        read_all(spec)


def test_missing_label(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "ts,user,price,tags,clicked\n1,a,1,x,\n")

    with pytest.raises(DataError, match=r"line 2: label column clicked is empty"):
        read_all(toy_spec(path))


def test_unparseable_timestamp(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "ts,user,price,tags,clicked\n1,a,1,x,0\nyesterday,b,1,x,0\n")

    with pytest.raises(DataError) as caught:
        read_all(toy_spec(path))

    message = str(caught.value)
    assert "log.csv, line 3" in message
    assert "timestamp column ts has the value 'yesterday'" in message


def test_unparseable_strptime_timestamp(tmp_path: Path) -> None:
    path = write(
        tmp_path, "log.csv", "ts,user,price,tags,clicked\n14102100,a,1,x,0\n14133100,b,1,x,0\n"
    )
    spec = toy_spec(path, timestamp=TimestampSpec(column="ts", format="%y%m%d%H"))

    with pytest.raises(DataError, match=r"line 3: timestamp column ts has the value '14133100'"):
        read_all(spec)


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "")

    with pytest.raises(DataError, match=r"log.csv: the file is empty"):
        read_all(toy_spec(path))


def test_header_only_file(tmp_path: Path) -> None:
    path = write(tmp_path, "log.csv", "ts,user,price,tags,clicked\n")

    with pytest.raises(DataError, match=r"log.csv: the file has a header but no data rows"):
        read_all(toy_spec(path))


def test_non_utf8_bytes(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(b"ts,user,price,tags,clicked\n1,a,1,x,0\n2,caf\xe9,1,x,0\n")

    with pytest.raises(DataError) as caught:
        read_all(toy_spec(path))

    message = str(caught.value)
    assert "log.csv, line 3" in message
    assert "invalid utf-8 byte b'\\xe9'" in message
    assert "byte offset 42" in message


def test_non_utf8_header(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(b"ts,us\xffer,price,tags,clicked\n1,a,1,x,0\n")

    with pytest.raises(DataError, match=r"log.csv, line 1, byte 5: invalid utf-8 byte"):
        read_all(toy_spec(path))


def test_latin1_with_encoding_option(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(b"ts,user,price,tags,clicked\n2,caf\xe9,1,x,0\n")

    frame = read_all(toy_spec(path, encoding="latin-1"))

    assert frame["user"].tolist() == ["café"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"input file .*nothere.csv not found"):
        read_all(toy_spec(tmp_path / "nothere.csv"))


# --- presets on real samples ---------------------------------------------------------------


def test_criteo_sample() -> None:
    path = SHARED_DATA / "criteo_sample" / "criteo_sample_deepctr.csv"
    # The shared sample is comma-separated with a header, unlike Kaggle's train.txt.
    spec = criteo_spec([str(path)], rows_per_day=50).model_copy(
        update={"delimiter": ",", "header": True}
    )

    frame = read_all(spec)

    assert len(frame) == 200
    assert int(frame["label"].sum()) == 49
    assert int(frame["I12"].isna().sum()) == 157
    assert int(frame["C22"].isna().sum()) == 159
    assert frame["I3"].iloc[0] == 260.0
    assert frame["C1"].iloc[0] == "05db9164"
    assert frame["timestamp"].iloc[50] - frame["timestamp"].iloc[0] == 86400


def test_criteo_preset_rejects_comma_sample() -> None:
    path = SHARED_DATA / "criteo_sample" / "criteo_sample_deepctr.csv"

    with pytest.raises(DataError, match=r"set delimiter to ','"):
        read_all(criteo_spec([str(path)]))


def test_avazu_sample() -> None:
    frame = read_all(avazu_spec([str(SHARED_DATA / "avazu_sample" / "avazu_sample_deepctr.csv")]))

    assert len(frame) == 100
    assert int(frame["label"].sum()) == 20
    assert set(frame["timestamp"]) == {1413849600}
    assert "id" not in frame.columns
    assert frame["device_ip"].nunique() == 98
    assert len(frame.columns) == 2 + 21


def test_open_bandit_committed_sample() -> None:
    frame = read_all(open_bandit_spec().resolve_paths(REPO))

    assert len(frame) == 20_000
    assert int(frame["label"].sum()) == 80
    assert frame["item_feature_0"].notna().all()
    assert frame["item_feature_1"].notna().all()
    assert frame["position"].isin(["1", "2", "3"]).all()
    assert frame["timestamp"].iloc[0] == 1574553617


def test_open_bandit_item_context_per_policy() -> None:
    # The item context hashes differ between the bts and random folders.
    spec = open_bandit_spec(
        [
            str(SHARED_DATA / "open_bandit_sample" / policy / "men" / "men.csv.gz")
            for policy in ("bts", "random")
        ]
    )

    frame = read_all(spec)

    assert len(frame) == 20_000
    first_policy = set(frame["item_feature_1"].iloc[:10_000])
    second_policy = set(frame["item_feature_1"].iloc[10_000:])
    assert first_policy.isdisjoint(second_policy)
