"""Bad input through the CLI: broken log files, bad online days, invalid parameters, damaged
checkpoints. Each must exit 2 with a message naming the problem and the fix, and change nothing.
"""

from __future__ import annotations

import gzip
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import reliability_project as rp
import yaml

from crossadapt.config.days import day_start_timestamp
from crossadapt.data.partitions import list_days, read_day
from tasks import cli

DAY = rp.ONLINE_DAYS[0]
FIRST_ROW_TIME = day_start_timestamp("2024-01-01")


def run_cli(capsys: pytest.CaptureFixture[str], params: Path, *argv: str) -> tuple[int, str]:
    """Run one CLI subcommand in this process; return its exit status and stderr."""
    capsys.readouterr()
    status = cli.main([argv[0], "--params", str(params), *argv[1:]])
    return status, capsys.readouterr().err


def error_message(stderr: str) -> str:
    """The text after ``error: `` (the CLI's user-error line and what follows it)."""
    assert "error: " in stderr, stderr[-2000:]
    return stderr[stderr.index("error: ") :]


def assert_user_error(status: int, stderr: str, fragments: list[str]) -> str:
    assert status == 2, stderr[-2000:]
    assert "Traceback" not in stderr
    message = error_message(stderr)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def project_state(project: Path) -> dict[str, str]:
    """Hashes of every output file (data/ and artifacts/), without the lock files."""
    return {
        path: digest
        for path, digest in rp.file_hashes(project / "data", project / "artifacts").items()
        if ".lock" not in Path(path).name
    }


# --- Log files through `crossadapt ingest` of a generic dataset -----------------------------


@pytest.fixture
def shop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A generic-dataset project with a valid log already ingested; returns its params.yaml."""
    rp.write_csv(tmp_path / "log.csv", rp.generic_rows())
    params = rp.generic_params(tmp_path)
    status, stderr = run_cli(capsys, params, "ingest")
    assert status == 0, stderr
    return params


def set_spec(params: Path, **changes: object) -> None:
    content = yaml.safe_load(params.read_text())
    content["dataset"]["generic"].update(changes)
    params.write_text(yaml.safe_dump(content, sort_keys=False))


def rows_with(line: int, column: str, value: str) -> list[list[str]]:
    """Valid rows with ``column`` of file line ``line`` (header = line 1) set to ``value``."""
    rows = rp.generic_rows()
    rows[line - 2][rp.GENERIC_COLUMNS.index(column)] = value
    return rows


def csv_text(rows: list[list[str]], header: list[str] = rp.GENERIC_COLUMNS, sep: str = ",") -> str:
    return "\n".join([sep.join(header), *(sep.join(row) for row in rows)]) + "\n"


def write_truncated_gzip(folder: Path, params: Path) -> None:
    packed = gzip.compress(csv_text(rp.generic_rows(days=2, rows_per_day=400)).encode())
    (folder / "log.csv.gz").write_bytes(packed[: len(packed) * 6 // 10])
    set_spec(params, files=["log.csv.gz"])


def write_truncated_parquet(folder: Path, params: Path) -> None:
    frame = pd.DataFrame(rp.generic_rows(), columns=rp.GENERIC_COLUMNS)
    frame.to_parquet(folder / "log.parquet", index=False)
    data = (folder / "log.parquet").read_bytes()
    (folder / "log.parquet").write_bytes(data[: len(data) // 2])
    set_spec(params, files=["log.parquet"])


def write_text(text: str) -> Callable[[Path, Path], None]:
    def write(folder: Path, params: Path) -> None:
        (folder / "log.csv").write_text(text, encoding="utf-8")

    return write


def write_bytes(data: bytes) -> Callable[[Path, Path], None]:
    def write(folder: Path, params: Path) -> None:
        (folder / "log.csv").write_bytes(data)

    return write


def spec_change(**changes: object) -> Callable[[Path, Path], None]:
    def write(folder: Path, params: Path) -> None:
        set_spec(params, **changes)

    return write


MALFORMED = csv_text(rp.generic_rows())
MALFORMED_LINES = MALFORMED.splitlines()
MALFORMED_LINES[2] += ",extra"
NON_UTF8 = csv_text(rows_with(3, "user", "u\udcff")).encode("utf-8", "surrogateescape")

LOG_FILE_CASES = {
    "truncated gzip": (
        write_truncated_gzip,
        ["log.csv.gz", "truncated or corrupt gzip file", "download or copy it again"],
    ),
    "truncated parquet": (
        write_truncated_parquet,
        ["log.parquet", "not a readable parquet file", "write or copy it again"],
    ),
    "malformed row": (
        write_text("\n".join(MALFORMED_LINES) + "\n"),
        ["log.csv", "malformed CSV", "line 3", "fix or remove that line"],
    ),
    "wrong delimiter": (
        write_text(csv_text(rp.generic_rows(), sep=";")),
        ["log.csv", "delimiter ','", "set delimiter to ';'"],
    ),
    "missing column": (
        write_text(
            csv_text(
                [row[:3] + row[4:] for row in rp.generic_rows()], ["ts", "user", "item", "clicked"]
            )
        ),
        [
            "log.csv",
            "missing column(s) price",
            "found ts, user, item, clicked",
            "Fix the column names",
        ],
    ),
    "renamed column": (
        write_text(csv_text(rp.generic_rows(), ["ts", "user", "item", "cost", "clicked"])),
        ["missing column(s) price", "found ts, user, item, cost, clicked", "rename"],
    ),
    "duplicated column": (
        write_text(
            csv_text([[*row, "u9"] for row in rp.generic_rows()], [*rp.GENERIC_COLUMNS, "user"])
        ),
        ["log.csv", "columns ['user'] appear more than once"],
    ),
    "text in numeric column": (
        write_text(csv_text(rows_with(3, "price", "abc"))),
        [
            "log.csv, line 3",
            "numeric column price has the text 'abc'",
            "declare the column categorical",
        ],
    ),
    "label 2": (
        write_text(csv_text(rows_with(4, "clicked", "2"))),
        [
            "log.csv, line 4",
            "label column clicked has the value '2'",
            "allowed values are ['1', '0']",
        ],
    ),
    "label -1": (
        write_text(csv_text(rows_with(4, "clicked", "-1"))),
        ["log.csv, line 4", "has the value '-1'", "allowed values are ['1', '0']"],
    ),
    "label yes": (
        write_text(csv_text(rows_with(5, "clicked", "yes"))),
        ["log.csv, line 5", "has the value 'yes'", "allowed values are ['1', '0']"],
    ),
    "label NaN": (
        write_text(csv_text(rows_with(3, "clicked", "NaN"))),
        ["log.csv, line 3", "label column clicked is empty", "every row needs a label"],
    ),
    "row with too few fields": (
        write_text(csv_text([*rp.generic_rows()[:2], rp.generic_rows()[2][:2]])),
        ["log.csv, line 4", "label column clicked is empty"],
    ),
    "unparseable timestamp": (
        write_text(csv_text(rows_with(3, "ts", "yesterday"))),
        ["log.csv, line 3", "timestamp column ts has the value 'yesterday'", "timestamp.format"],
    ),
    "empty timestamp": (
        write_text(csv_text(rows_with(6, "ts", ""))),
        ["log.csv, line 6", "timestamp column ts is empty", "every row needs a time"],
    ),
    "non-UTF-8 bytes": (
        write_bytes(NON_UTF8),
        ["log.csv, line 3", "invalid utf-8 byte b'\\xff'", "convert the file to utf-8"],
    ),
    "empty file": (write_text(""), ["log.csv", "the file is empty"]),
    "header only": (write_text(csv_text([])), ["log.csv", "has a header but no data rows"]),
    "missing file": (
        spec_change(files=["exports/missing.csv"]),
        ["exports/missing.csv not found", "check the dataset paths in params.yaml"],
    ),
}


@pytest.mark.parametrize("case", list(LOG_FILE_CASES))
def test_ingest_rejects_bad_log(case: str, shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_input, fragments = LOG_FILE_CASES[case]
    before = project_state(shop.parent)
    write_input(shop.parent, shop)

    status, stderr = run_cli(capsys, shop, "ingest")

    assert_user_error(status, stderr, fragments)
    assert project_state(shop.parent) == before
    assert not list((shop.parent / "data" / "partitions").glob(".staging-*"))


def test_ingest_subprocess_exit_2_no_traceback(tmp_path: Path) -> None:
    rp.write_csv(tmp_path / "log.csv", rows_with(3, "clicked", "yes"))
    rp.generic_params(tmp_path)

    result = rp.run_step(tmp_path, "ingest")

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.error_line.startswith("error: ")
    assert "log.csv, line 3: label column clicked has the value 'yes'" in result.error_line
    assert not (tmp_path / "data" / "partitions" / "shop").exists()


def test_ingest_ignores_extra_column(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [[*row, f"s{index}"] for index, row in enumerate(rp.generic_rows())]
    rp.write_csv(shop.parent / "log.csv", rows, [*rp.GENERIC_COLUMNS, "session"])

    status, stderr = run_cli(capsys, shop, "ingest")

    assert status == 0, stderr
    frame = read_day(shop.parent / "data", "shop", "2024-01-01")
    assert list(frame.columns) == ["timestamp", "label", "user", "item", "price"]
    assert len(frame) == 4


def test_ingest_keeps_very_long_string(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    long_value = "u" * 200_000
    rp.write_csv(shop.parent / "log.csv", rows_with(2, "user", long_value))

    status, stderr = run_cli(capsys, shop, "ingest")

    assert status == 0, stderr
    frame = read_day(shop.parent / "data", "shop", "2024-01-01")
    assert frame["user"].iloc[0] == long_value


def test_reingest_same_delivery_is_idempotent(
    shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    partitions = shop.parent / "data" / "partitions" / "shop"
    before = rp.file_hashes(partitions)

    status, stderr = run_cli(capsys, shop, "ingest")

    assert status == 0, stderr
    assert rp.file_hashes(partitions) == before
    assert list_days(shop.parent / "data", "shop") == ["2024-01-01", "2024-01-02"]


def test_ingest_all_null_column_accepted(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = rp.generic_rows()
    for row in rows:
        row[rp.GENERIC_COLUMNS.index("price")] = ""
    rp.write_csv(shop.parent / "log.csv", rows)

    status, stderr = run_cli(capsys, shop, "ingest")

    assert status == 0, stderr
    frame = read_day(shop.parent / "data", "shop", "2024-01-01")
    assert frame["price"].isna().all()


def test_validate_rejects_all_null_column(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = rp.generic_rows()
    for row in rows:
        row[rp.GENERIC_COLUMNS.index("user")] = ""
    rp.write_csv(shop.parent / "log.csv", rows)
    assert run_cli(capsys, shop, "ingest")[0] == 0

    status, stderr = run_cli(capsys, shop, "validate")

    assert_user_error(status, stderr, ["2024-01-01", "'user'"])


def test_validate_rejects_infinite_value(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rp.write_csv(shop.parent / "log.csv", rows_with(3, "price", "inf"))
    assert run_cli(capsys, shop, "ingest")[0] == 0

    status, stderr = run_cli(capsys, shop, "validate")

    assert_user_error(
        status,
        stderr,
        ["1 of 2 days failed validation", "2024-01-01", "column 'price'", "remove infinite values"],
    )
    quarantine = shop.parent / "data" / "quarantine" / "shop" / "2024-01-01"
    assert (quarantine / "2024-01-01.parquet").is_file()
    assert list_days(shop.parent / "data", "shop") == ["2024-01-02"]


def test_ingest_rejects_file_listed_twice(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set_spec(shop, files=["log.csv", "log.csv"])

    status, stderr = run_cli(capsys, shop, "ingest")

    assert_user_error(status, stderr, ["log.csv", "more than once"])


def test_ingest_rejects_future_timestamp(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    future = str(day_start_timestamp("2999-01-01"))
    rp.write_csv(shop.parent / "log.csv", rows_with(3, "ts", future))

    status, stderr = run_cli(capsys, shop, "ingest")

    assert_user_error(status, stderr, ["log.csv, line 3", future])


def test_non_negative_column_rejected_by_raw_suite(tmp_path: Path) -> None:
    # NOTE: a generic spec cannot declare a column non-negative and no step passes
    # FeatureColumns.non_negative, so this check runs at the library level only.
    from crossadapt.monitoring.validation import FeatureColumns, validate_raw_day

    frame = pd.DataFrame(
        {
            "timestamp": np.array([FIRST_ROW_TIME, FIRST_ROW_TIME + 5], dtype=np.int64),
            "label": np.array([0, 1], dtype=np.int8),
            "user": ["u1", "u2"],
            "clicks": [3.0, -2.0],
        }
    )
    columns = FeatureColumns(categorical=("user",), numeric=("clicks",), non_negative=("clicks",))

    result = validate_raw_day(frame, "2024-01-01", columns, out_dir=None)

    assert not result.success
    assert [failure.column for failure in result.failures] == ["clicks"]
    assert "-2.0" in result.failures[0].observed
    assert "negative counts" in result.failures[0].fix


# --- One bad online day through `crossadapt online-day` --------------------------------------


@pytest.fixture
def offline(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """A copy of the session's offline project (teacher and distilled student ready)."""
    return rp.built_project("offline", tmp_path_factory.getbasetemp(), tmp_path / "project")


def partition_of(params: Path, day: str = DAY) -> Path:
    return params.parent / "data" / "partitions" / rp.DATASET / f"{day}.parquet"


def rewrite_day(params: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    path = partition_of(params)
    pd.read_parquet(path).pipe(change).to_parquet(path, index=False)


def with_value(column: str, value: object, row: int = 7) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        values = frame[column].astype(
            object if isinstance(value, str) or value is None else frame[column].dtype
        )
        values.iloc[row] = value
        frame[column] = values
        return frame

    return change


def unseen_ids(frame: pd.DataFrame) -> pd.DataFrame:
    for column in ("c0", "c1", "c2", "c3", "c4"):
        frame[column] = "unseen-" + frame[column].astype(str)
    return frame


def other_day_row(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[3, "timestamp"] = day_start_timestamp("2024-01-02") + 100
    return frame


def future_row(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[3, "timestamp"] = day_start_timestamp("2100-01-01")
    return frame


def numeric_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    frame["n0"] = frame["n0"].map(lambda value: f"{value:.3f}")
    frame.loc[5, "n0"] = "abc"
    return frame


DAY_CASES = {
    "empty day": (
        lambda frame: frame.iloc[:0],
        ["expect_table_row_count_to_be_between", "observed 0", "validation.min_rows"],
    ),
    "label 2": (
        with_value("label", 2),
        ["column 'label'", "expect_column_values_to_be_in_set", "map labels to 0/1"],
    ),
    "row of another day": (
        other_day_row,
        ["column 'timestamp'", "2024-01-02", "only rows of its UTC day"],
    ),
    "row in the future": (
        future_row,
        ["column 'timestamp'", "2100-01-01", "only rows of its UTC day"],
    ),
    "infinite numeric value": (
        with_value("n0", math.inf),
        ["column 'n0'", "remove infinite values"],
    ),
    "missing column": (lambda frame: frame.drop(columns=["c3"]), ["column 'c3'", "column missing"]),
    "text in numeric column": (
        numeric_as_text,
        ["column 'n0'", "expect_column_values_to_be_in_type_list"],
    ),
    "every id unseen": (
        unseen_ids,
        [
            "encoded_day suite",
            "column 'c0'",
            "oov_rate=1.0000",
            "(max 0.95)",
            "validation.max_oov_rate",
        ],
    ),
}


@pytest.mark.parametrize("case", list(DAY_CASES))
def test_online_day_quarantines_bad_day(
    case: str, offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    change, fragments = DAY_CASES[case]
    rewrite_day(offline, change)
    bad_partition = partition_of(offline).read_bytes()
    before = project_state(offline.parent)

    status, stderr = run_cli(capsys, offline, "online-day", "--day", DAY)

    message = assert_user_error(status, stderr, [f"day {DAY} failed the", *fragments])
    quarantine = offline.parent / "data" / "quarantine" / rp.DATASET / DAY
    assert str(quarantine) in message
    assert (quarantine / f"{DAY}.parquet").read_bytes() == bad_partition
    assert not partition_of(offline).exists()
    online = offline.parent / "artifacts" / "online"
    assert not (online / DAY).exists()
    assert not (online / "ledger.json").exists()
    assert not (online / ".checks" / DAY / "check.json").exists()
    assert not list(online.glob(".staging-*"))
    after = project_state(offline.parent)
    changed = {
        path
        for path in set(before) ^ set(after)
        if "/quarantine/" not in path and "/online/.checks/" not in path
    }
    assert changed == {str(partition_of(offline))}


def test_online_day_row_after_2262(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def far_future_row(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[3, "timestamp"] = day_start_timestamp("2999-01-01")
        return frame

    rewrite_day(offline, far_future_row)

    status, stderr = run_cli(capsys, offline, "online-day", "--day", DAY)

    assert_user_error(status, stderr, [f"day {DAY} failed the", "column 'timestamp'"])


def test_online_day_missing_partition(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    partition_of(offline).unlink()

    status, stderr = run_cli(capsys, offline, "online-day", "--day", DAY)

    assert_user_error(
        status,
        stderr,
        [
            f"no partition for day {DAY}",
            "days available: 2024-01-01..2024-01-08 (7 days)",
            "ingest",
        ],
    )
    assert not (offline.parent / "artifacts" / "online" / "ledger.json").exists()


def test_online_day_out_of_order(offline: Path) -> None:
    later = rp.ONLINE_DAYS[1]

    result = rp.run_step(offline.parent, "online_day", "--day", later)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"error: day {later}: the teacher checkpoint it starts from" in result.error_line
    assert f"online/{DAY}/teacher.pt, does not exist" in result.error_line
    assert "apply the days before it first" in result.error_line
    assert not (offline.parent / "artifacts" / "online" / later).exists()


def test_online_day_not_in_split(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, stderr = run_cli(capsys, offline, "online-day", "--day", "2024-01-02")

    assert_user_error(
        status, stderr, ["day '2024-01-02' is not an online day", "2024-01-06..2024-01-07"]
    )


def test_single_class_day_is_applied(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rewrite_day(offline, lambda frame: frame.assign(label=np.zeros(len(frame), dtype=np.int8)))

    status, stderr = run_cli(capsys, offline, "online-day", "--day", DAY)

    assert status == 0, stderr[-2000:]
    metrics = json.loads(
        (offline.parent / "artifacts" / "online" / DAY / "metrics.json").read_text()
    )
    assert metrics["before_training"]["positives"] == 0
    assert metrics["before_training"]["teacher_auc"] is None
    assert metrics["before_training"]["rows"] == 1500


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name}")


def test_single_class_day_files_are_strict_json(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rewrite_day(offline, lambda frame: frame.assign(label=np.zeros(len(frame), dtype=np.int8)))
    assert run_cli(capsys, offline, "online-day", "--day", DAY)[0] == 0

    online = offline.parent / "artifacts" / "online"
    for path in (online / "ledger.json", online / DAY / "summary.json"):
        json.loads(path.read_text(), parse_constant=_reject_constant)


# --- Parameters ------------------------------------------------------------------------------

PARAMS_CASES = {
    "unknown architecture": (
        "teacher.arch=resnet",
        ["teacher.arch = 'resnet'", "'dnn'", "'dcnv2'", "'finalmlp'"],
    ),
    "dim 0": (
        "student.embedding_dim=0",
        ["student.embedding_dim = 0", "greater than or equal to 1"],
    ),
    "negative dim": (
        "teacher.embedding_dim=-4",
        ["teacher.embedding_dim = -4", "greater than or equal to 1"],
    ),
    "sample ratio 0": ("sampling.ratio=0", ["sampling.ratio = 0", "greater than 0"]),
    "sample ratio 1.5": ("sampling.ratio=1.5", ["sampling.ratio = 1.5", "less than or equal to 1"]),
    "temperature 0": ("distill.temperature=0", ["distill.temperature = 0", "greater than 0"]),
    "online temperature 0": ("online.temperature=0", ["online.temperature = 0", "greater than 0"]),
    "alpha 1.5": ("distill.alpha=1.5", ["distill.alpha = 1.5", "less than or equal to 1"]),
    "alpha -0.1": ("online.alpha=-0.1", ["online.alpha = -0.1", "greater than or equal to 0"]),
    "split out of order": (
        "split.online_start=2024-01-03",
        [
            "split dates out of order",
            "retained_start (2024-01-04) must be < online_start (2024-01-03)",
        ],
    ),
    "unknown key": (
        "teacher.depth=3",
        ["teacher.depth: unknown key", "allowed keys here: arch, embedding_dim"],
    ),
    "unknown strategy": (
        "sampling.strategy=random",
        ["sampling.strategy = 'random'", "'uniform'", "'balanced'"],
    ),
}


@pytest.mark.parametrize("case", list(PARAMS_CASES))
def test_invalid_parameter_exit_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    override, fragments = PARAMS_CASES[case]
    params = rp.synthetic_params(tmp_path)

    status, stderr = run_cli(capsys, params, "train-teacher", "--set", override)

    message = assert_user_error(status, stderr, [f"invalid parameters in {params}", *fragments])
    assert "Fix these values in" in message
    assert not (tmp_path / "artifacts").exists()
    assert not (tmp_path / "data").exists()


def test_invalid_parameter_subprocess(tmp_path: Path) -> None:
    content = yaml.safe_load(rp.synthetic_params(tmp_path).read_text())
    content["distill"]["temperature"] = 0
    rp.write_params(tmp_path, content)

    result = rp.run_step(tmp_path, "distill")

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "distill.temperature = 0: Input should be greater than 0" in result.error_line


def test_split_outside_the_data(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = project_state(offline.parent)
    split = [
        "split.history_start=2023-01-01",
        "split.retained_start=2023-06-01",
        "split.online_start=2023-07-01",
        "split.online_end=2023-07-02",
        "split.test_start=2023-07-03",
        "split.test_end=2023-07-03",
    ]
    argv = [item for override in split for item in ("--set", override)]

    status, stderr = run_cli(capsys, offline, "train-teacher", *argv)

    assert_user_error(
        status,
        stderr,
        [
            "no partition of dataset 'synthetic' between 2023-01-01 and 2023-05-31",
            "days available: 2024-01-01..2024-01-08 (8 days)",
            "Fix the split dates in params.yaml",
        ],
    )
    assert project_state(offline.parent) == before


# --- Checkpoints -----------------------------------------------------------------------------


def teacher_checkpoint(params: Path) -> Path:
    return params.parent / "artifacts" / "teacher" / "teacher.pt"


def test_truncated_checkpoint(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = teacher_checkpoint(offline)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    before = project_state(offline.parent)

    status, stderr = run_cli(capsys, offline, "sample")

    assert_user_error(
        status, stderr, [f"checkpoint {path} is truncated or corrupt", "Re-create it"]
    )
    assert project_state(offline.parent) == before


def test_checkpoint_of_other_format_version(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    path = teacher_checkpoint(offline)
    content = torch.load(path, weights_only=True)
    content["format_version"] = 2
    torch.save(content, path)
    before = project_state(offline.parent)

    status, stderr = run_cli(capsys, offline, "online-day", "--day", DAY)

    assert_user_error(
        status, stderr, [f"checkpoint {path} has format_version 2", "reads format_version 1"]
    )
    assert project_state(offline.parent) == before


def test_checkpoint_of_other_dataset(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    path = teacher_checkpoint(offline)
    content = torch.load(path, weights_only=True)
    content["schema"] = {**content["schema"], "dataset": "shop"}
    for field in content["schema"]["fields"]:
        field["name"] = "shop_" + field["name"]
    content["state_dict"] = {
        key.replace("tables.", "tables.shop_"): value
        for key, value in content["state_dict"].items()
    }
    torch.save(content, path)
    before = project_state(offline.parent)

    status, stderr = run_cli(capsys, offline, "sample")

    assert_user_error(
        status, stderr, ["data lacks columns", "'shop_c0'", "dataset 'shop'", "refit schema.json"]
    )
    assert project_state(offline.parent) == before


def test_online_day_rejects_swapped_roles(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    student = offline.parent / "artifacts" / "distill" / "student.pt"
    shutil.copy2(teacher_checkpoint(offline), student)

    status, stderr = run_cli(capsys, offline, "online-day", "--day", DAY)

    assert_user_error(
        status, stderr, [f"{student} contains a teacher", "where the student is expected"]
    )
    assert not (offline.parent / "artifacts" / "online" / DAY).exists()
    assert not (offline.parent / "artifacts" / "online" / "ledger.json").exists()


def test_validate_rejects_split_without_data(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, stderr = run_cli(
        capsys,
        offline,
        "validate",
        "--set",
        "split.history_start=2030-01-01",
        "--set",
        "split.retained_start=2030-01-02",
        "--set",
        "split.online_start=2030-01-03",
        "--set",
        "split.online_end=2030-01-03",
        "--set",
        "split.test_start=2030-01-04",
        "--set",
        "split.test_end=2030-01-04",
    )

    assert_user_error(status, stderr, ["no day partition", "2030-01-01..2030-01-04"])


def test_missing_checkpoint(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(offline.parent / "artifacts" / "transfer")

    status, stderr = run_cli(capsys, offline, "distill")

    assert_user_error(status, stderr, ["student_init.pt not found", "run the step that writes it"])
