"""Pipeline step ``fetch-data``: fetch MovieLens-100K into ``<data_dir>/raw/movielens-100k``.

Runs as ``crossadapt fetch-data [--quiet]`` or ``python -m tasks.fetch_data``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from crossadapt.config.params import Params
from crossadapt.data.fetch import fetch_movielens_100k
from tasks.cli import Subcommand, add_params_arguments, params_from_args, run_subcommand


def run(params: Params, quiet: bool = False) -> dict[str, Any]:
    """Fetch and verify the MovieLens-100K files; return where they are and what was done.

    Other datasets need no download (Open Bandit ships with the project, synthetic streams
    are generated, and Criteo, Avazu and generic logs are files the user points at).
    """
    raw = params.data_dir() / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    if params.dataset.name != "movielens-100k":
        return {"dataset": params.dataset.name, "fetched": False}
    return fetch_movielens_100k(params.data_dir(), quiet=quiet).to_dict()


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_params_arguments(parser)
    parser.add_argument(
        "--quiet", action="store_true", help="log warnings and errors only, print no summary"
    )


def _handle(args: argparse.Namespace) -> dict[str, Any]:
    return run(params_from_args(args), quiet=args.quiet)


SUBCOMMAND = Subcommand(
    name="fetch-data",
    help="download MovieLens-100K (recbole 1.2.1 wheel from PyPI) and check its sha256",
    add_arguments=_add_arguments,
    handler=_handle,
)


def main(argv: Sequence[str] | None = None) -> int:
    return run_subcommand(SUBCOMMAND.name, argv)


if __name__ == "__main__":
    sys.exit(main())
