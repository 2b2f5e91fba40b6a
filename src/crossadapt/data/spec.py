"""DatasetSpec: a generic description of a click log (files, label, time, feature columns).

It is also the format of ``dataset.generic`` in params.yaml; the presets in
``crossadapt.data.presets`` are instances of it.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from crossadapt.config.days import check_day

DATASET_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
FEATURE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
RESERVED_COLUMNS = frozenset({"timestamp", "label"})
TIMESTAMP_FORMATS = ("unix_s", "unix_ms", "iso8601", "none")
# Placeholder in a side table path: the folder of the main file being joined.
DIR_PLACEHOLDER = "{dir}"

DayStr = Annotated[str, BeforeValidator(check_day)]
Source = Literal["user", "item", "context"]
FeatureType = Literal["categorical", "numeric", "multi_valued"]


def check_dataset_name(name: object) -> str:
    """Return ``name`` if it is a safe folder name for partitions, else raise ``ValueError``."""
    if not isinstance(name, str) or not re.match(DATASET_NAME_PATTERN, name) or ".." in name:
        raise ValueError(
            f"dataset name {name!r} is invalid: use 1-64 lowercase letters, digits, '.', '_' "
            "or '-', starting with a letter or digit, and no '..'"
        )
    return name


class _SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelSpec(_SpecModel):
    """Label column and how its values map to 0/1.

    Either ``positive_values`` (string match, numbers compared by value so "1.0" == "1";
    with ``negative_values`` every other value is rejected) or ``threshold``
    (label = value >= threshold, value must be numeric and inside ``valid_range``).
    """

    column: str = Field(min_length=1)
    positive_values: list[str] | None = None
    negative_values: list[str] | None = None
    threshold: float | None = None
    valid_range: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> LabelSpec:
        if (self.positive_values is None) == (self.threshold is None):
            raise ValueError("set exactly one of label.positive_values and label.threshold")
        if self.positive_values is not None and not self.positive_values:
            raise ValueError("label.positive_values is empty: list at least one value")
        if self.negative_values is not None:
            if self.positive_values is None:
                raise ValueError("label.negative_values needs label.positive_values")
            common = set(self.positive_values) & set(self.negative_values)
            if common:
                raise ValueError(f"label values {sorted(common)} are both positive and negative")
        if self.valid_range is not None:
            if self.threshold is None:
                raise ValueError("label.valid_range applies only with label.threshold")
            if self.valid_range[0] > self.valid_range[1]:
                raise ValueError(f"label.valid_range {list(self.valid_range)} is not [low, high]")
        return self


class TimestampSpec(_SpecModel):
    """Time column and its format.

    ``format``: ``unix_s``, ``unix_ms``, ``iso8601`` (naive values are read as UTC), a
    strptime format such as ``%y%m%d%H``, or ``none``: no time column, row ``i`` (counted
    over all files in order) gets day ``start_date + i // rows_per_day``.
    """

    column: str | None = None
    format: str = "unix_s"
    rows_per_day: int | None = Field(default=None, ge=1)
    start_date: DayStr | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TimestampSpec:
        if self.format not in TIMESTAMP_FORMATS and "%" not in self.format:
            raise ValueError(
                f"timestamp.format {self.format!r} is invalid: use one of "
                f"{', '.join(TIMESTAMP_FORMATS)} or a strptime format such as '%y%m%d%H'"
            )
        if self.format == "none":
            if self.column is not None:
                raise ValueError("timestamp.format 'none' takes no timestamp.column")
            if self.rows_per_day is None or self.start_date is None:
                raise ValueError("timestamp.format 'none' needs rows_per_day and start_date")
        elif not self.column:
            raise ValueError(f"timestamp.format {self.format!r} needs timestamp.column")
        return self


class FeatureColumn(_SpecModel):
    """One feature: its output name, where it comes from, and its source column.

    ``table`` names a side table (None: the main log); ``column`` defaults to ``name``.
    """

    name: str = Field(pattern=FEATURE_NAME_PATTERN)
    source: Source
    column: str | None = None
    table: str | None = None

    @property
    def source_column(self) -> str:
        return self.column if self.column is not None else self.name


class CategoricalColumn(FeatureColumn):
    """Categorical feature, kept as a string; ``prefix_length`` keeps only the first characters."""

    prefix_length: int | None = Field(default=None, ge=1)


class NumericColumn(FeatureColumn):
    """Numeric feature, kept as float64; ``fill_value`` and ``transform`` apply at encoding."""

    fill_value: float = 0.0
    transform: Literal["log", "bucket"] = "log"
    boundaries: list[float] | None = None

    @model_validator(mode="after")
    def _boundaries(self) -> NumericColumn:
        if self.boundaries is None:
            return self
        if self.transform != "bucket":
            raise ValueError(f"feature {self.name}: boundaries apply only with transform 'bucket'")
        if any(b >= a for b, a in zip(self.boundaries, self.boundaries[1:], strict=False)) or (
            not self.boundaries
        ):
            raise ValueError(
                f"feature {self.name}: boundaries {self.boundaries} must be a non-empty, "
                "strictly increasing list"
            )
        return self


class MultiValuedColumn(FeatureColumn):
    """Multi-valued feature: tokens split on ``separator``, stored joined by ``|``."""

    separator: str = Field(default="|", min_length=1)
    max_len: int = Field(default=8, ge=1)


class _TableFormat(_SpecModel):
    """How one table is stored: file format, delimiter, header and column renames."""

    format: Literal["auto", "csv", "parquet"] = "auto"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    header: bool = True
    column_names: list[str] | None = None
    rename: dict[str, str] = Field(default_factory=dict)
    encoding: str = "utf-8"

    @model_validator(mode="after")
    def _format_options(self) -> _TableFormat:
        if not self.header and not self.column_names:
            raise ValueError("header is false: list the columns in column_names")
        if self.column_names is not None and len(set(self.column_names)) != len(self.column_names):
            raise ValueError(f"column_names {self.column_names} contain duplicates")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"encoding {self.encoding!r} is not a known codec") from None
        return self


class SideTableSpec(_TableFormat):
    """A small table joined on a key (for example MovieLens users, Open Bandit item context).

    ``path`` may start with ``{dir}``, the folder of the main file the rows come from, so
    each main file can have its own side table.
    """

    name: str = Field(pattern=FEATURE_NAME_PATTERN)
    path: str = Field(min_length=1)
    key: str = Field(min_length=1)
    main_key: str | None = None

    @property
    def main_key_column(self) -> str:
        return self.main_key if self.main_key is not None else self.key


class DatasetSpec(_TableFormat):
    """Generic click log: files, label, timestamp, features and optional side tables."""

    name: str
    files: list[str] = Field(min_length=1)
    label: LabelSpec
    timestamp: TimestampSpec
    categorical: list[CategoricalColumn] = Field(default_factory=list)
    numeric: list[NumericColumn] = Field(default_factory=list)
    multi_valued: list[MultiValuedColumn] = Field(default_factory=list)
    side_tables: list[SideTableSpec] = Field(default_factory=list)
    chunk_rows: int = Field(default=100_000, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        check_dataset_name(self.name)
        if any(not path.strip() for path in self.files):
            raise ValueError("files contains an empty path")
        repeated = sorted({path for path in self.files if self.files.count(path) > 1})
        if repeated:
            raise ValueError(
                f"files lists {repeated} more than once, so their rows would be ingested "
                "twice; list each file once"
            )

        features = self.features()
        if not features:
            raise ValueError("no features: list at least one categorical, numeric or multi_valued")
        names = [feature.name for feature in features]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"feature names {duplicates} are used more than once")
        reserved = sorted(set(names) & RESERVED_COLUMNS)
        if reserved:
            raise ValueError(f"feature names {reserved} are reserved for the partition columns")

        table_names = [table.name for table in self.side_tables]
        if len(set(table_names)) != len(table_names):
            raise ValueError(f"side table names {table_names} contain duplicates")
        for feature in features:
            if feature.table is not None and feature.table not in table_names:
                raise ValueError(
                    f"feature {feature.name} refers to side table {feature.table!r}; "
                    f"defined side tables: {table_names or 'none'}"
                )
        return self

    def features(self) -> list[FeatureColumn]:
        """All features in partition column order: categorical, numeric, multi-valued."""
        return [*self.categorical, *self.numeric, *self.multi_valued]

    def feature_type(self, name: str) -> FeatureType:
        """Type of the feature called ``name``."""
        if any(feature.name == name for feature in self.categorical):
            return "categorical"
        if any(feature.name == name for feature in self.numeric):
            return "numeric"
        if any(feature.name == name for feature in self.multi_valued):
            return "multi_valued"
        raise KeyError(name)

    def side_table(self, name: str) -> SideTableSpec:
        """The side table called ``name``."""
        for table in self.side_tables:
            if table.name == name:
                return table
        raise KeyError(name)

    def main_columns(self) -> list[str]:
        """Source columns the main log must contain (label, time, features, join keys)."""
        columns = [self.label.column]
        if self.timestamp.column is not None:
            columns.append(self.timestamp.column)
        columns += [f.source_column for f in self.features() if f.table is None]
        columns += [table.main_key_column for table in self.side_tables]
        return list(dict.fromkeys(columns))

    def side_columns(self, table: str) -> list[str]:
        """Source columns side table ``table`` must contain (key first)."""
        columns = [self.side_table(table).key]
        columns += [f.source_column for f in self.features() if f.table == table]
        return list(dict.fromkeys(columns))

    def resolve_paths(self, base_dir: str | Path) -> DatasetSpec:
        """Copy with relative file paths made absolute against ``base_dir``.

        Side table paths that start with ``{dir}`` stay relative to each main file.
        """
        base = Path(base_dir)
        files = [str(base / path) if not Path(path).is_absolute() else path for path in self.files]
        tables = [
            table
            if table.path.startswith(DIR_PLACEHOLDER) or Path(table.path).is_absolute()
            else table.model_copy(update={"path": str(base / table.path)})
            for table in self.side_tables
        ]
        return self.model_copy(update={"files": files, "side_tables": tables})
