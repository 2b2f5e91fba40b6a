"""Model checkpoints: one dict saved with ``torch.save``, written atomically, loaded only with
``weights_only=True`` and checked against the feature schema of the data.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossadapt.errors import CheckpointError
from crossadapt.storage.atomic import atomic_path

if TYPE_CHECKING:
    import torch

    from crossadapt.data.schema import FeatureSchema

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
ROLES = ("teacher", "student")
REQUIRED_KEYS = (
    "format_version",
    "role",
    "arch",
    "model_config",
    "schema",
    "schema_hash",
    "state_dict",
    "optimizer_state",
    "meta",
)


@dataclass
class Checkpoint:
    """Content of a checkpoint file (see ``save_checkpoint`` for the fields)."""

    path: Path
    role: str
    arch: str
    model_config: dict[str, Any]
    schema: dict[str, Any]
    schema_hash: str
    state_dict: dict[str, Any]
    optimizer_state: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION


_PLAIN_TYPES = (str, int, float, bool)
_MAPPING_TYPES = (dict, OrderedDict)
_SEQUENCE_TYPES = (list, tuple)


def _check_loadable(value: Any, where: str) -> None:
    """Raise TypeError if ``value`` contains anything the ``weights_only`` loader would reject.

    Checking before the write turns a checkpoint that could never be loaded into an error
    at save time, with the key path of the offending value.
    """
    import torch

    # Exact types: subclasses such as numpy.float64 (a float) are rejected by the loader.
    if value is None or type(value) in _PLAIN_TYPES or isinstance(value, torch.Tensor):
        return
    if type(value) in _MAPPING_TYPES:
        for key, item in value.items():
            if type(key) not in (str, int):
                raise TypeError(f"checkpoint key {where}[{key!r}] must be a str or int")
            _check_loadable(item, f"{where}[{key!r}]")
        return
    if type(value) in _SEQUENCE_TYPES:
        for index, item in enumerate(value):
            _check_loadable(item, f"{where}[{index}]")
        return
    raise TypeError(
        f"checkpoint value {where} has type {type(value).__name__}, which torch.load("
        "weights_only=True) cannot read back: convert it to a plain str/int/float/bool, "
        "list, dict or tensor"
    )


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    role: str,
    arch: str,
    model_config: Mapping[str, Any],
    schema_dict: Mapping[str, Any],
    schema_hash: str,
    state_dict: Mapping[str, Any],
    optimizer_state: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint dict to ``path`` atomically and return the path.

    Stored dict: ``{"format_version": 1, "role": "teacher" | "student", "arch",
    "model_config", "schema" (schema JSON with embedding dims), "schema_hash",
    "state_dict", "optimizer_state" (or None), "meta"}``. Raises TypeError when a value
    could not be loaded back with ``weights_only=True``.
    """
    import torch

    if role not in ROLES:
        raise ValueError(f"checkpoint role must be one of {ROLES}, got {role!r}")

    content = {
        "format_version": FORMAT_VERSION,
        "role": role,
        "arch": arch,
        "model_config": dict(model_config),
        "schema": dict(schema_dict),
        "schema_hash": schema_hash,
        "state_dict": dict(state_dict),
        "optimizer_state": None if optimizer_state is None else dict(optimizer_state),
        "meta": dict(meta or {}),
    }
    _check_loadable(content, "checkpoint")

    started = time.perf_counter()
    target = Path(path)
    with atomic_path(target) as tmp:
        torch.save(content, tmp)
    logger.info(
        "saved %s checkpoint %s (%s, %d tensors, %.1f MB) in %.2f s",
        role,
        target,
        arch,
        len(content["state_dict"]),
        target.stat().st_size / 1e6,
        time.perf_counter() - started,
    )
    return target


def _read_checkpoint_dict(path: Path) -> Any:
    import torch

    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} not found: run the step that writes it first, "
            "or check paths.artifacts_dir in params.yaml"
        )
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"checkpoint {path} was rejected: it contains objects other than tensors and plain "
            "containers, so it is not a CrossAdapt checkpoint or it was crafted to run code. "
            "Do not load it with weights_only=False; re-create it with the step that writes it"
        ) from error
    # torch.load reports a damaged archive with several types (RuntimeError for a missing
    # zip directory, EOFError for an empty file, KeyError for foreign bytes, ...).
    except Exception as error:
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(error).__name__}: {error}). "
            "Re-create it with the step that writes it"
        ) from error


def _validate_checkpoint_dict(content: Any, path: Path) -> None:
    if not isinstance(content, dict):
        raise CheckpointError(
            f"checkpoint {path} contains a {type(content).__name__}, not a CrossAdapt checkpoint "
            "dict: re-create it with the step that writes it"
        )

    missing = [key for key in REQUIRED_KEYS if key not in content]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} is missing the keys {missing}: it is not a CrossAdapt "
            "checkpoint, or an incomplete one. Re-create it with the step that writes it"
        )

    if content["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format_version {content['format_version']!r}, this "
            f"version of crossadapt reads format_version {FORMAT_VERSION}: re-create the "
            "checkpoint, or use the crossadapt version that wrote it"
        )

    if content["role"] not in ROLES:
        raise CheckpointError(
            f"checkpoint {path} has role {content['role']!r}, expected one of {ROLES}"
        )

    for key, expected_type in (("state_dict", dict), ("schema", dict), ("model_config", dict)):
        if not isinstance(content[key], expected_type):
            raise CheckpointError(
                f"checkpoint {path}: {key} is a {type(content[key]).__name__}, expected a dict"
            )


def load_checkpoint(
    path: str | os.PathLike[str], expected_schema_hash: str | None = None
) -> Checkpoint:
    """Load and validate a checkpoint written by ``save_checkpoint``, tensors on the CPU.

    Raises ``CheckpointError`` naming the file when it is missing, truncated or corrupt,
    contains anything but tensors and plain containers, lacks keys, has another
    ``format_version``, or was trained on a feature schema whose hash differs from
    ``expected_schema_hash``. The ``weights_only=True`` unpickler of ``torch.load``
    rebuilds only allow-listed types, so a crafted file is rejected before any of its
    code runs.
    """
    source = Path(path)
    started = time.perf_counter()
    content = _read_checkpoint_dict(source)
    _validate_checkpoint_dict(content, source)

    if expected_schema_hash is not None and content["schema_hash"] != expected_schema_hash:
        raise CheckpointError(
            f"checkpoint {source} was trained on another feature schema: its schema hash is "
            f"{content['schema_hash']}, the data's schema hash is {expected_schema_hash}. "
            "Re-run the fit and transfer steps so that the checkpoint and the data share "
            "one schema.json"
        )

    checkpoint = Checkpoint(
        path=source,
        role=content["role"],
        arch=content["arch"],
        model_config=content["model_config"],
        schema=content["schema"],
        schema_hash=content["schema_hash"],
        state_dict=content["state_dict"],
        optimizer_state=content["optimizer_state"],
        meta=content["meta"] or {},
        format_version=content["format_version"],
    )
    logger.info(
        "loaded %s checkpoint %s (%s, %d tensors) in %.2f s",
        checkpoint.role,
        source,
        checkpoint.arch,
        len(checkpoint.state_dict),
        time.perf_counter() - started,
    )
    return checkpoint


def _model_config_dict(model: torch.nn.Module) -> dict[str, Any]:
    config = getattr(model, "config", None)
    if config is None:
        raise TypeError(f"{type(model).__name__} has no `config` attribute to store")
    if hasattr(config, "model_dump"):
        return config.model_dump(mode="json")
    return dict(config)


def save_model_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    schema: FeatureSchema,
    role: str,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Save ``model`` (its ``arch``, ``config`` and weights), its optimizer and its schema.

    ``schema`` is the model's schema with embedding dims; its ``hash()`` is stored so that
    data encoded with another schema is rejected at load time.
    """
    return save_checkpoint(
        path,
        role=role,
        arch=model.arch,
        model_config=_model_config_dict(model),
        schema_dict=schema.to_dict(),
        schema_hash=schema.hash(),
        state_dict=model.state_dict(),
        optimizer_state=None if optimizer is None else optimizer.state_dict(),
        meta=meta,
    )


def load_model(
    path: str | os.PathLike[str], schema: FeatureSchema | None = None
) -> tuple[torch.nn.Module, Checkpoint]:
    """Rebuild the model stored in a checkpoint and load its weights.

    The model is built with ``registry.build_model`` from the checkpoint's own schema
    (which carries its embedding dims). When ``schema`` is given, its hash must equal the
    checkpoint's, so a model is never applied to data encoded with another vocabulary.
    """
    from crossadapt.data.schema import FeatureSchema
    from crossadapt.models.registry import build_model

    expected_hash = None if schema is None else schema.hash()
    checkpoint = load_checkpoint(path, expected_schema_hash=expected_hash)
    model_schema = FeatureSchema.from_dict(checkpoint.schema)
    model = build_model(checkpoint.arch, model_schema, checkpoint.model_config)

    try:
        model.load_state_dict(checkpoint.state_dict)
    except RuntimeError as error:
        raise CheckpointError(
            f"checkpoint {checkpoint.path}: its weights do not fit a {checkpoint.arch} model "
            f"built from its own config and schema ({error}). The file was written by "
            "another version of the model code: re-create it with the step that writes it"
        ) from error
    return model, checkpoint
