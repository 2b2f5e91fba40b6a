"""Encode partition rows into model input arrays (row indices and values) with a frozen schema."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from crossadapt.data.schema import (
    OOV_INDEX,
    PAD_INDEX,
    RESERVED_ROWS,
    FeatureSchema,
    FieldSpec,
    as_tokens,
    numeric_values,
    split_multi_valued,
)
from crossadapt.errors import DataError, SchemaError
from crossadapt.storage.atomic import atomic_path

logger = logging.getLogger(__name__)

NPZ_ARRAYS = ("categorical", "multi_valued", "numeric", "label", "timestamp")


@dataclasses.dataclass
class EncodedFrame:
    """Model inputs of ``N`` rows; columns follow ``schema.embedded_fields()`` per group."""

    categorical: np.ndarray  # int64 (N, F_c): categorical and bucket fields, schema order
    multi_valued: np.ndarray  # int64 (N, F_m, L): L = max max_len; PAD = 0
    numeric: np.ndarray  # float32 (N, F_n): log-transformed numeric fields
    label: np.ndarray  # float32 (N,)
    timestamp: np.ndarray  # int64 (N,)

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def take(self, indices: np.ndarray | Sequence[int]) -> EncodedFrame:
        """Return the rows at ``indices`` (any order, repeats allowed) as a new frame."""
        rows = np.asarray(indices, dtype=np.int64)
        return EncodedFrame(
            categorical=self.categorical[rows],
            multi_valued=self.multi_valued[rows],
            numeric=self.numeric[rows],
            label=self.label[rows],
            timestamp=self.timestamp[rows],
        )

    @classmethod
    def concat(cls, frames: Sequence[EncodedFrame]) -> EncodedFrame:
        """Stack frames encoded with the same schema, in the given order."""
        if not frames:
            raise ValueError("EncodedFrame.concat needs at least one frame")
        shapes = {
            (f.categorical.shape[1:], f.multi_valued.shape[1:], f.numeric.shape[1:]) for f in frames
        }
        if len(shapes) != 1:
            raise SchemaError(
                f"cannot concatenate encoded frames of different layouts {sorted(shapes)}; "
                "encode every part with the same schema.json"
            )
        return cls(
            categorical=np.concatenate([f.categorical for f in frames]),
            multi_valued=np.concatenate([f.multi_valued for f in frames]),
            numeric=np.concatenate([f.numeric for f in frames]),
            label=np.concatenate([f.label for f in frames]),
            timestamp=np.concatenate([f.timestamp for f in frames]),
        )

    def save_npz(
        self, path: str | os.PathLike[str], schema_hash: str | None = None, compress: bool = False
    ) -> Path:
        """Write the arrays (and the schema hash, if given) to an ``.npz`` file atomically."""
        target = Path(path)
        arrays = {name: getattr(self, name) for name in NPZ_ARRAYS}
        arrays["schema_hash"] = np.array(schema_hash or "")
        with atomic_path(target) as tmp, open(tmp, "wb") as handle:
            (np.savez_compressed if compress else np.savez)(handle, **arrays)
        logger.info("encoded frame of %d rows written to %s", len(self), target)
        return target

    @classmethod
    def load_npz(
        cls, path: str | os.PathLike[str], expected_schema_hash: str | None = None
    ) -> EncodedFrame:
        """Read a frame written by ``save_npz``.

        Raises DataError naming the file when it is missing or unreadable, and SchemaError
        when ``expected_schema_hash`` differs from the hash stored in the file.
        """
        source = Path(path)
        try:
            with np.load(source, allow_pickle=False) as content:
                arrays = {name: content[name] for name in NPZ_ARRAYS}
                stored_hash = str(content["schema_hash"]) if "schema_hash" in content else ""
        except FileNotFoundError:
            raise DataError(f"encoded file {source} not found. Re-run the encode step") from None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise DataError(
                f"encoded file {source} is truncated or not an encoded frame ({error}); "
                "delete it and re-run the encode step"
            ) from None
        if expected_schema_hash is not None and stored_hash != expected_schema_hash:
            raise SchemaError(
                f"encoded file {source} was written with schema hash {stored_hash or 'none'}, "
                f"expected {expected_schema_hash}. Delete it and re-encode with the current "
                "schema.json"
            )
        return cls(**arrays)


def encode(frame: pd.DataFrame, schema: FeatureSchema) -> EncodedFrame:
    """Encode partition rows with ``schema``.

    Categorical: token ``i`` of the vocabulary -> ``i + 2``; unseen tokens and nulls -> OOV
    (1), so encoding never raises on values. Bucket: null -> 1, else
    ``2 + searchsorted(boundaries, x, side="left")``. Multi-valued: tokens split on ``|``,
    the first ``max_len`` kept, padded with PAD (0). Numeric log:
    ``sign(x) * log1p(|x|)`` after filling nulls with ``fill_value``.
    Raises SchemaError if a schema field, ``label`` or ``timestamp`` column is missing.
    """
    started = time.perf_counter()
    rows = len(frame)
    _check_columns(frame, schema)

    categorical_fields = schema.categorical_fields()
    categorical = np.empty((rows, len(categorical_fields)), dtype=np.int64)
    for column, spec in enumerate(categorical_fields):
        if spec.is_bucket:
            categorical[:, column] = encode_bucket(numeric_values(frame, spec.name), spec)
        else:
            categorical[:, column] = encode_tokens(frame[spec.name], spec)

    multi_fields = schema.multi_valued_fields()
    length = schema.max_multi_len()
    multi_valued = np.full((rows, len(multi_fields), length), PAD_INDEX, dtype=np.int64)
    for column, spec in enumerate(multi_fields):
        multi_valued[:, column, :] = encode_multi_valued(frame[spec.name], spec, length)

    numeric_fields = schema.numeric_fields()
    numeric = np.empty((rows, len(numeric_fields)), dtype=np.float32)
    for column, spec in enumerate(numeric_fields):
        numeric[:, column] = encode_log(numeric_values(frame, spec.name), spec)

    label = _label_values(frame, schema.label)
    timestamp = frame["timestamp"].to_numpy(dtype=np.int64)
    logger.debug("encoded %d rows in %.3f s", rows, time.perf_counter() - started)
    return EncodedFrame(categorical, multi_valued, numeric, label, timestamp)


def encode_tokens(values: pd.Series, spec: FieldSpec) -> np.ndarray:
    """Return the table row of each value: ``vocabulary.index(token) + 2``, OOV (1) if unseen
    or null."""
    # Look up each distinct value once: factorizing Arrow-backed strings avoids creating a
    # Python string per row.
    codes, uniques = pd.factorize(as_tokens(values), use_na_sentinel=True)
    positions = spec.token_index.get_indexer(np.asarray(uniques, dtype=object))
    unique_rows = np.where(positions >= 0, positions + RESERVED_ROWS, OOV_INDEX)
    rows = np.full(len(codes), OOV_INDEX, dtype=np.int64)
    present = codes >= 0
    rows[present] = unique_rows[codes[present]]
    return rows


def encode_bucket(values: np.ndarray, spec: FieldSpec) -> np.ndarray:
    """Return ``2 + b`` for bucket ``b`` (``boundaries[b-1] < x <= boundaries[b]``), 1 if null."""
    buckets = np.searchsorted(np.asarray(spec.boundaries, dtype=np.float64), values, side="left")
    return np.where(np.isnan(values), OOV_INDEX, buckets + RESERVED_ROWS).astype(np.int64)


def encode_log(values: np.ndarray, spec: FieldSpec) -> np.ndarray:
    """Return ``sign(x) * log1p(|x|)`` with nulls replaced by ``fill_value`` first (float32)."""
    filled = np.where(np.isnan(values), spec.fill_value, values)
    return (np.sign(filled) * np.log1p(np.abs(filled))).astype(np.float32)


def encode_multi_valued(values: pd.Series, spec: FieldSpec, length: int) -> np.ndarray:
    """Return an ``(N, length)`` array of rows: the first ``max_len`` tokens, then PAD (0)."""
    result = np.full((len(values), length), PAD_INDEX, dtype=np.int64)
    row_positions, tokens = split_multi_valued(values, spec.separator or "|")
    if len(tokens) == 0:
        return result

    # Position of each token inside its row: index minus the index of the row's first token.
    order = np.arange(len(row_positions))
    starts = np.r_[True, row_positions[1:] != row_positions[:-1]]
    slot = order - np.maximum.accumulate(np.where(starts, order, 0))
    keep = slot < min(int(spec.max_len or length), length)

    positions = spec.token_index.get_indexer(tokens[keep])
    codes = np.where(positions >= 0, positions + RESERVED_ROWS, OOV_INDEX)
    result[row_positions[keep], slot[keep]] = codes
    return result


def oov_rates(frame: pd.DataFrame, schema: FeatureSchema) -> dict[str, float]:
    """Share of non-null values mapped to OOV, per categorical and multi-valued field.

    Multi-valued fields count tokens (before truncation to ``max_len``). A field whose
    values are all null has rate 0.0. Numeric fields have no vocabulary and are left out.
    """
    _check_columns(frame, schema, need_label=False)
    rates: dict[str, float] = {}
    for spec in schema.fields:
        if spec.type == "categorical":
            tokens = as_tokens(frame[spec.name]).dropna().to_numpy(dtype=object)
        elif spec.type == "multi_valued":
            _, tokens = split_multi_valued(frame[spec.name], spec.separator or "|")
        else:
            continue
        if len(tokens) == 0:
            rates[spec.name] = 0.0
            continue
        unseen = int((spec.token_index.get_indexer(tokens) < 0).sum())
        rates[spec.name] = unseen / len(tokens)
    return rates


def _check_columns(frame: pd.DataFrame, schema: FeatureSchema, need_label: bool = True) -> None:
    required = [spec.name for spec in schema.fields]
    if need_label:
        required += [schema.label, "timestamp"]
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise SchemaError(
            f"data lacks columns {missing} of the schema of dataset {schema.dataset!r}; "
            f"columns present: {list(frame.columns)}. Encode partitions of the same dataset "
            "or refit schema.json"
        )


def _label_values(frame: pd.DataFrame, column: str) -> np.ndarray:
    label = numeric_values(frame, column)
    invalid = ~np.isin(label, (0.0, 1.0))
    if invalid.any():
        bad = label[invalid][:5].tolist()
        raise DataError(
            f"column {column!r} has {int(invalid.sum())} values that are not 0 or 1 "
            f"(first: {bad}). Re-run ingest, which maps raw labels to 0/1"
        )
    return label.astype(np.float32)
