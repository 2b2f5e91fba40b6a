"""Registry of the model zoo: architecture names, their configs, and `build_model`.

Importing this module does not import torch: model classes load on first use, so the
parameter checks of the pipeline can validate names and configs cheaply.
"""

from __future__ import annotations

import importlib
import logging
import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from crossadapt.errors import ParamsError
from crossadapt.models import configs

if TYPE_CHECKING:
    from crossadapt.data.schema import FeatureSchema
    from crossadapt.models.base import CTRModel

logger = logging.getLogger(__name__)

# name -> (module, model class name, config class)
_ARCHITECTURE_SOURCES: dict[str, tuple[str, str, type[configs.ModelConfig]]] = {
    "dnn": ("crossadapt.models.dnn", "DNN", configs.DNNConfig),
    "wide_deep": ("crossadapt.models.wide_deep", "WideDeep", configs.WideDeepConfig),
    "deepfm": ("crossadapt.models.deepfm", "DeepFM", configs.DeepFMConfig),
    "dcn": ("crossadapt.models.dcn", "DCN", configs.DCNConfig),
    "dcnv2": ("crossadapt.models.dcnv2", "DCNv2", configs.DCNv2Config),
    "xdeepfm": ("crossadapt.models.xdeepfm", "XDeepFM", configs.XDeepFMConfig),
    "autoint": ("crossadapt.models.autoint", "AutoInt", configs.AutoIntConfig),
    "fibinet": ("crossadapt.models.fibinet", "FiBiNET", configs.FiBiNETConfig),
    "finalmlp": ("crossadapt.models.finalmlp", "FinalMLP", configs.FinalMLPConfig),
}

CONFIG_CLASSES: dict[str, type[configs.ModelConfig]] = {
    name: config_class for name, (_, _, config_class) in _ARCHITECTURE_SOURCES.items()
}


def architecture_names() -> list[str]:
    """Return the registered architecture names, in registry order."""
    return list(_ARCHITECTURE_SOURCES)


def _check_arch(arch: str) -> None:
    if arch not in _ARCHITECTURE_SOURCES:
        raise ParamsError(
            f"unknown architecture {arch!r}; valid names: {', '.join(architecture_names())}"
        )


def validate_model_config(arch: str, config: dict[str, Any] | None = None) -> configs.ModelConfig:
    """Validate a config dict for `arch`; raise ParamsError naming the key and the value."""
    _check_arch(arch)
    config_class = CONFIG_CLASSES[arch]
    try:
        return config_class.model_validate(config or {})
    except ValidationError as error:
        problems = []
        for issue in error.errors():
            key = ".".join(str(part) for part in issue["loc"]) or "<config>"
            if issue["type"] == "extra_forbidden":
                problems.append(f"unknown key '{key}'")
            else:
                problems.append(f"key '{key}' = {issue['input']!r}: {issue['msg']}")
        valid_keys = ", ".join(config_class.model_fields)
        raise ParamsError(
            f"invalid model config for architecture '{arch}': {'; '.join(problems)}. "
            f"Valid keys: {valid_keys}"
        ) from None


def model_class(arch: str) -> type[CTRModel]:
    """Return the model class of `arch`, importing its module (and torch) on first use."""
    _check_arch(arch)
    module_name, class_name, _ = _ARCHITECTURE_SOURCES[arch]
    model: type[CTRModel] = getattr(importlib.import_module(module_name), class_name)
    return model


def build_model(
    arch: str,
    schema: FeatureSchema,
    config: dict[str, Any] | BaseModel | None = None,
) -> CTRModel:
    """Build an `arch` model for `schema` from a config dict (missing keys take defaults).

    Raises ParamsError for an unknown architecture or config key, and SchemaError when
    the architecture needs one embedding dim and the schema's field dims differ.
    """
    started = time.perf_counter()
    if isinstance(config, BaseModel):
        config = config.model_dump()
    validated = validate_model_config(arch, config)
    model = model_class(arch)(schema, validated)
    if validated.weight_init == "xavier":
        from crossadapt.models.base import apply_xavier_init

        apply_xavier_init(model)

    embedding_count = sum(p.numel() for p in model.embedding_parameters())
    dense_count = sum(p.numel() for p in model.dense_parameters())
    logger.info(
        "built %s: %d embedding and %d dense parameters in %.2f s",
        arch,
        embedding_count,
        dense_count,
        time.perf_counter() - started,
    )
    return model


def __getattr__(name: str) -> Any:
    """Build `ARCHITECTURES` (name -> (model class, config class)) on first access."""
    if name == "ARCHITECTURES":
        return {arch: (model_class(arch), CONFIG_CLASSES[arch]) for arch in architecture_names()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
