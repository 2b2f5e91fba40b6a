"""Read day partitions of a date range and encode them with a feature schema."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from crossadapt.data.partitions import iter_days, read_days

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
    """Encode every day of ``start..end`` with ``schema`` and concatenate them in time order."""
    from crossadapt.data.encoding import EncodedFrame, encode

    frames = [encode(frame, schema) for frame in iter_range(data_dir, dataset, start, end)]
    encoded = EncodedFrame.concat(frames)
    logger.info("encoded %s %s..%s: %d rows", dataset, start, end, len(encoded))
    return encoded
