"""Pieces every pipeline step shares: params to layout, checkpoints to models, metrics files."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossadapt.storage.atomic import atomic_write_json, finite_or_null
from tasks.cli import Subcommand, add_params_arguments, params_from_args, run_subcommand
from tasks.layout import Layout

if TYPE_CHECKING:
    from crossadapt.config.params import Params

logger = logging.getLogger(__name__)


def layout_of(params: Params) -> Layout:
    """Paths of the checkout that ``params`` belongs to."""
    return Layout(
        root=params.project_root,
        data_dir=params.data_dir(),
        artifacts_dir=params.artifacts_dir(),
        dataset=params.dataset_name(),
    )


def field_defs(params: Params) -> list[dict[str, Any]]:
    """Feature definitions of the dataset of ``params`` (for fitting a schema)."""
    if params.dataset.name == "synthetic":
        from crossadapt.data.synthetic import synthetic_field_defs

        return synthetic_field_defs(synthetic_config(params))
    from crossadapt.data.dataset import field_defs_from_spec
    from crossadapt.data.presets import resolve_spec

    return field_defs_from_spec(resolve_spec(params))


def synthetic_config(params: Params):
    """The generator settings of ``dataset.synthetic`` (defaults when absent)."""
    from crossadapt.data.synthetic import SyntheticConfig

    return SyntheticConfig(**(params.dataset.synthetic or {}))


def model_config(section: Any) -> dict[str, Any]:
    """Model options of a ``teacher:`` or ``student:`` params block."""
    return {
        "hidden_units": list(section.hidden_units),
        "dropout": section.dropout,
        "weight_init": section.weight_init,
        "sparse_gradients": section.sparse_gradients,
    }


def write_metrics(path: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """Write step metrics as JSON (NaN written as null, which DVC and JSON readers accept)."""
    clean = finite_or_null(metrics)
    atomic_write_json(path, clean)
    logger.info("metrics written to %s", path)
    return clean


def simple_step(
    name: str,
    help_text: str,
    run: Callable[[Params], dict[str, Any]],
    extra_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    call: Callable[[Params, argparse.Namespace], dict[str, Any]] | None = None,
) -> tuple[Subcommand, Callable[[Sequence[str] | None], int]]:
    """Build the CLI subcommand and the ``main`` of a step module from its ``run`` function."""

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        add_params_arguments(parser)
        if extra_arguments is not None:
            extra_arguments(parser)

    def handle(args: argparse.Namespace) -> dict[str, Any]:
        params = params_from_args(args)
        return call(params, args) if call is not None else run(params)

    subcommand = Subcommand(name=name, help=help_text, add_arguments=add_arguments, handler=handle)

    def main(argv: Sequence[str] | None = None) -> int:
        return run_subcommand(name, argv)

    return subcommand, main


def exit_with(main: Callable[[Sequence[str] | None], int]) -> None:
    """Run a step's ``main`` with the process arguments and exit with its status."""
    sys.exit(main(None))
