"""The ``crossadapt`` command line: one subcommand per pipeline step.

Each step module defines ``SUBCOMMAND`` (a ``Subcommand``); add its module name to
``SUBCOMMAND_MODULES`` (or call ``register``) to expose it here.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from crossadapt.errors import CrossAdaptError, ParamsError

if TYPE_CHECKING:
    from crossadapt.config.params import Params

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "tasks.fetch_data",
    "tasks.ingest",
    "tasks.validate",
    "tasks.train_teacher",
    "tasks.sample",
    "tasks.transfer",
    "tasks.distill",
    "tasks.shadow_evaluate",
    "tasks.plan_days",
    "tasks.online_day",
    "tasks.report",
    "tasks.summary",
    "tasks.promote",
    "tasks.version",
)
EXIT_USER_ERROR = 2

HandlerResult = int | dict[str, Any] | None


@dataclass(frozen=True)
class Subcommand:
    """A CLI subcommand: its options and the function that runs it.

    ``handler`` returns an exit status, or a dict that is printed as JSON on stdout
    (exit 0), or None (exit 0).
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], HandlerResult]


class _StderrHandler(logging.StreamHandler):
    """Stream handler that writes to the current ``sys.stderr``, even after it is replaced."""

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


_extra_subcommands: dict[str, Subcommand] = {}
_logging_handler: logging.Handler | None = None


def register(subcommand: Subcommand) -> None:
    """Expose ``subcommand`` in addition to those of ``SUBCOMMAND_MODULES``."""
    _extra_subcommands[subcommand.name] = subcommand


def subcommands() -> dict[str, Subcommand]:
    """Import the subcommand modules and return every subcommand by name."""
    found: dict[str, Subcommand] = {}
    for module_name in SUBCOMMAND_MODULES:
        subcommand = importlib.import_module(module_name).SUBCOMMAND
        found[subcommand.name] = subcommand
    found["airflow"] = _airflow_subcommand()
    found.update(_extra_subcommands)
    return found


def _airflow_subcommand() -> Subcommand:
    """``crossadapt airflow start|stop|status``: the local Airflow stack of tasks.airflow_cli."""
    from tasks import airflow_cli

    return Subcommand(
        name="airflow",
        help="start, stop or inspect the local Airflow stack (bound to 127.0.0.1)",
        add_arguments=airflow_cli.add_arguments,
        handler=lambda args: args.airflow_handler(args),
    )


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with one subparser per registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="crossadapt",
        description="CrossAdapt: cross-architecture knowledge transfer for CTR models.",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="lowest level of log messages written to stderr (default: %(default)s)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for subcommand in subcommands().values():
        subparser = commands.add_parser(
            subcommand.name, help=subcommand.help, description=subcommand.help
        )
        subcommand.add_arguments(subparser)
        subparser.set_defaults(subcommand=subcommand)
    return parser


def add_params_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--params PATH`` and repeatable ``--set KEY=VALUE`` to a subcommand."""
    parser.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="parameter file (default: %(default)s)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one parameter, for example student.arch=fibinet (value read as YAML)",
    )


def params_from_args(args: argparse.Namespace) -> Params:
    """Load ``args.params`` with the ``--set`` overrides applied."""
    from crossadapt.config.params import load_params

    overrides: dict[str, Any] = {}
    for item in args.overrides:
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise ParamsError(f"--set {item!r} is invalid: use KEY=VALUE, e.g. student.arch=dnn")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise ParamsError(f"--set {item!r}: the value is not valid YAML ({error})") from None
    return load_params(args.params, overrides=overrides or None)


def configure_logging(level: int | str = logging.INFO) -> None:
    """Send log records to stderr with time, level and logger name; safe to call again."""
    global _logging_handler
    root = logging.getLogger()
    if _logging_handler is None:
        _logging_handler = _StderrHandler()
        _logging_handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(_logging_handler)
    root.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; user errors print ``error: <message>`` and return 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    if getattr(args, "quiet", False):
        logging.getLogger().setLevel(logging.WARNING)

    try:
        result = args.subcommand.handler(args)
    except CrossAdaptError as error:
        logger.debug("%s failed", args.command, exc_info=True)
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR

    if isinstance(result, dict):
        if not getattr(args, "quiet", False):
            print(json.dumps(result, indent=2, sort_keys=True, default=str))
        return 0
    return int(result or 0)


def run_subcommand(name: str, argv: Sequence[str] | None = None) -> int:
    """Run subcommand ``name`` with ``argv`` (default: the process arguments)."""
    return main([name, *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
