"""Ingest a click log into daily parquet partitions (one file per UTC day, sorted by time).

Rows stream through in chunks. Each day's rows are buffered in memory and written as
parquet part-files whenever the buffer is full. Each day is then merged and sorted on its
own, so only one day (plus the buffer) has to fit in memory.
"""

from __future__ import annotations

import logging
import shutil
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crossadapt.config.days import SECONDS_PER_DAY
from crossadapt.data.partitions import MANIFEST_NAME, PARTITIONS_SUBDIR, partitions_dir
from crossadapt.data.readers import read_log
from crossadapt.data.spec import DatasetSpec, check_dataset_name
from crossadapt.errors import DataError
from crossadapt.storage.atomic import atomic_write_json
from crossadapt.storage.hashing import sha256_file
from crossadapt.storage.locks import run_lock

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

logger = logging.getLogger(__name__)

MANIFEST_FORMAT_VERSION = 1
# Rows buffered in memory (all days together) before they are written as part-files.
FLUSH_ROWS = 500_000


@dataclass(frozen=True)
class IngestSummary:
    """Summary of one ingest: row counts, days, rows per day and wall time."""

    dataset: str
    output_dir: str
    days: int
    rows: int
    positives: int
    first_day: str
    last_day: str
    rows_per_day_min: int
    rows_per_day_median: float
    rows_per_day_max: int
    seconds: float

    @property
    def positive_rate(self) -> float:
        return self.positives / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "positive_rate": round(self.positive_rate, 6)}


def partition_schema(spec: DatasetSpec) -> pa.Schema:
    """Arrow schema of every day file: timestamp int64, label int8, then the features."""
    import pyarrow as pa

    fields = [pa.field("timestamp", pa.int64()), pa.field("label", pa.int8())]
    for feature in spec.features():
        kind = spec.feature_type(feature.name)
        fields.append(pa.field(feature.name, pa.float64() if kind == "numeric" else pa.string()))
    return pa.schema(fields)


def ingest(
    spec: DatasetSpec, data_dir: str | Path, dataset_name: str | None = None
) -> IngestSummary:
    """Read ``spec``'s files and write ``<data_dir>/partitions/<dataset_name>/<day>.parquet``.

    Each day file contains the rows whose ``timestamp`` (Unix s) falls on that UTC day,
    sorted by timestamp (stable: ties keep input order). ``_manifest.json`` lists rows,
    positives and sha256 per day, and the spec. Everything is written to a staging folder
    that replaces the old partitions only at the end, so an error leaves them unchanged.
    """
    name = dataset_name if dataset_name is not None else spec.name
    try:
        check_dataset_name(name)
    except ValueError as error:
        raise DataError(str(error)) from None
    root = Path(data_dir) / PARTITIONS_SUBDIR
    target = partitions_dir(data_dir, name)
    staging = root / f".staging-{name}-{uuid.uuid4().hex[:12]}"
    started = time.perf_counter()
    logger.info("ingest %s: reading %d file(s) into %s", name, len(spec.files), target)

    with run_lock(root / f".{name}.lock"):
        try:
            parts_dir = staging / "parts"
            output_dir = staging / "output"
            output_dir.mkdir(parents=True)
            schema = partition_schema(spec)

            _, buffered = _write_day_parts(spec, schema, parts_dir)
            day_stats = _merge_days(parts_dir, buffered, output_dir, schema)
            manifest = _manifest(spec, name, day_stats)
            atomic_write_json(output_dir / MANIFEST_NAME, manifest)
            shutil.rmtree(parts_dir, ignore_errors=True)
            _replace_folder(output_dir, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    counts = [stats["rows"] for stats in day_stats.values()]
    summary = IngestSummary(
        dataset=name,
        output_dir=str(target),
        days=len(day_stats),
        rows=manifest["rows"],
        positives=manifest["positives"],
        first_day=min(day_stats),
        last_day=max(day_stats),
        rows_per_day_min=min(counts),
        rows_per_day_median=float(statistics.median(counts)),
        rows_per_day_max=max(counts),
        seconds=round(time.perf_counter() - started, 3),
    )
    logger.info(
        "ingest %s: %d rows (%.4f positive) in %d days %s..%s, rows/day min %d median %g "
        "max %d, %.2f s",
        name,
        summary.rows,
        summary.positive_rate,
        summary.days,
        summary.first_day,
        summary.last_day,
        summary.rows_per_day_min,
        summary.rows_per_day_median,
        summary.rows_per_day_max,
        summary.seconds,
    )
    return summary


def _write_day_parts(
    spec: DatasetSpec, schema: pa.Schema, parts_dir: Path
) -> tuple[int, dict[int, list[pa.Table]]]:
    # Slice each chunk by day and buffer the slices; when the buffer is full, write it as
    # numbered part-files so the input order is kept. Returns the rows read and the
    # slices still buffered at the end (the merge reads them after the part-files).
    import pyarrow as pa

    buffers: dict[int, list[pa.Table]] = defaultdict(list)
    buffered = 0
    part_number = 0
    rows = 0

    for frame in read_log(spec):
        table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        day_numbers = frame["timestamp"].to_numpy() // SECONDS_PER_DAY
        order = np.argsort(day_numbers, kind="stable")
        boundaries = np.flatnonzero(np.diff(day_numbers[order])) + 1
        for group in np.split(order, boundaries):
            buffers[int(day_numbers[group[0]])].append(table.take(group))
        buffered += len(frame)
        rows += len(frame)

        if buffered >= max(FLUSH_ROWS, spec.chunk_rows):
            _flush(buffers, parts_dir, part_number)
            part_number += 1
            buffered = 0
            logger.info("ingest: %d rows read", rows)

    if rows == 0:
        raise DataError(f"no rows in {', '.join(spec.files)}: nothing to ingest")
    return rows, buffers


def _flush(buffers: dict[int, list[pa.Table]], parts_dir: Path, part_number: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for day_number, tables in buffers.items():
        folder = parts_dir / _day_string(day_number)
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables(tables), folder / f"part-{part_number:08d}.parquet")
    buffers.clear()


def _merge_days(
    parts_dir: Path,
    buffers: dict[int, list[pa.Table]],
    output_dir: Path,
    schema: pa.Schema,
) -> dict[str, dict[str, Any]]:
    # One day at a time: its part-files in write order, then its buffered slices, then a
    # stable sort by timestamp.
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    on_disk = {path.name for path in parts_dir.iterdir()} if parts_dir.is_dir() else set()
    in_memory = {_day_string(number): tables for number, tables in buffers.items()}
    stats: dict[str, dict[str, Any]] = {}

    for day in sorted(on_disk | set(in_memory)):
        parts = sorted((parts_dir / day).glob("part-*.parquet")) if day in on_disk else []
        tables = [pq.read_table(part, schema=schema) for part in parts]
        tables += in_memory.get(day, [])
        table = pa.concat_tables(tables)
        # Arrow's sort_indices is a stable sort (Arrow compute docs).
        table = table.take(pc.sort_indices(table, sort_keys=[("timestamp", "ascending")]))
        path = output_dir / f"{day}.parquet"
        pq.write_table(table, path)
        stats[day] = {
            "rows": table.num_rows,
            "positives": int(pc.sum(table["label"]).as_py() or 0),
            "sha256": sha256_file(path),
        }
    return stats


def _day_string(day_number: int) -> str:
    return str(np.datetime64(day_number, "D"))


def _manifest(spec: DatasetSpec, name: str, day_stats: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "format_version": MANIFEST_FORMAT_VERSION,
        "dataset": name,
        "rows": sum(stats["rows"] for stats in day_stats.values()),
        "positives": sum(stats["positives"] for stats in day_stats.values()),
        "columns": {
            "timestamp": "int64",
            "label": "int8",
            **{f.name: spec.feature_type(f.name) for f in spec.features()},
        },
        "days": day_stats,
        "spec": spec.model_dump(mode="json"),
    }


def _replace_folder(new: Path, target: Path) -> None:
    # Two renames: the old folder moves aside, the new one takes its place; on a failed
    # second rename the old folder is put back.
    # NOTE: between the two renames a reader briefly finds no partitions folder.
    old = target.parent / f".old-{target.name}-{uuid.uuid4().hex[:12]}"
    if target.exists():
        target.rename(old)
    try:
        new.rename(target)
    except OSError:
        if old.exists():
            old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_generated_days(
    days: Iterable[tuple[str, pd.DataFrame]], data_dir: str | Path, dataset_name: str
) -> dict[str, Any]:
    """Write generated day frames (already in partition format) as the dataset's partitions.

    Used for synthetic streams: each frame is one UTC day, sorted by timestamp. The folder
    is built in a staging folder and swapped in whole, like ``ingest``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    target = Path(data_dir) / "partitions" / dataset_name
    staging = target.parent / f".staging-{dataset_name}-{uuid.uuid4().hex[:12]}"
    staging.mkdir(parents=True)
    day_stats: dict[str, dict[str, Any]] = {}
    columns: dict[str, str] = {}
    try:
        for day, frame in days:
            path = staging / f"{day}.parquet"
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
            day_stats[day] = {
                "rows": len(frame),
                "positives": int(frame["label"].sum()),
                "sha256": sha256_file(path),
            }
            columns = {name: str(dtype) for name, dtype in frame.dtypes.items()}
        manifest = {
            "format_version": MANIFEST_FORMAT_VERSION,
            "dataset": dataset_name,
            "rows": sum(stats["rows"] for stats in day_stats.values()),
            "positives": sum(stats["positives"] for stats in day_stats.values()),
            "columns": columns,
            "days": day_stats,
            "spec": {"generator": dataset_name},
        }
        atomic_write_json(staging / "_manifest.json", manifest)
        _replace_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summary = {
        "dataset": dataset_name,
        "days": len(day_stats),
        "rows": manifest["rows"],
        "seconds": time.perf_counter() - started,
    }
    logger.info("wrote %d generated days (%d rows) to %s", len(day_stats), summary["rows"], target)
    return summary
