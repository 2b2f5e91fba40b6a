"""Chunked readers of CSV/TSV (optionally gzip) and parquet logs.

Errors name the file, line, column and value. ``read_log`` turns a DatasetSpec's files into
typed frames.
"""

from __future__ import annotations

import csv
import gzip
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import numpy as np
import pandas as pd

from crossadapt.data import columns as column_parsers
from crossadapt.data.spec import DIR_PLACEHOLDER, DatasetSpec, SideTableSpec, _TableFormat
from crossadapt.errors import DataError

logger = logging.getLogger(__name__)

PARQUET_SUFFIXES = (".parquet", ".pq")
CANDIDATE_DELIMITERS = (",", "\t", ";", "|")
# Cap on cells (rows x columns) per chunk: wide files get shorter chunks.
MAX_CHUNK_CELLS = 4_000_000
_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


@dataclass(frozen=True)
class RawChunk:
    """Rows of one file with the spec's column names, before type conversion.

    ``positions`` contains the 1-based line number (CSV, counting the header) or row number
    (parquet) of every row, so errors can point at the input.
    """

    frame: pd.DataFrame
    path: Path
    positions: np.ndarray
    unit: Literal["line", "row"]

    def locate(self, index: int) -> str:
        """``<file>, line <n>`` of the row at positional ``index``."""
        return f"{self.path}, {self.unit} {int(self.positions[index])}"


def file_format(path: Path, table: _TableFormat) -> Literal["csv", "parquet"]:
    """``csv`` or ``parquet``: the table's format, or inferred from the file suffix."""
    if table.format != "auto":
        return table.format
    return "parquet" if path.suffix.lower() in PARQUET_SUFFIXES else "csv"


def iter_table_chunks(
    path: str | Path, table: _TableFormat, required: list[str], chunk_rows: int
) -> Iterator[RawChunk]:
    """Yield chunks of ``path`` holding the ``required`` columns (after ``table.rename``).

    Raises DataError for a missing, empty, truncated or malformed file, a wrong delimiter,
    missing columns and bytes that are not valid in ``table.encoding``.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"input file {file} not found: check the dataset paths in params.yaml")
    if file_format(file, table) == "parquet":
        yield from _iter_parquet(file, table, required, chunk_rows)
    else:
        yield from _iter_csv(file, table, required, chunk_rows)


def read_table(path: str | Path, table: _TableFormat, required: list[str]) -> RawChunk:
    """Read a whole (small) table, for example a side table, as one chunk."""
    chunks = list(iter_table_chunks(path, table, required, chunk_rows=1_000_000))
    frame = pd.concat([chunk.frame for chunk in chunks], ignore_index=True)
    positions = np.concatenate([chunk.positions for chunk in chunks])
    return RawChunk(frame, chunks[0].path, positions, chunks[0].unit)


def read_log(spec: DatasetSpec) -> Iterator[pd.DataFrame]:
    """Yield typed frames of every file of ``spec``, in file order then row order.

    Columns: ``timestamp`` (int64, Unix s), ``label`` (int8), then the features in
    ``spec.features()`` order (categorical and multi-valued as str or None, numeric as
    float64), with side tables joined.
    """
    side_cache: dict[Path, pd.DataFrame] = {}
    row_offset = 0
    feature_names = [feature.name for feature in spec.features()]

    for name in spec.files:
        path = Path(name)
        side_frames = {
            table.name: _side_frame(spec, table, _side_path(table, path), side_cache)
            for table in spec.side_tables
        }
        unmatched = dict.fromkeys(side_frames, 0)
        file_rows = 0

        for chunk in iter_table_chunks(path, spec, spec.main_columns(), spec.chunk_rows):
            frame = column_parsers.convert_main(chunk, spec, row_offset)
            for table in spec.side_tables:
                keys = column_parsers.parse_categorical(chunk.frame[table.main_key_column], None)
                side = side_frames[table.name]
                joined = side.reindex(keys.to_numpy())
                unmatched[table.name] += int((~keys.isin(side.index)).sum())
                for column in side.columns:
                    values = joined[column]
                    if values.dtype == object:
                        values = values.where(values.notna(), None)
                    frame[column] = values.to_numpy()
            row_offset += len(frame)
            file_rows += len(frame)
            yield frame[["timestamp", "label", *feature_names]]

        for table_name, count in unmatched.items():
            if count:
                logger.warning(
                    "%d of %d rows of %s have no match in side table %s; their %s features "
                    "are null",
                    count,
                    file_rows,
                    path,
                    table_name,
                    table_name,
                )


def _side_path(table: SideTableSpec, main_file: Path) -> Path:
    if table.path.startswith(DIR_PLACEHOLDER):
        relative = table.path[len(DIR_PLACEHOLDER) :].lstrip("/\\")
        return main_file.parent / relative
    return Path(table.path)


def _side_frame(
    spec: DatasetSpec, table: SideTableSpec, path: Path, cache: dict[Path, pd.DataFrame]
) -> pd.DataFrame:
    # Converted features of one side table, indexed by the key as a string; read once per path.
    if path in cache:
        return cache[path]
    chunk = read_table(path, table, spec.side_columns(table.name))
    keys = column_parsers.parse_categorical(chunk.frame[table.key], None)

    missing = keys.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"{chunk.locate(int(np.argmax(missing)))}: key column {table.key} of side table "
            f"{table.name} is empty; every row needs a key"
        )
    duplicated = keys.duplicated().to_numpy()
    if duplicated.any():
        index = int(np.argmax(duplicated))
        raise DataError(
            f"{chunk.locate(index)}: key {keys.iloc[index]!r} of side table {table.name} "
            f"appears more than once in column {table.key}; keys must be unique"
        )

    features = [f for f in spec.features() if f.table == table.name]
    frame = column_parsers.convert_features(chunk, features)
    frame.index = pd.Index(keys.to_numpy(), name=table.key)
    cache[path] = frame
    logger.info("side table %s: %d rows from %s", table.name, len(frame), path)
    return frame


def _open_binary(path: Path) -> IO[bytes]:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _iter_csv(
    path: Path, table: _TableFormat, required: list[str], chunk_rows: int
) -> Iterator[RawChunk]:
    names = _csv_header(path, table, required)
    missing = [column for column in required if column not in names]
    if missing:
        raise DataError(_missing_columns_message(path, missing, required, names))
    chunk_rows = max(1, min(chunk_rows, MAX_CHUNK_CELLS // max(len(names), 1)))
    first_line = 2 if table.header else 1

    # NOTE: the C parser rejects rows with too many fields but pads rows with too few
    # fields with nulls. Such rows fail only if a required value is then missing.
    # Line numbers assume that no quoted field spans several lines.
    rows = 0
    try:
        # The reader parses its first block on construction, so errors can start here.
        reader = pd.read_csv(
            path,
            sep=table.delimiter,
            header=0 if table.header else None,
            names=names,
            index_col=False,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
            encoding=table.encoding,
            encoding_errors="strict",
            chunksize=chunk_rows,
        )
        with reader:
            for frame in reader:
                positions = first_line + rows + np.arange(len(frame))
                rows += len(frame)
                selected = frame[required]
                blank = selected.isna().all(axis=1).to_numpy()
                if blank.any():
                    logger.debug("%s: skipped %d blank lines", path, int(blank.sum()))
                    selected = selected.loc[~blank].reset_index(drop=True)
                    positions = positions[~blank]
                if len(selected):
                    yield RawChunk(selected, path, positions, "line")
    except pd.errors.ParserError as error:
        raise DataError(
            f"{path}: malformed CSV ({error}); fix or remove that line, or check the delimiter "
            f"{table.delimiter!r} and the quoting"
        ) from None
    except UnicodeDecodeError:
        raise DataError(_decode_error_message(path, table.encoding)) from None
    except _GZIP_ERRORS as error:
        raise DataError(
            f"{path}: truncated or corrupt gzip file ({error}); download or copy it again"
        ) from None

    if rows == 0:
        raise DataError(f"{path}: the file has a header but no data rows")


def _csv_header(path: Path, table: _TableFormat, required: list[str]) -> list[str]:
    # The first line, read here, gives the column names and reveals a wrong delimiter.
    try:
        with _open_binary(path) as handle:
            raw_line = handle.readline()
    except _GZIP_ERRORS as error:
        raise DataError(
            f"{path}: truncated or corrupt gzip file ({error}); download or copy it again"
        ) from None
    if not raw_line.strip():
        raise DataError(f"{path}: the file is empty (no header and no rows)")
    try:
        line = raw_line.decode(table.encoding).rstrip("\r\n")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}, line 1, byte {error.start}: invalid {table.encoding} byte "
            f"{raw_line[error.start : error.start + 1]!r}; convert the file to "
            f"{table.encoding} or set encoding in the dataset spec"
        ) from None
    fields = next(csv.reader([line], delimiter=table.delimiter))

    expected = len(table.column_names) if table.column_names else len(required)
    if len(fields) == 1 and expected > 1:
        raise DataError(_delimiter_message(path, line, table.delimiter, expected))

    if table.column_names is not None:
        if len(fields) != len(table.column_names):
            raise DataError(
                f"{path}: line 1 has {len(fields)} fields but column_names lists "
                f"{len(table.column_names)} ({', '.join(table.column_names[:8])}, ...); make "
                "column_names match the file"
            )
        names = list(table.column_names)
    else:
        names = [field if field else f"Unnamed: {i}" for i, field in enumerate(fields)]
    renamed = [table.rename.get(name, name) for name in names]

    duplicates = sorted({name for name in renamed if renamed.count(name) > 1} & set(required))
    if duplicates:
        raise DataError(f"{path}: columns {duplicates} appear more than once in the header")
    return renamed


def _delimiter_message(path: Path, line: str, delimiter: str, expected: int) -> str:
    counts = {candidate: line.count(candidate) for candidate in CANDIDATE_DELIMITERS}
    best = max(counts, key=lambda candidate: counts[candidate])
    hint = (
        f"the first line looks {best!r}-separated ({counts[best] + 1} fields): set delimiter "
        f"to {best!r}"
        if counts[best] and best != delimiter
        else "check the delimiter and the file"
    )
    return (
        f"{path}: found 1 column with delimiter {delimiter!r} where {expected} are expected; {hint}"
    )


def _missing_columns_message(
    path: Path, missing: list[str], expected: list[str], found: list[str]
) -> str:
    shown = ", ".join(found[:30]) + (f", ... ({len(found)} in all)" if len(found) > 30 else "")
    return (
        f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(expected)}; "
        f"found {shown}. Fix the column names (or rename / column_names) in the dataset spec"
    )


def _decode_error_message(path: Path, encoding: str) -> str:
    # The parser reports an offset inside its buffer; scan the file to find the real line.
    offset = 0
    with _open_binary(path) as handle:
        for number, raw_line in enumerate(handle, start=1):
            try:
                raw_line.decode(encoding)
            except UnicodeDecodeError as error:
                return (
                    f"{path}, line {number}: invalid {encoding} byte "
                    f"{raw_line[error.start : error.start + 1]!r} at byte offset "
                    f"{offset + error.start} of the file (column byte {error.start}); convert "
                    f"the file to {encoding} or set encoding in the dataset spec"
                )
            offset += len(raw_line)
    return f"{path}: invalid {encoding} data; convert the file or set encoding in the spec"


def _iter_parquet(
    path: Path, table: _TableFormat, required: list[str], chunk_rows: int
) -> Iterator[RawChunk]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(
            f"{path}: not a readable parquet file ({error}); it may be truncated: write or "
            "copy it again"
        ) from None

    names = [table.rename.get(name, name) for name in parquet.schema_arrow.names]
    missing = [column for column in required if column not in names]
    if missing:
        raise DataError(_missing_columns_message(path, missing, required, names))
    if parquet.metadata.num_rows == 0:
        raise DataError(f"{path}: the parquet file has no rows")

    inverse = {new: old for old, new in table.rename.items()}
    source_columns = [inverse.get(column, column) for column in required]
    rows = 0
    try:
        for batch in parquet.iter_batches(batch_size=chunk_rows, columns=source_columns):
            frame = batch.to_pandas(integer_object_nulls=True)
            frame.columns = required
            positions = rows + 1 + np.arange(len(frame))
            rows += len(frame)
            yield RawChunk(frame, path, positions, "row")
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(
            f"{path}: failed to read parquet rows after row {rows} ({error}); the file may be "
            "truncated or corrupt: write or copy it again"
        ) from None
