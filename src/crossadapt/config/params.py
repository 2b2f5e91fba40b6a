"""Pydantic models of params.yaml and ``load_params``, which turns every invalid value into a
ParamsError naming the key path, the value, the allowed values and the file."""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from crossadapt.config.days import check_day, day_range, shift_day
from crossadapt.data.spec import DatasetSpec
from crossadapt.errors import ParamsError

logger = logging.getLogger(__name__)

# Registry names of the CTR architectures (crossadapt.models.registry.ARCHITECTURES).
ARCHITECTURES = (
    "dnn",
    "wide_deep",
    "deepfm",
    "dcn",
    "dcnv2",
    "xdeepfm",
    "autoint",
    "fibinet",
    "finalmlp",
)
DATASETS = ("movielens-100k", "open-bandit", "criteo", "avazu", "synthetic", "generic")

Arch = Literal[
    "dnn", "wide_deep", "deepfm", "dcn", "dcnv2", "xdeepfm", "autoint", "fibinet", "finalmlp"
]
DayStr = Annotated[str, BeforeValidator(check_day)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
PositiveInt = Annotated[int, Field(ge=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DatasetParams(_Section):
    """Dataset choice: the log to ingest and the options of its preset."""

    name: Literal["movielens-100k", "open-bandit", "criteo", "avazu", "synthetic", "generic"]
    label_threshold: float = 4.0
    path: str | list[str] | None = None
    rows_per_day: PositiveInt = 100_000
    start_date: DayStr = "2014-01-01"
    generic: DatasetSpec | None = None
    synthetic: dict[str, Any] | None = None

    @field_validator("path")
    @classmethod
    def _non_empty_paths(cls, value: str | list[str] | None) -> str | list[str] | None:
        paths = [value] if isinstance(value, str) else (value or [])
        if isinstance(value, list) and not value:
            raise ValueError("path is an empty list: give a file, a list of files, or null")
        if any(not path.strip() or "\x00" in path for path in paths):
            raise ValueError("path contains an empty or invalid file name")
        return value

    @model_validator(mode="after")
    def _preset_options(self) -> DatasetParams:
        if self.name == "generic" and self.generic is None:
            raise ValueError("dataset.name is 'generic': describe the log in dataset.generic")
        if self.name != "generic" and self.generic is not None:
            raise ValueError(
                f"dataset.generic is set but dataset.name is {self.name!r}: set it to null "
                "or set dataset.name to 'generic'"
            )
        if self.name in ("criteo", "avazu") and self.path is None:
            raise ValueError(f"dataset.name is {self.name!r}: set dataset.path to its file(s)")
        return self


class SplitParams(_Section):
    """Inclusive UTC dates: history | retained | online days | test."""

    history_start: DayStr
    retained_start: DayStr
    online_start: DayStr
    online_end: DayStr
    test_start: DayStr
    test_end: DayStr

    @model_validator(mode="after")
    def _ordered(self) -> SplitParams:
        pairs = [
            ("history_start", "retained_start", "<="),
            ("retained_start", "online_start", "<"),
            ("online_start", "online_end", "<="),
            ("online_end", "test_start", "<"),
            ("test_start", "test_end", "<="),
        ]
        for first, second, relation in pairs:
            a, b = getattr(self, first), getattr(self, second)
            if (relation == "<" and not a < b) or (relation == "<=" and not a <= b):
                raise ValueError(
                    f"split dates out of order: {first} ({a}) must be {relation} {second} ({b}); "
                    "the order is history_start <= retained_start < online_start <= online_end "
                    "< test_start <= test_end"
                )
        return self

    def history_days(self) -> list[str]:
        """Return the teacher-only days: history_start .. retained_start - 1 (may be empty)."""
        return day_range(self.history_start, shift_day(self.retained_start, -1))

    def retained_days(self) -> list[str]:
        """Return the retained window: retained_start .. online_start - 1."""
        return day_range(self.retained_start, shift_day(self.online_start, -1))

    def online_days(self) -> list[str]:
        """Return the online days, one co-distillation run each: online_start .. online_end."""
        return day_range(self.online_start, self.online_end)

    def test_days(self) -> list[str]:
        """Return the held-out test days: test_start .. test_end."""
        return day_range(self.test_start, self.test_end)


class FeaturesParams(_Section):
    min_count: PositiveInt = 1
    numeric_transform: Literal["log", "bucket"] = "log"


class TeacherParams(_Section):
    arch: Arch
    embedding_dim: PositiveInt
    hidden_units: list[PositiveInt]
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    weight_init: Literal["torch", "xavier"] = "torch"
    sparse_gradients: bool = False
    epochs: PositiveInt = 1
    batch_size: PositiveInt = 1024
    lr_embedding: PositiveFloat = 0.01
    lr_dense: PositiveFloat = 0.001
    early_stopping_patience: Annotated[int, Field(ge=0)] = 1


class StudentParams(_Section):
    arch: Arch
    embedding_dim: PositiveInt
    hidden_units: list[PositiveInt]
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    weight_init: Literal["torch", "xavier"] = "torch"
    sparse_gradients: bool = False
    new_row_init: Literal["mean", "random"] = "mean"


class SamplingParams(_Section):
    strategy: Literal["uniform", "balanced", "recency", "balanced_recency", "uncertainty", "none"]
    ratio: Annotated[float, Field(gt=0.0, le=1.0)]
    positive_rate: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    chunk_rows: PositiveInt = 100_000


class DistillParams(_Section):
    alpha: Probability
    temperature: PositiveFloat
    # 0 epochs skips a step (the "no step B" ablation).
    epochs_b: Annotated[int, Field(ge=0)] = 1
    epochs_c: Annotated[int, Field(ge=0)] = 1
    lr_embedding: PositiveFloat = 0.1
    lr_dense: PositiveFloat = 0.001
    batch_size: PositiveInt = 256


class OnlineParams(_Section):
    batch_size: PositiveInt = 256
    alpha: Probability = 0.7
    temperature: PositiveFloat = 4.0
    replay_ratio: Probability = 0.1
    teacher_update_interval: PositiveInt = 10
    reverse_kd_weight: Annotated[float, Field(ge=0.0)] = 0.0
    lr_embedding: PositiveFloat = 0.01
    lr_dense: PositiveFloat = 0.001


class AdaptationParams(_Section):
    enabled: bool = True
    reference: Literal["retained", "last_n_days"] = "retained"
    last_n_days: PositiveInt = 7
    alpha_max: Probability = 0.7
    alpha_min: Probability = 0.3
    replay_max: Probability = 0.1
    drift_threshold: Probability = 0.5
    statistical_threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.05

    @model_validator(mode="after")
    def _alpha_bounds(self) -> AdaptationParams:
        if self.alpha_min > self.alpha_max:
            raise ValueError(
                f"alpha_min ({self.alpha_min}) must be <= alpha_max ({self.alpha_max})"
            )
        return self


class ValidationParams(_Section):
    min_rows: Annotated[int, Field(ge=0)] = 1
    max_oov_rate: Probability = 0.95
    max_oov_rate_by_field: dict[str, Probability] = Field(default_factory=dict)


class PromotionParams(_Section):
    last_n_days: PositiveInt = 7
    auc_margin: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.005
    max_abs_prediction_bias: Annotated[float, Field(ge=0.0)] = 0.1


class PathsParams(_Section):
    """Output folders, relative to the project root (the folder of params.yaml)."""

    data_dir: str = "data"
    artifacts_dir: str = "artifacts"

    @field_validator("data_dir", "artifacts_dir")
    @classmethod
    def _inside_project(cls, value: str, info: ValidationInfo) -> str:
        root = _project_root_from(info)
        check_project_path(value, root)
        return value


class Params(_Section):
    """Every knob of the pipeline (params.yaml)."""

    seed: Annotated[int, Field(ge=0)] = 42
    dataset: DatasetParams
    split: SplitParams
    features: FeaturesParams = Field(default_factory=FeaturesParams)
    teacher: TeacherParams
    student: StudentParams
    sampling: SamplingParams
    distill: DistillParams
    online: OnlineParams = Field(default_factory=OnlineParams)
    adaptation: AdaptationParams = Field(default_factory=AdaptationParams)
    validation: ValidationParams = Field(default_factory=ValidationParams)
    promotion: PromotionParams = Field(default_factory=PromotionParams)
    paths: PathsParams = Field(default_factory=PathsParams)

    _project_root: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str = PrivateAttr(default="<in memory>")

    @model_validator(mode="after")
    def _remember_root(self, info: ValidationInfo) -> Params:
        self._project_root = _project_root_from(info)
        return self

    @property
    def project_root(self) -> Path:
        """Folder that relative paths are resolved against (the folder of params.yaml)."""
        return self._project_root

    @property
    def source(self) -> str:
        """File the parameters were loaded from."""
        return self._source

    def data_dir(self) -> Path:
        """Absolute ``paths.data_dir``."""
        return _resolve(self.paths.data_dir, self._project_root)

    def artifacts_dir(self) -> Path:
        """Absolute ``paths.artifacts_dir``."""
        return _resolve(self.paths.artifacts_dir, self._project_root)

    def dataset_name(self) -> str:
        """Partition folder name: the preset name, or ``dataset.generic.name``."""
        if self.dataset.name == "generic" and self.dataset.generic is not None:
            return self.dataset.generic.name
        return self.dataset.name

    def history_days(self) -> list[str]:
        return self.split.history_days()

    def retained_days(self) -> list[str]:
        return self.split.retained_days()

    def online_days(self) -> list[str]:
        """Online days ``split.online_start .. split.online_end`` as ``YYYY-MM-DD`` strings."""
        return self.split.online_days()

    def test_days(self) -> list[str]:
        return self.split.test_days()


def check_project_path(value: str, project_root: Path) -> Path:
    """Return ``value`` resolved against ``project_root``; raise ``ValueError`` if it escapes it.

    Relative paths may not contain ``..``; absolute paths must lie inside the project.
    """
    if not value or "\x00" in value:
        raise ValueError(f"path {value!r} is empty or invalid")
    path = Path(value)
    if not path.is_absolute() and ".." in path.parts:
        raise ValueError(
            f"path {value!r} contains '..': give a folder inside the project, such as 'data'"
        )
    resolved = _resolve(value, project_root)
    root = project_root.resolve()
    if resolved != root and root not in resolved.parents:
        raise ValueError(
            f"path {value!r} is outside the project {root}: give a folder inside it, such as 'data'"
        )
    return resolved


def load_params(
    path: str | os.PathLike[str] = "params.yaml", overrides: dict[str, Any] | None = None
) -> Params:
    """Load, override and validate params.yaml; raise ParamsError on any invalid value.

    ``overrides`` maps dotted keys (``{"student.arch": "fibinet"}``) or nested sections
    (``{"student": {"arch": "fibinet"}}``) to values; they replace the file's values
    before validation. Relative paths in the file are resolved against its folder.
    """
    file = Path(path)
    if not file.is_file():
        raise ParamsError(
            f"parameter file {file} not found: run from the project root or pass --params PATH"
        )
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ParamsError(f"{file} is not valid YAML: {error}") from None
    except UnicodeDecodeError as error:
        raise ParamsError(f"{file} is not UTF-8 text ({error}); save it as UTF-8") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{file} must contain a mapping of sections, got {type(data).__name__}")

    if overrides:
        data = apply_overrides(data, overrides, source=str(file))

    root = file.resolve().parent
    try:
        params = Params.model_validate(data, context={"project_root": root})
    except ValidationError as error:
        raise ParamsError(format_validation_error(error, str(file))) from None
    params._source = str(file)
    logger.debug("loaded %s (overrides: %s)", file, sorted(overrides or {}))
    return params


def apply_overrides(
    data: dict[str, Any], overrides: dict[str, Any], source: str = "params.yaml"
) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted-key or nested ``overrides`` applied."""
    result = copy.deepcopy(data)
    for key, value in overrides.items():
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            raise ParamsError(
                f"override key {key!r} is invalid: use a dotted path like student.arch"
            )
        parts = key.split(".")
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ParamsError(f"override {key}: {prefix} in {source} is a value, not a section")
            node = child
        last = parts[-1]
        if isinstance(value, dict) and isinstance(node.get(last), dict):
            node[last] = _deep_merge(node[last], value)
        else:
            node[last] = copy.deepcopy(value)
    return result


def format_validation_error(error: ValidationError, source: str) -> str:
    """Format one line per invalid key: ``key.path = value: problem (allowed ...)``."""
    lines = [f"invalid parameters in {source}:"]
    for item in error.errors(include_url=False):
        key = ".".join(str(part) for part in item["loc"]) or "<top level>"
        kind = item["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_keys(item["loc"][:-1])
            lines.append(
                f"  {key}: unknown key; allowed keys here: {', '.join(allowed)}"
                if allowed
                else f"  {key}: unknown key"
            )
        elif kind == "missing":
            lines.append(f"  {key}: missing required key")
        else:
            value = item.get("input")
            message = item["msg"].removeprefix("Value error, ")
            # A whole section as the value is noise: cross-field messages name their values.
            value_text = "" if isinstance(value, dict) else f" = {value!r}"
            lines.append(f"  {key}{value_text}: {message}")
    lines.append(f"Fix these values in {source} (or in the overrides you passed).")
    return "\n".join(lines)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    # Walk the model tree along loc; list indices (ints) step into the item model.
    model: Any = Params
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _model_of(field.annotation)
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _model_of(argument)
        if found is not None:
            return found
    return None


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _project_root_from(info: ValidationInfo) -> Path:
    context = info.context or {}
    return Path(context.get("project_root") or Path.cwd())


def _resolve(value: str, root: Path) -> Path:
    path = Path(value)
    return (path if path.is_absolute() else root / path).resolve()
