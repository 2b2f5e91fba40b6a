"""Read day partitions of a date range and encode them with a feature schema."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from crossadapt.data.partitions import iter_days, read_days
from crossadapt.errors import DataError

if TYPE_CHECKING:
    from crossadapt.data.encoding import EncodedFrame
    from crossadapt.data.schema import FeatureSchema
    from crossadapt.data.spec import DatasetSpec

logger = logging.getLogger(__name__)


def field_defs_from_spec(spec: DatasetSpec) -> list[dict[str, Any]]:
    """Field definitions for :func:`crossadapt.data.schema.fit_schema`, one per spec feature."""
    definitions = []
    for feature in spec.features():
        field_type = spec.feature_type(feature.name)
        definition: dict[str, Any] = {
            "name": feature.name,
            "type": field_type,
            "source": feature.source,
        }
        if field_type == "numeric":
            definition["fill_value"] = feature.fill_value
            definition["transform"] = feature.transform
            if feature.boundaries is not None:
                definition["boundaries"] = list(feature.boundaries)
        elif field_type == "multi_valued":
            definition["max_len"] = feature.max_len
        definitions.append(definition)
    return definitions


def read_range(data_dir: str | Path, dataset: str, start: str, end: str) -> pd.DataFrame:
    """Read all partition rows of ``start..end`` (inclusive UTC days), in time order."""
    return read_days(data_dir, dataset, start, end)


def iter_range(data_dir: str | Path, dataset: str, start: str, end: str):
    """Yield the partition of each day of ``start..end`` that has data, in time order."""
    for _, frame in iter_days(data_dir, dataset, start, end):
        yield frame


def encode_range(
    data_dir: str | Path, dataset: str, start: str, end: str, schema: FeatureSchema
) -> EncodedFrame:
    """Encode every day of ``start..end`` with ``schema`` into one frame, in time order.

    The output is allocated once, from the row counts in the partitions' parquet metadata,
    and each day is encoded into its slice. Peak memory is the output plus one day, where
    concatenating the days' frames would hold the output twice.
    """
    import pyarrow.parquet as pq

    from crossadapt.data.encoding import NPZ_ARRAYS, EncodedFrame, encode
    from crossadapt.data.partitions import day_path, days_in_range

    total = sum(
        pq.read_metadata(day_path(data_dir, dataset, day)).num_rows
        for day in days_in_range(data_dir, dataset, start, end)
    )
    encoded: EncodedFrame | None = None
    offset = 0
    # iter_days raises DataError when the range has no partition.
    for _, frame in iter_days(data_dir, dataset, start, end):
        part = encode(frame, schema)
        del frame
        if offset + len(part) > total:
            raise _changed_while_read(dataset, start, end)
        if encoded is None:
            encoded = EncodedFrame(
                *(
                    np.empty((total, *getattr(part, name).shape[1:]), getattr(part, name).dtype)
                    for name in NPZ_ARRAYS
                )
            )
        for name in NPZ_ARRAYS:
            getattr(encoded, name)[offset : offset + len(part)] = getattr(part, name)
        offset += len(part)
    if encoded is None or offset != total:
        raise _changed_while_read(dataset, start, end)
    logger.info("encoded %s %s..%s: %d rows", dataset, start, end, len(encoded))
    return encoded


def _changed_while_read(dataset: str, start: str, end: str) -> DataError:
    return DataError(
        f"the partitions of {dataset} {start}..{end} changed while they were read; "
        "wait for the running ingest to finish and retry"
    )
