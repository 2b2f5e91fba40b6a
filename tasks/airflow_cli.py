"""Start, stop and inspect the local Airflow stack: `crossadapt airflow start|stop|status`.

Also runs on its own: ``python -m tasks.airflow_cli start|stop|status``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from crossadapt.errors import CrossAdaptError
from crossadapt.services import ServiceError
from crossadapt.services.airflow_local import ADMIN_USER, LocalAirflow
from crossadapt.services.processes import port_is_free

logger = logging.getLogger(__name__)

DEFAULT_HOME = Path(".airflow")
DEFAULT_DAGS_FOLDER = Path("dags")
DEFAULT_PORT = 8080


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``start``, ``stop`` and ``status`` subcommands to ``parser``."""
    actions = parser.add_subparsers(dest="airflow_action", required=True, metavar="ACTION")

    start = actions.add_parser("start", help="start Airflow on 127.0.0.1 in the background")
    _add_home_argument(start)
    start.add_argument(
        "--dags-folder",
        type=Path,
        default=DEFAULT_DAGS_FOLDER,
        help="folder of DAG files (default: %(default)s)",
    )
    start.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="API server and UI port on 127.0.0.1 (default: %(default)s)",
    )
    start.add_argument(
        "--parallelism",
        type=int,
        default=2,
        help="maximum number of tasks running at once (default: %(default)s)",
    )
    start.add_argument(
        "--triggerer", action="store_true", help="also start the triggerer (deferrable operators)"
    )
    start.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="seconds to wait for the stack to report healthy (default: %(default)s)",
    )
    start.set_defaults(airflow_handler=run_start)

    stop = actions.add_parser("stop", help="stop the Airflow stack started from --home")
    _add_home_argument(stop)
    stop.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds each component gets after SIGINT before SIGTERM (default: %(default)s)",
    )
    stop.set_defaults(airflow_handler=run_stop)

    status = actions.add_parser("status", help="show the components, PIDs and health")
    _add_home_argument(status)
    status.set_defaults(airflow_handler=run_status)


def run_start(args: argparse.Namespace) -> int:
    """Migrate the database, start the stack, wait until healthy and print URL and login."""
    stack = LocalAirflow(
        args.home,
        args.dags_folder,
        port=args.port,
        parallelism=args.parallelism,
        triggerer=args.triggerer,
    )
    if not port_is_free(args.port):
        raise ServiceError(f"port 127.0.0.1:{args.port} is in use; pass another one with --port")

    started = time.monotonic()
    stack.migrate()
    stack.start()
    try:
        stack.wait_healthy(args.timeout)
    except CrossAdaptError:
        stack.stop()
        raise

    print(f"Airflow is running on {stack.url} (healthy after {time.monotonic() - started:.0f} s)")
    print(f"  user:     {ADMIN_USER}")
    print(f"  password: {stack.admin_password()}  (from {stack.password_file})")
    print(f"  DAGs:     {stack.dags_folder}")
    print(f"  logs:     {stack.log_dir}")
    print(f"stop it with: crossadapt airflow stop --home {args.home}")
    return 0


def run_stop(args: argparse.Namespace) -> int:
    """Stop every component recorded under ``--home``."""
    stack = LocalAirflow.attach(args.home)
    running = stack.running_components()
    stack.stop(timeout_s=args.timeout)
    if running:
        print(f"stopped Airflow ({', '.join(sorted(running))})")
    else:
        print(f"no Airflow component was running from {stack.home}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print each component's PID and the health report; exit 1 when something is down."""
    stack = LocalAirflow.attach(args.home)
    running = stack.running_components()

    print(f"Airflow at {stack.url} (home {stack.home})")
    for component in stack.components:
        pid = running.get(component)
        print(f"  {component:<14} {'pid ' + str(pid) if pid else 'not running'}")
    if not running:
        return 1

    try:
        waited = stack.wait_healthy(timeout_s=5.0)
    except ServiceError as error:
        print(f"  health: {error}")
        return 1
    print(f"  health: all components healthy ({waited:.0f} s)")
    return 0 if len(running) == len(stack.components) else 1


def _add_home_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home",
        type=Path,
        default=DEFAULT_HOME,
        help="AIRFLOW_HOME with the database, logs and PID files (default: %(default)s)",
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m tasks.airflow_cli``."""
    parser = argparse.ArgumentParser(prog="python -m tasks.airflow_cli", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.airflow_handler(args))
    except CrossAdaptError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
