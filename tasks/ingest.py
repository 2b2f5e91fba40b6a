"""Pipeline step ``ingest``: raw log files to daily partitions under ``<data_dir>/partitions``.

Runs as ``crossadapt ingest [--params params.yaml]`` or ``python -m tasks.ingest``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crossadapt.config.params import Params
from crossadapt.data.ingest import ingest
from crossadapt.data.presets import resolve_spec
from crossadapt.errors import DataError
from tasks.cli import Subcommand, add_params_arguments, params_from_args, run_subcommand


def run(params: Params) -> dict[str, Any]:
    """Ingest the dataset of ``params``; write and return the summary (rows, days, seconds)."""
    from tasks.common import layout_of, write_metrics

    summary = _ingest(params)
    if "output_dir" in summary:
        # Metrics files are committed: keep them free of this machine's absolute paths.
        output_dir = Path(summary["output_dir"])
        if output_dir.is_relative_to(params.project_root):
            summary["output_dir"] = str(output_dir.relative_to(params.project_root))
    return write_metrics(layout_of(params).metrics_file("ingest"), summary)


def _ingest(params: Params) -> dict[str, Any]:
    if params.dataset.name == "synthetic":
        from crossadapt.data.ingest import write_generated_days
        from crossadapt.data.synthetic import iter_days
        from tasks.common import synthetic_config

        return write_generated_days(
            iter_days(synthetic_config(params)), params.data_dir(), params.dataset_name()
        )
    spec = resolve_spec(params)
    if params.dataset.name == "movielens-100k" and params.dataset.path is None:
        missing = [path for path in spec.files if not Path(path).is_file()]
        if missing:
            raise DataError(
                f"MovieLens-100K file {missing[0]} not found: run `crossadapt fetch-data` first"
            )
    return ingest(spec, params.data_dir(), params.dataset_name()).to_dict()


def _handle(args: argparse.Namespace) -> dict[str, Any]:
    return run(params_from_args(args))


SUBCOMMAND = Subcommand(
    name="ingest",
    help="split the raw log of params.yaml dataset into daily parquet partitions",
    add_arguments=add_params_arguments,
    handler=_handle,
)


def main(argv: Sequence[str] | None = None) -> int:
    return run_subcommand(SUBCOMMAND.name, argv)


if __name__ == "__main__":
    sys.exit(main())
