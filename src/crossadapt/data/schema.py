"""Feature schema (``schema.json``): per-field type, vocabulary and embedding dim.

``fit_schema`` fits the vocabularies and bucket boundaries on the fit range, streaming.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from crossadapt.config.days import day_start_timestamp, parse_day, shift_day
from crossadapt.errors import DataError, ParamsError, SchemaError
from crossadapt.storage.atomic import atomic_write_text

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
PAD_INDEX = 0
OOV_INDEX = 1
# Rows before the first vocabulary token (or the first bucket): PAD, then OOV/missing.
RESERVED_ROWS = 2
MULTI_VALUED_SEPARATOR = "|"
DEFAULT_N_BUCKETS = 10

FieldType = Literal["categorical", "numeric", "multi_valued"]
Source = Literal["user", "item", "context"]
Transform = Literal["log", "bucket"]
FIELD_TYPES = ("categorical", "numeric", "multi_valued")
SOURCES = ("user", "item", "context")
TRANSFORMS = ("log", "bucket")


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One feature field of the schema, as in one entry of ``schema.json`` ``fields``.

    Categorical and multi-valued fields use ``vocabulary`` (token ``i`` is row ``i + 2``);
    numeric fields use ``fill_value`` and ``transform``, and ``bucket`` fields also
    ``boundaries``. ``embedding_dim`` is None until a model sets it.
    """

    name: str
    type: FieldType
    source: Source
    embedding_dim: int | None = None
    vocabulary: tuple[str, ...] = ()
    min_count: int = 1
    max_len: int | None = None
    separator: str | None = None
    fill_value: float | None = None
    transform: Transform | None = None
    boundaries: tuple[float, ...] = ()
    n_buckets: int | None = None

    @property
    def pad_index(self) -> int:
        return PAD_INDEX

    @property
    def oov_index(self) -> int:
        return OOV_INDEX

    @property
    def is_bucket(self) -> bool:
        return self.type == "numeric" and self.transform == "bucket"

    @property
    def is_log(self) -> bool:
        return self.type == "numeric" and self.transform == "log"

    @property
    def vocab_size(self) -> int:
        """Rows of the field's embedding table.

        Categorical and multi-valued: ``len(vocabulary) + 2``; bucket:
        ``len(boundaries) + 3`` (PAD, missing, one row per bucket); log: 1.
        """
        if self.type == "numeric":
            return 1 if self.transform == "log" else len(self.boundaries) + 1 + RESERVED_ROWS
        return len(self.vocabulary) + RESERVED_ROWS

    @cached_property
    def token_index(self) -> pd.Index:
        """Hash index of the vocabulary: ``token_index.get_indexer(tokens) + 2`` is the row."""
        return pd.Index(np.asarray(self.vocabulary, dtype=object))

    def to_dict(self) -> dict[str, Any]:
        """Return the field as its ``schema.json`` entry."""
        entry: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "source": self.source,
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
        }
        if self.type == "numeric":
            entry["fill_value"] = self.fill_value
            entry["transform"] = self.transform
            if self.is_bucket:
                entry["boundaries"] = list(self.boundaries)
                entry["n_buckets"] = self.n_buckets
                entry["pad_index"] = PAD_INDEX
                entry["oov_index"] = OOV_INDEX
            return entry

        entry["pad_index"] = PAD_INDEX
        entry["oov_index"] = OOV_INDEX
        entry["min_count"] = self.min_count
        if self.type == "multi_valued":
            entry["max_len"] = self.max_len
            entry["separator"] = self.separator
        entry["vocabulary"] = list(self.vocabulary)
        return entry


@dataclasses.dataclass(frozen=True)
class FeatureSchema:
    """The frozen feature schema of one dataset and fit range; see ``docs/design.md``."""

    dataset: str
    fit_range: tuple[str, str]
    fields: tuple[FieldSpec, ...]
    label: str = "label"
    format_version: int = FORMAT_VERSION

    def field(self, name: str) -> FieldSpec:
        """Return the field called ``name``; raise SchemaError listing the fields if unknown."""
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise SchemaError(
            f"schema of dataset {self.dataset!r} has no field {name!r}; "
            f"fields: {[spec.name for spec in self.fields]}"
        )

    def categorical_fields(self) -> list[FieldSpec]:
        """Fields of ``EncodedFrame.categorical``: categorical and bucket, schema order."""
        return [f for f in self.fields if f.type == "categorical" or f.is_bucket]

    def multi_valued_fields(self) -> list[FieldSpec]:
        """Fields of ``EncodedFrame.multi_valued``, schema order."""
        return [f for f in self.fields if f.type == "multi_valued"]

    def numeric_fields(self) -> list[FieldSpec]:
        """Fields of ``EncodedFrame.numeric``: numeric fields with the log transform."""
        return [f for f in self.fields if f.is_log]

    def embedded_fields(self) -> list[FieldSpec]:
        """Fields in model order: categorical and bucket, then multi-valued, then numeric log."""
        return [*self.categorical_fields(), *self.multi_valued_fields(), *self.numeric_fields()]

    def max_multi_len(self) -> int:
        """Length ``L`` of the multi-valued axis: the largest ``max_len`` (0 if none)."""
        return max((int(f.max_len or 0) for f in self.multi_valued_fields()), default=0)

    def uniform_dim(self) -> int | None:
        """Return the embedding dim shared by every field, or None if dims differ or are unset."""
        dims = {f.embedding_dim for f in self.fields}
        if len(dims) != 1:
            return None
        return dims.pop()

    def with_embedding_dims(self, dims: int | Mapping[str, int]) -> FeatureSchema:
        """Return a copy with embedding dims set: one dim for all fields, or per field name.

        Fields missing from a mapping keep their dim. Raises SchemaError for unknown field
        names and for dims that are not positive integers.
        """
        if isinstance(dims, Mapping):
            unknown = sorted(set(dims) - {f.name for f in self.fields})
            if unknown:
                raise SchemaError(
                    f"embedding dims given for unknown fields {unknown}; "
                    f"schema fields: {[f.name for f in self.fields]}"
                )
            per_field = {f.name: dims.get(f.name, f.embedding_dim) for f in self.fields}
        else:
            per_field = {f.name: dims for f in self.fields}

        for name, dim in per_field.items():
            if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
                raise SchemaError(
                    f"embedding dim of field {name!r} is {dim!r}. Use a positive integer"
                )
        fields = tuple(dataclasses.replace(f, embedding_dim=per_field[f.name]) for f in self.fields)
        return dataclasses.replace(self, fields=fields)

    def with_vocabulary(self, name: str, vocabulary: Sequence[str]) -> FeatureSchema:
        """Return a copy where field ``name`` has ``vocabulary`` (for example a student's
        vocabulary: the teacher's tokens followed by new ones)."""
        target = self.field(name)
        if target.type == "numeric":
            raise SchemaError(f"field {name!r} is numeric and has no vocabulary to replace")
        _check_vocabulary(name, list(vocabulary), origin="with_vocabulary")
        fields = tuple(
            dataclasses.replace(f, vocabulary=tuple(vocabulary)) if f.name == name else f
            for f in self.fields
        )
        return dataclasses.replace(self, fields=fields)

    def to_dict(self) -> dict[str, Any]:
        """Return the schema as the JSON object of ``schema.json``."""
        return {
            "format_version": self.format_version,
            "dataset": self.dataset,
            "label": self.label,
            "fit_range": list(self.fit_range),
            "fields": [f.to_dict() for f in self.fields],
        }

    def hash(self) -> str:
        """SHA-256 of the canonical JSON (sorted keys, no spaces) without embedding dims.

        Embedding dims belong to a model, so a teacher and a student with different dims
        share the hash of the data they read.
        """
        content = self.to_dict()
        for entry in content["fields"]:
            entry.pop("embedding_dim", None)
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``schema.json`` atomically (temp file, fsync, rename) and return its path."""
        target = Path(path)
        text = json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n"
        atomic_write_text(target, text)
        logger.info(
            "schema of %s (%d fields) written to %s", self.dataset, len(self.fields), target
        )
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureSchema:
        """Read and validate ``schema.json``; raise SchemaError naming the file on failure."""
        source = Path(path)
        try:
            text = source.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SchemaError(
                f"schema file {source} not found. Run the fit step that writes it first"
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise SchemaError(f"schema file {source} cannot be read: {error}") from None
        try:
            content = json.loads(text)
        except json.JSONDecodeError as error:
            raise SchemaError(
                f"schema file {source} is not valid JSON ({error}). Re-run the fit step"
            ) from None
        return cls.from_dict(content, origin=str(source))

    @classmethod
    def from_dict(cls, content: Any, origin: str = "schema dict") -> FeatureSchema:
        """Build a schema from its JSON object; raise SchemaError naming ``origin`` and key."""
        if not isinstance(content, Mapping):
            raise SchemaError(f"{origin}: expected a JSON object, got {type(content).__name__}")
        version = content.get("format_version")
        if version != FORMAT_VERSION:
            raise SchemaError(
                f"{origin}: format_version is {version!r}, this code reads {FORMAT_VERSION}; "
                "re-run the fit step"
            )
        dataset = _require(content, "dataset", str, origin)
        label = _require(content, "label", str, origin)
        fit_range = content.get("fit_range")
        if not (isinstance(fit_range, list | tuple) and len(fit_range) == 2):
            raise SchemaError(f"{origin}: fit_range is {fit_range!r}, expected [start, end]")
        try:
            start, end = (parse_day(day).isoformat() for day in fit_range)
        except ValueError as error:
            raise SchemaError(f"{origin}: fit_range {fit_range!r} is invalid: {error}") from None

        entries = content.get("fields")
        if not isinstance(entries, list) or not entries:
            raise SchemaError(f"{origin}: 'fields' must be a non-empty list")
        fields = tuple(
            _field_from_dict(entry, f"{origin} fields[{i}]") for i, entry in enumerate(entries)
        )
        _check_field_names([f.name for f in fields], label, origin)
        return cls(dataset=dataset, fit_range=(start, end), fields=fields, label=label)


def _require(content: Mapping[str, Any], key: str, kind: type, origin: str) -> Any:
    value = content.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SchemaError(
            f"{origin}: key {key!r} is {value!r}, expected a {kind.__name__}. Re-run the fit step"
        )
    return value


def _field_from_dict(entry: Any, origin: str) -> FieldSpec:
    if not isinstance(entry, Mapping):
        raise SchemaError(f"{origin}: expected an object, got {entry!r}")
    name = _require(entry, "name", str, origin)
    where = f"{origin} ({name})"
    field_type = entry.get("type")
    source = entry.get("source")
    if field_type not in FIELD_TYPES:
        raise SchemaError(f"{where}: type is {field_type!r}. Use one of {FIELD_TYPES}")
    if source not in SOURCES:
        raise SchemaError(f"{where}: source is {source!r}. Use one of {SOURCES}")
    dim = entry.get("embedding_dim")
    if dim is not None and (not isinstance(dim, int) or isinstance(dim, bool) or dim < 1):
        raise SchemaError(f"{where}: embedding_dim is {dim!r}. Use a positive integer or null")

    if field_type == "numeric":
        spec = _numeric_from_dict(entry, name, source, dim, where)
    else:
        vocabulary = entry.get("vocabulary")
        if not isinstance(vocabulary, list):
            raise SchemaError(f"{where}: vocabulary is missing or not a list")
        _check_vocabulary(name, vocabulary, where)
        min_count = _require(entry, "min_count", int, where)
        max_len = separator = None
        if field_type == "multi_valued":
            max_len = _require(entry, "max_len", int, where)
            separator = _require(entry, "separator", str, where)
            if max_len < 1 or not separator:
                raise SchemaError(f"{where}: max_len {max_len} must be >= 1, separator non-empty")
        spec = FieldSpec(
            name=name,
            type=field_type,
            source=source,
            embedding_dim=dim,
            vocabulary=tuple(vocabulary),
            min_count=min_count,
            max_len=max_len,
            separator=separator,
        )

    stated_size = entry.get("vocab_size")
    if stated_size != spec.vocab_size:
        raise SchemaError(
            f"{where}: vocab_size is {stated_size!r} but the field has {spec.vocab_size} rows; "
            "the file was edited by hand or truncated: re-run the fit step"
        )
    return spec


def _numeric_from_dict(
    entry: Mapping[str, Any], name: str, source: Source, dim: int | None, where: str
) -> FieldSpec:
    transform = entry.get("transform")
    if transform not in TRANSFORMS:
        raise SchemaError(f"{where}: transform is {transform!r}. Use one of {TRANSFORMS}")
    fill_value = entry.get("fill_value")
    if not isinstance(fill_value, int | float) or isinstance(fill_value, bool):
        raise SchemaError(f"{where}: fill_value is {fill_value!r}, expected a number")
    boundaries: tuple[float, ...] = ()
    n_buckets = None
    if transform == "bucket":
        raw = entry.get("boundaries")
        if not isinstance(raw, list) or not all(
            isinstance(b, int | float) and not isinstance(b, bool) and math.isfinite(b) for b in raw
        ):
            raise SchemaError(f"{where}: boundaries {raw!r} must be a list of finite numbers")
        if any(b >= a for b, a in itertools.pairwise(raw)):
            raise SchemaError(f"{where}: boundaries {raw!r} are not strictly increasing")
        boundaries = tuple(float(b) for b in raw)
        n_buckets = entry.get("n_buckets")
    return FieldSpec(
        name=name,
        type="numeric",
        source=source,
        embedding_dim=dim,
        fill_value=float(fill_value),
        transform=transform,
        boundaries=boundaries,
        n_buckets=n_buckets,
    )


def _check_vocabulary(name: str, vocabulary: list[Any], origin: str) -> None:
    if not all(isinstance(token, str) for token in vocabulary):
        raise SchemaError(f"{origin}: vocabulary of field {name!r} contains non-string tokens")
    if len(set(vocabulary)) != len(vocabulary):
        seen: set[str] = set()
        duplicates = sorted({t for t in vocabulary if t in seen or seen.add(t)})[:5]
        raise SchemaError(
            f"{origin}: vocabulary of field {name!r} has duplicate tokens {duplicates}; "
            "re-run the fit step"
        )


def _check_field_names(names: list[str], label: str, origin: str) -> None:
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SchemaError(f"{origin}: field names {duplicates} are used more than once")
    for name in names:
        if name.strip().lower() == label.strip().lower():
            raise SchemaError(
                f"{origin}: field {name!r} has the label's name {label!r}. The label is never "
                "a feature: remove it from the feature list"
            )


# --------------------------------------------------------------------------- fitting


@dataclasses.dataclass(frozen=True)
class _FieldDef:
    name: str
    type: FieldType
    source: Source
    min_count: int | None
    fill_value: float
    transform: Transform
    n_buckets: int
    separator: str
    max_len: int | None

    @property
    def is_bucket_def(self) -> bool:
        return self.type == "numeric" and self.transform == "bucket"


def _read_field_def(definition: Any) -> _FieldDef:
    """Read one field definition from a mapping or an object with the same attributes."""

    def get(key: str, default: Any = None) -> Any:
        if isinstance(definition, Mapping):
            return definition.get(key, default)
        return getattr(definition, key, default)

    name = get("name")
    if not isinstance(name, str) or not name:
        raise SchemaError(f"field definition {definition!r} has no 'name'")
    field_type = get("type")
    source = get("source")
    if field_type not in FIELD_TYPES:
        raise SchemaError(f"field {name!r}: type is {field_type!r}. Use one of {FIELD_TYPES}")
    if source not in SOURCES:
        raise SchemaError(f"field {name!r}: source is {source!r}. Use one of {SOURCES}")

    transform = get("transform") or "log"
    if transform not in TRANSFORMS:
        raise SchemaError(f"field {name!r}: transform is {transform!r}. Use one of {TRANSFORMS}")
    n_buckets = get("n_buckets") or DEFAULT_N_BUCKETS
    max_len = get("max_len")
    min_count = get("min_count")
    if not isinstance(n_buckets, int) or n_buckets < 2:
        raise SchemaError(f"field {name!r}: n_buckets is {n_buckets!r}. Use an integer >= 2")
    if max_len is not None and (not isinstance(max_len, int) or max_len < 1):
        raise SchemaError(f"field {name!r}: max_len is {max_len!r}. Use an integer >= 1")
    if min_count is not None and (not isinstance(min_count, int) or min_count < 1):
        raise SchemaError(f"field {name!r}: min_count is {min_count!r}. Use an integer >= 1")

    # Partitions store multi-valued tokens joined by "|" whatever the raw separator was.
    return _FieldDef(
        name=name,
        type=field_type,
        source=source,
        min_count=min_count,
        fill_value=float(get("fill_value", 0.0) or 0.0),
        transform=transform,
        n_buckets=n_buckets,
        separator=MULTI_VALUED_SEPARATOR,
        max_len=max_len,
    )


def as_tokens(values: pd.Series) -> pd.Series:
    """Return categorical values as strings, with null for missing and for empty strings.

    Non-string values (integers, floats) are matched by ``str(value)``, so a column must
    keep one dtype across days (partitions store categoricals as strings).
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    if isinstance(values.dtype, pd.StringDtype):
        tokens = values
    elif values.dtype == object:
        kind = pd.api.types.infer_dtype(values, skipna=True)
        tokens = values if kind in ("string", "empty") else _stringify(values)
    else:
        tokens = _stringify(values)
    return tokens.mask(tokens == "")


def _stringify(values: pd.Series) -> pd.Series:
    result = pd.Series(None, index=values.index, dtype=object)
    present = values.notna()
    result[present] = values[present].astype(str).to_numpy(dtype=object)
    return result


def split_multi_valued(values: pd.Series, separator: str) -> tuple[np.ndarray, np.ndarray]:
    """Split a multi-valued column into ``(row_positions, tokens)``, in row and token order.

    Null and empty values give no tokens; empty tokens (``"a||b"``) are dropped.
    """
    tokens = as_tokens(values.reset_index(drop=True)).dropna()
    if tokens.empty:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
    exploded = tokens.astype(object).str.split(separator, regex=False).explode()
    keep = exploded.notna() & (exploded != "")
    exploded = exploded[keep]
    return exploded.index.to_numpy(dtype=np.int64), exploded.to_numpy(dtype=object)


class TokenCounter:
    """Token counts of one field accumulated chunk by chunk (memory O(distinct tokens))."""

    def __init__(self, merge_rows: int = 1_000_000) -> None:
        self._merge_rows = merge_rows
        self._merged = pd.Series(dtype=np.int64)
        self._pending: list[pd.Series] = []
        self._pending_rows = 0

    def update(self, tokens: pd.Series | np.ndarray) -> None:
        """Add the non-null tokens of one chunk."""
        counts = count_tokens(tokens)
        self._pending.append(counts)
        self._pending_rows += len(counts)
        # Merge when the pending counts outgrow the merged ones: amortised O(total).
        if self._pending_rows > max(self._merge_rows, 2 * len(self._merged)):
            self._merge()

    def counts(self) -> pd.Series:
        """Return the counts (index: token, value: count)."""
        self._merge()
        return self._merged

    def _merge(self) -> None:
        if not self._pending:
            return
        combined = pd.concat([self._merged, *self._pending])
        self._merged = combined.groupby(level=0, sort=False).sum().astype(np.int64)
        self._pending = []
        self._pending_rows = 0


def count_tokens(tokens: pd.Series | np.ndarray) -> pd.Series:
    """Count the non-null tokens of one chunk (index: token as ``str``, value: count)."""
    codes, uniques = pd.factorize(tokens, use_na_sentinel=True)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques)).astype(np.int64)
    return pd.Series(counts, index=np.asarray(uniques, dtype=object), dtype=np.int64)


def ordered_vocabulary(counts: pd.Series, min_count: int) -> list[str]:
    """Tokens with ``count >= min_count``, ordered by count descending, then token ascending.

    Ties sort by UTF-8 bytes, which is the order of Unicode code points (Python's string
    order), so the order does not depend on the order of the rows the counts came from.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    kept = counts[counts >= min_count]
    table = pa.table(
        {
            "token": pa.array(kept.index.to_numpy(dtype=object), type=pa.string()),
            "count": pa.array(kept.to_numpy(dtype=np.int64)),
        }
    )
    order = pc.sort_indices(table, sort_keys=[("count", "descending"), ("token", "ascending")])
    return table.column("token").take(order).to_pylist()


class ValueCounter:
    """Exact counts of the finite values of a numeric field (memory O(distinct values))."""

    def __init__(self) -> None:
        self._values = np.empty(0, dtype=np.float64)
        self._counts = np.empty(0, dtype=np.int64)

    def update(self, values: np.ndarray) -> None:
        finite = values[np.isfinite(values)]
        unique, counts = np.unique(finite, return_counts=True)
        merged = np.concatenate([self._values, unique])
        weights = np.concatenate([self._counts, counts])
        self._values, inverse = np.unique(merged, return_inverse=True)
        self._counts = np.bincount(inverse, weights=weights, minlength=len(self._values)).astype(
            np.int64
        )

    def quantile_boundaries(self, n_buckets: int) -> list[float]:
        """Bucket boundaries at the quantiles ``k / n_buckets``, ``k = 1 .. n_buckets - 1``.

        The ``q`` quantile is the smallest value ``v`` with ``P(X <= v) >= q`` (the
        inverted CDF, Hyndman and Fan 1996, definition 1). Repeated boundaries are merged
        and boundaries equal to the maximum dropped, so no bucket is empty on the fit data.
        Encoding puts ``x`` in bucket ``b`` with ``boundaries[b-1] < x <= boundaries[b]``.
        """
        total = int(self._counts.sum())
        if total == 0:
            return []
        cumulative = np.cumsum(self._counts)
        targets = np.arange(1, n_buckets) / n_buckets * total
        positions = np.searchsorted(cumulative, targets - 1e-9 * total, side="left")
        boundaries = np.unique(self._values[np.minimum(positions, len(self._values) - 1)])
        boundaries = boundaries[boundaries < self._values[-1]]
        return [float(b) for b in boundaries]


def numeric_values(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Return a numeric column as float64 with NaN for nulls; raise DataError if not numeric."""
    try:
        return frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as error:
        raise DataError(
            f"column {column!r} must be numeric (float64, null for missing) but {error}; "
            "fix the source column or declare the feature as categorical"
        ) from None


def fit_schema(
    frames: Iterable[pd.DataFrame],
    field_defs: Sequence[Any],
    min_count: int,
    fit_range: tuple[str, str] | Sequence[str],
    dataset: str,
    label: str = "label",
) -> FeatureSchema:
    """Fit vocabularies and bucket boundaries on ``frames`` and return the frozen schema.

    ``frames`` are chunks of the partitions inside ``fit_range`` (inclusive UTC days); the
    counts are accumulated chunk by chunk, so only the counts stay in memory. Every chunk's
    ``timestamp`` must lie inside ``fit_range`` (DataError otherwise). ``field_defs`` are
    mappings or objects with ``name``, ``type``, ``source`` and the per-type options
    (``fill_value``, ``transform``, ``n_buckets``, ``max_len``, optional ``min_count``).
    A multi-valued field without ``max_len`` gets the largest token count of a fit row.
    """
    started = time.perf_counter()
    defs = [_read_field_def(d) for d in field_defs]
    if not defs:
        raise SchemaError("no field definitions: list at least one feature to fit a schema")
    _check_field_names([d.name for d in defs], label, f"fields of dataset {dataset!r}")
    if not isinstance(min_count, int) or min_count < 1:
        raise ParamsError(f"features.min_count is {min_count!r}. Use an integer >= 1")
    start_day, end_day = _fit_days(fit_range)
    low = day_start_timestamp(start_day)
    high = day_start_timestamp(shift_day(end_day, 1))
    logger.info("fitting schema of %s on %s..%s: %d fields", dataset, start_day, end_day, len(defs))

    token_counters = {d.name: TokenCounter() for d in defs if d.type != "numeric"}
    value_counters = {d.name: ValueCounter() for d in defs if d.is_bucket_def}
    longest = dict.fromkeys((d.name for d in defs if d.type == "multi_valued"), 0)
    rows = 0
    for chunk in frames:
        _check_chunk(chunk, defs, low, high, start_day, end_day, dataset)
        rows += len(chunk)
        for definition in defs:
            name = definition.name
            if definition.type == "categorical":
                token_counters[name].update(as_tokens(chunk[name]).dropna())
            elif definition.type == "multi_valued":
                positions, tokens = split_multi_valued(chunk[name], definition.separator)
                token_counters[name].update(tokens)
                if len(positions):
                    longest[name] = max(longest[name], int(np.bincount(positions).max()))
            elif name in value_counters:
                value_counters[name].update(numeric_values(chunk, name))

    if rows == 0:
        raise DataError(
            f"no rows of dataset {dataset!r} in the fit range {start_day}..{end_day}; "
            "check split dates in params.yaml and that ingest wrote these days"
        )

    fields = []
    for definition in defs:
        fields.append(_fit_field(definition, min_count, token_counters, value_counters, longest))
    schema = FeatureSchema(
        dataset=dataset, fit_range=(start_day, end_day), fields=tuple(fields), label=label
    )
    logger.info(
        "schema of %s fitted on %d rows in %.2f s: %s",
        dataset,
        rows,
        time.perf_counter() - started,
        ", ".join(f"{f.name}={f.vocab_size}" for f in schema.fields),
    )
    return schema


def _fit_days(fit_range: Sequence[str]) -> tuple[str, str]:
    if len(fit_range) != 2:
        raise ParamsError(f"fit range {list(fit_range)!r} must be [start_day, end_day]")
    try:
        start, end = (parse_day(day).isoformat() for day in fit_range)
    except ValueError as error:
        raise ParamsError(f"fit range {list(fit_range)!r} is invalid: {error}") from None
    if end < start:
        raise ParamsError(f"fit range {start}..{end} ends before it starts. Swap the days")
    return start, end


def _check_chunk(
    chunk: pd.DataFrame,
    defs: list[_FieldDef],
    low: int,
    high: int,
    start_day: str,
    end_day: str,
    dataset: str,
) -> None:
    missing = [name for name in ["timestamp", *(d.name for d in defs)] if name not in chunk]
    if missing:
        raise DataError(
            f"partition chunk of dataset {dataset!r} lacks columns {missing}; "
            f"columns present: {list(chunk.columns)}. Re-run ingest or fix the field list"
        )
    if chunk.empty:
        return
    timestamps = chunk["timestamp"].to_numpy()
    first, last = int(timestamps.min()), int(timestamps.max())
    if first < low or last >= high:
        raise DataError(
            f"dataset {dataset!r}: rows with timestamps {first}..{last} fall outside the fit "
            f"range {start_day}..{end_day}. Pass only the partitions of that range to fit_schema"
        )


def _fit_field(
    definition: _FieldDef,
    min_count: int,
    token_counters: Mapping[str, TokenCounter],
    value_counters: Mapping[str, ValueCounter],
    longest: Mapping[str, int],
) -> FieldSpec:
    name = definition.name
    if definition.type == "numeric":
        boundaries: tuple[float, ...] = ()
        if definition.is_bucket_def:
            boundaries = tuple(value_counters[name].quantile_boundaries(definition.n_buckets))
        return FieldSpec(
            name=name,
            type="numeric",
            source=definition.source,
            fill_value=definition.fill_value,
            transform=definition.transform,
            boundaries=boundaries,
            n_buckets=definition.n_buckets if definition.is_bucket_def else None,
        )

    field_min_count = definition.min_count or min_count
    vocabulary = ordered_vocabulary(token_counters[name].counts(), field_min_count)
    max_len = None
    separator = None
    if definition.type == "multi_valued":
        max_len = definition.max_len or max(1, longest[name])
        separator = definition.separator
    return FieldSpec(
        name=name,
        type=definition.type,
        source=definition.source,
        vocabulary=tuple(vocabulary),
        min_count=field_min_count,
        max_len=max_len,
        separator=separator,
    )
