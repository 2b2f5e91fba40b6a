"""Turn an Airflow DAG run's configuration into validated params.yaml overrides.

The DAGs load their parameters only through this module: a run's ``conf`` may set the
whitelisted keys below and nothing else, so a trigger cannot point a step at other files.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossadapt.config.days import DAY_PATTERN, check_day
from crossadapt.errors import CrossAdaptError, ParamsError

if TYPE_CHECKING:
    from crossadapt.config.params import Params

logger = logging.getLogger(__name__)

PROJECT_DIR_ENV = "CROSSADAPT_PROJECT_DIR"
PARAMS_FILE_NAME = "params.yaml"


@dataclass(frozen=True)
class ConfKey:
    """One key a DAG run's ``conf`` may set: the params.yaml key it overrides and its type."""

    params_key: str
    kind: type
    is_day: bool = False


# The only conf keys a run may set. Ranges and allowed values are checked by
# crossadapt.config.params when the overrides are applied, so the messages match params.yaml's.
CONF_KEYS: dict[str, ConfKey] = {
    "student_arch": ConfKey("student.arch", str),
    "student_embedding_dim": ConfKey("student.embedding_dim", int),
    "teacher_arch": ConfKey("teacher.arch", str),
    "teacher_embedding_dim": ConfKey("teacher.embedding_dim", int),
    "retained_start": ConfKey("split.retained_start", str, is_day=True),
    "online_start": ConfKey("split.online_start", str, is_day=True),
    "sampling_strategy": ConfKey("sampling.strategy", str),
    "sampling_ratio": ConfKey("sampling.ratio", float),
    "distill_alpha": ConfKey("distill.alpha", float),
    "distill_temperature": ConfKey("distill.temperature", float),
}


def project_dir(default: Path) -> Path:
    """Return the project root: ``$CROSSADAPT_PROJECT_DIR`` when set, else ``default``.

    Raises ParamsError when the folder has no params.yaml.
    """
    configured = os.environ.get(PROJECT_DIR_ENV)
    root = Path(configured).expanduser().resolve() if configured else Path(default).resolve()
    if not (root / PARAMS_FILE_NAME).is_file():
        source = f"${PROJECT_DIR_ENV}={configured}" if configured else "the parent of dags/"
        raise ParamsError(
            f"project folder {root} ({source}) has no {PARAMS_FILE_NAME}: set "
            f"{PROJECT_DIR_ENV} to the CrossAdapt checkout the DAGs should run in"
        )
    return root


def overrides_from_conf(conf: Mapping[str, Any] | None) -> dict[str, Any]:
    """Map a run's ``conf`` to dotted params.yaml overrides, rejecting anything not whitelisted.

    A value of None keeps the value of params.yaml. Raises ParamsError naming the key.
    """
    overrides: dict[str, Any] = {}
    for key, value in (conf or {}).items():
        spec = CONF_KEYS.get(key)
        if spec is None:
            raise ParamsError(
                f"DAG run conf key {key!r} is not accepted; allowed keys: "
                f"{', '.join(sorted(CONF_KEYS))}. Set other parameters in params.yaml"
            )
        if value is None:
            continue
        overrides[spec.params_key] = _checked_value(key, spec, value)
    return overrides


def _checked_value(key: str, spec: ConfKey, value: Any) -> Any:
    # bool is an int subclass: reject it explicitly so `true` never becomes 1.
    if isinstance(value, bool):
        raise ParamsError(f"DAG run conf {key} = {value!r}: expected {spec.kind.__name__}")
    if spec.kind is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, spec.kind):
        raise ParamsError(
            f"DAG run conf {key} = {value!r}: expected {spec.kind.__name__}, "
            f"got {type(value).__name__}"
        )
    if spec.is_day:
        return check_run_day(value, key)
    return value


def check_run_day(value: Any, key: str = "day") -> str:
    """Return ``value`` as a ``YYYY-MM-DD`` day string; raise ParamsError naming ``key``."""
    if not isinstance(value, str) or not DAY_PATTERN.match(value):
        raise ParamsError(
            f"DAG run {key} = {value!r}: expected a day YYYY-MM-DD (for example 1998-03-01)"
        )
    try:
        return check_day(value)
    except ValueError as error:
        raise ParamsError(f"DAG run {key} = {value!r}: {error}") from None


def load_run_params(conf: Mapping[str, Any] | None, default_project: Path) -> Params:
    """Load ``<project>/params.yaml`` with the overrides of ``conf`` applied and validated."""
    from crossadapt.config.params import load_params

    root = project_dir(default_project)
    overrides = overrides_from_conf(conf)
    params = load_params(root / PARAMS_FILE_NAME, overrides=overrides or None)
    if overrides:
        logger.info("params.yaml of %s with run overrides %s", root, overrides)
    return params


def changed_overrides(conf: Mapping[str, Any] | None, default_project: Path) -> dict[str, Any]:
    """Return the overrides of ``conf`` whose value differs from params.yaml.

    The trigger form submits every parameter, most of them unchanged; this is what a run
    actually changed, for its records.
    """
    from crossadapt.config.params import load_params

    root = project_dir(default_project)
    file_values = load_params(root / PARAMS_FILE_NAME).model_dump()
    changed = {}
    for key, value in overrides_from_conf(conf).items():
        section, name = key.split(".")
        if file_values[section][name] != value:
            changed[key] = value
    return changed


def load_file_params(default_project: Path) -> Params:
    """Load ``<project>/params.yaml`` without overrides (cheap: no torch, no data)."""
    from crossadapt.config.params import load_params

    return load_params(project_dir(default_project) / PARAMS_FILE_NAME)


@contextlib.contextmanager
def fail_fast_on_user_error() -> Iterator[None]:
    """Turn a CrossAdaptError into Airflow's AirflowFailException, which skips the retries.

    A user error (bad parameter, invalid data, a held run lock) fails the same way on
    every try, so the task fails at once with the error's message; other exceptions
    propagate unchanged and get the task's retries.
    """
    try:
        yield
    except CrossAdaptError as error:
        from airflow.sdk.exceptions import AirflowFailException

        logger.error("%s: %s", type(error).__name__, error)
        raise AirflowFailException(f"{type(error).__name__}: {error}") from error
