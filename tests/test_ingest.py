"""Tests of ingest into daily partitions, the partition readers, and the ingest CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from crossadapt.config.days import day_start_timestamp
from crossadapt.data import ingest as ingest_module
from crossadapt.data import partitions
from crossadapt.data.fetch import MOVIELENS_FILES, RAW_SUBDIR, fetch_movielens_100k
from crossadapt.data.ingest import ingest
from crossadapt.data.presets import movielens_100k_spec
from crossadapt.data.spec import (
    CategoricalColumn,
    DatasetSpec,
    LabelSpec,
    MultiValuedColumn,
    NumericColumn,
    TimestampSpec,
)
from crossadapt.errors import DataError
from crossadapt.storage.hashing import sha256_file
from tasks import cli

REPO = Path(__file__).resolve().parents[1]
DAY1 = day_start_timestamp("2024-01-01")
DAY2 = day_start_timestamp("2024-01-02")
DAY3 = day_start_timestamp("2024-01-03")

# Out of time order across and within days; two rows share DAY2 + 10 (kept in file order).
ROWS = [
    (DAY2 + 10, "u1", 1.0, "a", 1),
    (DAY1 + 50, "u2", 2.0, "b", 0),
    (DAY3 + 5, "u3", None, "", 0),
    (DAY2 + 10, "u4", 4.0, "c;d", 0),
    (DAY1 + 20, "u5", 5.0, "e", 1),
    (DAY2 + 3, "u6", 6.0, "f", 1),
]


def write_log(path: Path, rows=ROWS) -> Path:
    lines = ["ts,user,price,tags,clicked"]
    for ts, user, price, tags, label in rows:
        lines.append(f"{ts},{user},{'' if price is None else price},{tags},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def toy_spec(*paths: Path, chunk_rows: int = 100_000) -> DatasetSpec:
    return DatasetSpec(
        name="toy",
        files=[str(path) for path in paths],
        label=LabelSpec(column="clicked", positive_values=["1"], negative_values=["0"]),
        timestamp=TimestampSpec(column="ts", format="unix_s"),
        categorical=[CategoricalColumn(name="user", source="user")],
        numeric=[NumericColumn(name="price", source="context")],
        multi_valued=[MultiValuedColumn(name="tags", source="item", separator=";")],
        chunk_rows=chunk_rows,
    )


def test_ingest_days_sorted(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    summary = ingest(toy_spec(write_log(tmp_path / "log.csv")), data_dir)

    assert summary.days == 3
    assert summary.rows == 6
    assert summary.positives == 3
    assert (summary.first_day, summary.last_day) == ("2024-01-01", "2024-01-03")
    assert (summary.rows_per_day_min, summary.rows_per_day_max) == (1, 3)
    assert partitions.list_days(data_dir, "toy") == ["2024-01-01", "2024-01-02", "2024-01-03"]

    day2 = partitions.read_day(data_dir, "toy", "2024-01-02")
    assert day2["timestamp"].tolist() == [DAY2 + 3, DAY2 + 10, DAY2 + 10]
    assert day2["user"].tolist() == ["u6", "u1", "u4"]
    assert day2["tags"].tolist() == ["f", "a", "c|d"]
    day3 = partitions.read_day(data_dir, "toy", "2024-01-03")
    assert np.isnan(day3["price"].iloc[0])
    assert pd.isna(day3["tags"].iloc[0])


def test_partition_file_schema(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ingest(toy_spec(write_log(tmp_path / "log.csv")), data_dir)

    schema = pq.read_schema(partitions.day_path(data_dir, "toy", "2024-01-01"))

    assert schema.names == ["timestamp", "label", "user", "price", "tags"]
    assert schema.field("timestamp").type == pa.int64()
    assert schema.field("label").type == pa.int8()
    assert schema.field("user").type == pa.string()
    assert schema.field("price").type == pa.float64()
    assert schema.field("tags").type == pa.string()


def test_manifest_counts_and_hashes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ingest(toy_spec(write_log(tmp_path / "log.csv")), data_dir)

    manifest = partitions.read_manifest(data_dir, "toy")

    assert manifest["rows"] == 6
    assert manifest["positives"] == 3
    assert manifest["days"]["2024-01-01"]["rows"] == 2
    assert manifest["days"]["2024-01-01"]["positives"] == 1
    for day, stats in manifest["days"].items():
        assert stats["sha256"] == sha256_file(partitions.day_path(data_dir, "toy", day))
    assert manifest["spec"]["name"] == "toy"
    assert manifest["columns"]["tags"] == "multi_valued"


def test_streaming_parts_match_single_pass(tmp_path: Path, monkeypatch) -> None:
    log = write_log(tmp_path / "log.csv")
    ingest(toy_spec(log), tmp_path / "whole")
    # Force a flush of part-files after every 2 rows: days are spread over many parts.
    monkeypatch.setattr(ingest_module, "FLUSH_ROWS", 2)

    ingest(toy_spec(log, chunk_rows=2), tmp_path / "streamed")

    for day in ["2024-01-01", "2024-01-02", "2024-01-03"]:
        whole = partitions.day_path(tmp_path / "whole", "toy", day)
        streamed = partitions.day_path(tmp_path / "streamed", "toy", day)
        assert pq.read_table(whole).equals(pq.read_table(streamed))


def test_several_files_in_order(tmp_path: Path) -> None:
    first = write_log(tmp_path / "a.csv", [(DAY1 + 5, "first", 1.0, "x", 0)])
    second = write_log(tmp_path / "b.csv", [(DAY1 + 5, "second", 1.0, "x", 1)])

    ingest(toy_spec(first, second), tmp_path / "data")

    day = partitions.read_day(tmp_path / "data", "toy", "2024-01-01")
    assert day["user"].tolist() == ["first", "second"]


def test_error_leaves_old_partitions(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ingest(toy_spec(write_log(tmp_path / "good.csv")), data_dir)
    before = {p.name: sha256_file(p) for p in partitions.partitions_dir(data_dir, "toy").iterdir()}
    bad = write_log(tmp_path / "bad.csv")
    bad.write_text(bad.read_text() + f"{DAY3},u9,notanumber,x,0\n")

    with pytest.raises(DataError, match="line 8: numeric column price"):
        ingest(toy_spec(bad), data_dir)

    after = {p.name: sha256_file(p) for p in partitions.partitions_dir(data_dir, "toy").iterdir()}
    assert after == before
    leftovers = [p.name for p in (data_dir / "partitions").iterdir() if p.name.startswith(".s")]
    assert leftovers == []


def test_reingest_replaces_days(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ingest(toy_spec(write_log(tmp_path / "log.csv")), data_dir)

    ingest(toy_spec(write_log(tmp_path / "small.csv", ROWS[:1])), data_dir)

    assert partitions.list_days(data_dir, "toy") == ["2024-01-02"]
    assert partitions.read_manifest(data_dir, "toy")["rows"] == 1


def test_read_days_skips_gaps(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rows = [(DAY1 + 1, "a", 1.0, "x", 0), (DAY3 + 1, "b", 1.0, "x", 1)]
    ingest(toy_spec(write_log(tmp_path / "log.csv", rows)), data_dir)

    frame = partitions.read_days(data_dir, "toy", "2024-01-01", "2024-01-03", columns=["user"])

    assert frame["user"].tolist() == ["a", "b"]
    assert list(frame.columns) == ["user"]
    assert partitions.days_in_range(data_dir, "toy", "2024-01-02", "2024-01-09") == ["2024-01-03"]


def test_partition_errors(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ingest(toy_spec(write_log(tmp_path / "log.csv")), data_dir)

    with pytest.raises(
        DataError, match=r"no partition for day 2024-02-01 .*2024-01-01\.\.2024-01-03"
    ):
        partitions.read_day(data_dir, "toy", "2024-02-01")
    with pytest.raises(DataError, match="no partition of dataset 'toy' between 2023-01-01"):
        partitions.read_days(data_dir, "toy", "2023-01-01", "2023-12-31")
    with pytest.raises(DataError, match="YYYY-MM-DD"):
        partitions.read_day(data_dir, "toy", "2024-1-1")
    with pytest.raises(DataError, match=r"dataset name '\.\./toy' is invalid"):
        partitions.list_days(data_dir, "../toy")
    with pytest.raises(DataError, match="run `crossadapt ingest` first"):
        partitions.list_days(data_dir, "other")
    with pytest.raises(DataError, match=r"no column.* missing_column"):
        partitions.read_day(data_dir, "toy", "2024-01-01", columns=["missing_column"])


def test_ingest_rejects_unsafe_dataset_name(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"dataset name '\.\./escape' is invalid"):
        ingest(toy_spec(write_log(tmp_path / "log.csv")), tmp_path / "data", "../escape")


# --- MovieLens-100K ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def movielens_dir() -> Path:
    folder = REPO / "data" / RAW_SUBDIR
    if all((folder / name).is_file() for name in MOVIELENS_FILES):
        return folder
    try:
        return fetch_movielens_100k(REPO / "data", quiet=True).folder
    except DataError as error:
        pytest.skip(f"{folder} is missing and fetching MovieLens-100K failed: {error}")


def test_movielens_ingest(movielens_dir: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    summary = ingest(movielens_100k_spec(movielens_dir), data_dir)

    assert summary.rows == 100_000
    assert summary.days == 213
    assert summary.positives == 55_375
    assert (summary.first_day, summary.last_day) == ("1997-09-20", "1998-04-22")
    assert (summary.rows_per_day_min, summary.rows_per_day_max) == (1, 3550)
    assert summary.rows_per_day_median == 336

    frame = partitions.read_days(data_dir, "movielens-100k", "1997-09-01", "1998-04-30")
    assert frame["timestamp"].is_monotonic_increasing
    assert frame["user_id"].nunique() == 943
    assert frame["item_id"].nunique() == 1682
    assert frame[["gender", "occupation", "zip_prefix", "age", "genres"]].notna().all().all()
    assert frame["zip_prefix"].str.len().max() == 2
    assert frame["genres"].str.count(r"\|").max() == 5
    assert set(frame["gender"]) == {"M", "F"}


# --- CLI ---------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder whose params.yaml ingests a generic toy log."""
    write_log(tmp_path / "log.csv")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"]["name"] = "generic"
    params["dataset"]["generic"] = json.loads(toy_spec(Path("log.csv")).model_dump_json())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def test_cli_ingest(project: Path, capsys) -> None:
    status = cli.main(["ingest", "--params", str(project / "params.yaml")])

    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 6
    assert summary["days"] == 3
    assert partitions.list_days(project / "data", "toy") == [
        "2024-01-01",
        "2024-01-02",
        "2024-01-03",
    ]


def test_cli_user_error_exit_2(project: Path, capsys) -> None:
    (project / "log.csv").write_text("ts;user;price;tags;clicked\n1;a;1;x;0\n")

    status = cli.main(["ingest", "--params", str(project / "params.yaml")])

    err = capsys.readouterr().err
    assert status == 2
    assert "error: " in err
    assert "set delimiter to ';'" in err
    assert "Traceback" not in err


def test_cli_set_override(project: Path, capsys) -> None:
    status = cli.main(
        ["ingest", "--params", str(project / "params.yaml"), "--set", "paths.data_dir=../out"]
    )

    assert status == 2
    assert "paths.data_dir = '../out'" in capsys.readouterr().err


def test_module_entry_point(project: Path) -> None:
    shutil.rmtree(project / "data", ignore_errors=True)

    completed = subprocess.run(
        [sys.executable, "-m", "tasks.ingest", "--params", "params.yaml"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["rows"] == 6
    assert " INFO crossadapt.data.ingest: ingest toy: 6 rows" in completed.stderr
