"""A loopback-only Airflow 3 stack: api-server, scheduler, dag-processor, optional triggerer.

Each component runs as ``python -m airflow <component>`` in its own process group, with
a SQLite database, the LocalExecutor and the simple auth manager, all under one home folder.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from crossadapt.services import ServiceError
from crossadapt.services.airflow_rest import AirflowRestClient
from crossadapt.services.processes import (
    LOOPBACK,
    command_line,
    free_port,
    is_alive,
    port_is_free,
    read_pid_file,
    stop_process_group,
    write_pid_file,
)

logger = logging.getLogger(__name__)

ADMIN_USER = "admin"

_SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)
_MIN_SECRET_CHARS = (
    43  # 43 URL-safe characters encode 32 random bytes, the JWT key length Airflow expects
)


class LocalAirflow:
    """Airflow 3 bound to ``127.0.0.1:<port>``, with its state, logs and PID files in ``home``.

    Layout of ``home``: ``airflow.db`` (SQLite), ``secrets.json`` and
    ``simple_auth_manager_passwords.json`` (both mode 0600), ``stack.json`` (port and DAG
    folder of the running stack), ``logs/<component>.log`` and ``pids/<component>.pid``.

    Example::

        stack = LocalAirflow(Path(".airflow"), Path("dags"))
        stack.migrate(); stack.start(); stack.wait_healthy()
        run_id = stack.trigger("daily_online", {"day": "1998-03-01"})
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        port: int | None = None,
        parallelism: int = 2,
        triggerer: bool = False,
    ) -> None:
        self.home = Path(home).resolve()
        self.dags_folder = Path(dags_folder).resolve()
        self.port = port
        self.parallelism = parallelism
        self.triggerer = triggerer
        self.password_file = self.home / "simple_auth_manager_passwords.json"
        self.secrets_file = self.home / "secrets.json"
        self.stack_file = self.home / "stack.json"
        self.log_dir = self.home / "logs"
        self.pid_dir = self.home / "pids"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._client: AirflowRestClient | None = None

    @classmethod
    def attach(cls, home: Path) -> LocalAirflow:
        """Return a handle on the stack started earlier from ``home`` (read from ``stack.json``)."""
        stack_file = Path(home).resolve() / "stack.json"
        try:
            recorded = json.loads(stack_file.read_text())
        except FileNotFoundError as error:
            raise ServiceError(
                f"no Airflow stack recorded in {stack_file}; "
                "start one with `crossadapt airflow start`"
            ) from error
        return cls(
            Path(home),
            Path(recorded["dags_folder"]),
            port=int(recorded["port"]),
            parallelism=int(recorded["parallelism"]),
            triggerer=bool(recorded["triggerer"]),
        )

    @property
    def components(self) -> list[str]:
        """Names of the Airflow components this stack runs."""
        names = ["api-server", "scheduler", "dag-processor"]
        if self.triggerer:
            names.append("triggerer")
        return names

    @property
    def url(self) -> str:
        """Base URL of the API server and UI."""
        if self.port is None:
            raise ServiceError("LocalAirflow.url: no port yet; call start() first")
        return f"http://{LOOPBACK}:{self.port}"

    def admin_password(self) -> str:
        """Return the admin password from the 0600 password file (created on first use)."""
        self._ensure_password_file()
        passwords = json.loads(self.password_file.read_text())
        return str(passwords[ADMIN_USER])

    def environment(self) -> dict[str, str]:
        """Return the process environment shared by every component and ``airflow db migrate``."""
        if self.port is None:
            self.port = free_port()
        # The database and airflow.cfg hold connections and keys: keep the folder private.
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        secret_values = self._ensure_secrets()
        self._ensure_password_file()

        env = dict(os.environ)
        loopback_hosts = f"{LOOPBACK},localhost"
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__AUTH_MANAGER": _SIMPLE_AUTH_MANAGER,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.password_file),
                # The task runner sends task state to the API server over this URL.
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__API__HOST": LOOPBACK,
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__SECRET_KEY": secret_values["api_secret_key"],
                "AIRFLOW__API_AUTH__JWT_SECRET": secret_values["jwt_secret"],
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.log_dir),
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": LOOPBACK,
                # New DAG files show up within 30 s instead of the default 300 s.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
                "NO_PROXY": loopback_hosts,
                "no_proxy": loopback_hosts,
            }
        )
        return env

    def migrate(self) -> float:
        """Run ``airflow db migrate`` (creates or upgrades the SQLite database); return seconds."""
        env = self.environment()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / "migrate.log"
        started = time.monotonic()
        logger.info("migrating the Airflow database in %s", self.home)

        with open(log_path, "ab") as log:
            result = subprocess.run(
                [sys.executable, "-m", "airflow", "db", "migrate"],
                env=env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if result.returncode != 0:
            raise ServiceError(
                f"`airflow db migrate` failed with status {result.returncode}; see {log_path}"
            )

        elapsed = time.monotonic() - started
        logger.info("migrated the Airflow database in %.1f s", elapsed)
        return elapsed

    def start(self) -> None:
        """Start every component in the background; returns without waiting for health."""
        running = self.running_components()
        if running:
            raise ServiceError(
                f"Airflow components {sorted(running)} already run from {self.home}; "
                "stop them first (`crossadapt airflow stop`)"
            )
        self._remove_stale_pid_files()

        if not self.dags_folder.is_dir():
            raise ServiceError(
                f"DAG folder {self.dags_folder} not found; create it or pass another folder"
            )
        if self.port is not None and not port_is_free(self.port):
            raise ServiceError(f"port {LOOPBACK}:{self.port} is in use; choose another port")

        env = self.environment()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self._write_stack_file()

        for component in self.components:
            self._start_component(component, env)
        logger.info("started Airflow %s on %s", ", ".join(self.components), self.url)

    def running_components(self) -> dict[str, int]:
        """Return ``{component: pid}`` for the recorded components that are still running."""
        running: dict[str, int] = {}
        for component in ["api-server", "scheduler", "dag-processor", "triggerer"]:
            pid = read_pid_file(self.pid_dir / f"{component}.pid")
            if pid is not None and is_alive(pid) and self._is_airflow_process(pid):
                running[component] = pid
        return running

    def client(self) -> AirflowRestClient:
        """Return the REST client of this stack, logged in as the admin user."""
        if self._client is None:
            self._client = AirflowRestClient(
                self.url,
                ADMIN_USER,
                self.admin_password(),
                log_hint=f"see the logs in {self.log_dir}",
                liveness_check=self._raise_if_exited,
            )
        return self._client

    def wait_healthy(self, timeout_s: float = 180.0) -> float:
        """Wait until the database and every started component report healthy; return seconds."""
        required = ["metadatabase", *(name.replace("-", "_") for name in self.components)]
        required.remove("api_server")
        return self.client().wait_healthy(required, timeout_s)

    def token(self) -> str:
        """Return an access token for the admin user (``POST /auth/token``)."""
        return self.client().token()

    def unpause(self, dag_id: str) -> None:
        """Unpause ``dag_id`` so that the scheduler runs its triggered runs."""
        self.client().unpause(dag_id)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Trigger a run of ``dag_id`` with ``conf``; return its run id."""
        return self.client().trigger(dag_id, conf)

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float = 300.0) -> str:
        """Wait until the run reaches success or failed; return that state."""
        return self.client().wait_for_run(dag_id, run_id, timeout_s)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """Return ``{task_id: state}`` of one run."""
        return self.client().task_states(dag_id, run_id)

    def wait_dag_parsed(self, dag_id: str, timeout_s: float = 120.0) -> float:
        """Wait until the dag-processor has stored ``dag_id``; return seconds."""
        return self.client().wait_dag_parsed(dag_id, timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop every component: SIGINT to its process group, then SIGTERM, then SIGKILL."""
        for component in reversed(["api-server", "scheduler", "dag-processor", "triggerer"]):
            pid_file = self.pid_dir / f"{component}.pid"
            pid = read_pid_file(pid_file)
            if pid is None:
                continue
            if is_alive(pid) and self._is_airflow_process(pid):
                stop_process_group(
                    pid,
                    name=f"Airflow {component}",
                    first_signal=signal.SIGINT,
                    grace_s=timeout_s,
                    process=self._processes.get(component),
                )
            pid_file.unlink(missing_ok=True)
        self._processes.clear()
        self._client = None

    def _start_component(self, component: str, env: dict[str, str]) -> None:
        command = [sys.executable, "-m", "airflow", component]
        if component == "api-server":
            command += ["--host", LOOPBACK, "--port", str(self.port)]
        if component in ("scheduler", "triggerer"):
            command.append("--skip-serve-logs")

        with open(self.log_dir / f"{component}.log", "ab") as log:
            process = subprocess.Popen(
                command,
                env=env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._processes[component] = process
        write_pid_file(self.pid_dir / f"{component}.pid", process.pid)
        logger.info("started Airflow %s (pid %d)", component, process.pid)

    def _raise_if_exited(self) -> None:
        for component, process in self._processes.items():
            if process.poll() is not None:
                raise ServiceError(
                    f"Airflow {component} exited with status {process.returncode}; "
                    f"see {self.log_dir / (component + '.log')}"
                )

    def _is_airflow_process(self, pid: int) -> bool:
        # Guards against signalling an unrelated process that reused a PID from a stale file.
        return "airflow" in command_line(pid)

    def _remove_stale_pid_files(self) -> None:
        if self.pid_dir.is_dir():
            for pid_file in self.pid_dir.glob("*.pid"):
                logger.info("removing stale PID file %s", pid_file)
                pid_file.unlink()

    def _write_stack_file(self) -> None:
        recorded = {
            "port": self.port,
            "url": self.url,
            "dags_folder": str(self.dags_folder),
            "parallelism": self.parallelism,
            "triggerer": self.triggerer,
        }
        self.stack_file.write_text(json.dumps(recorded, indent=2) + "\n")

    def _ensure_secrets(self) -> dict[str, str]:
        if self.secrets_file.exists():
            values = json.loads(self.secrets_file.read_text())
            for key in ("jwt_secret", "api_secret_key"):
                if len(values.get(key, "")) < _MIN_SECRET_CHARS:
                    raise ServiceError(
                        f"{self.secrets_file}: {key} is missing or shorter than "
                        f"{_MIN_SECRET_CHARS} characters; delete the file to generate new secrets"
                    )
            return {key: str(values[key]) for key in ("jwt_secret", "api_secret_key")}

        values = {
            "jwt_secret": secrets.token_urlsafe(48),
            "api_secret_key": secrets.token_urlsafe(48),
        }
        _write_private_file(self.secrets_file, json.dumps(values) + "\n")
        logger.info(
            "generated the JWT secret and API secret key in %s (mode 0600)", self.secrets_file
        )
        return values

    def _ensure_password_file(self) -> None:
        if self.password_file.exists():
            passwords = json.loads(self.password_file.read_text())
            password = passwords.get(ADMIN_USER, "")
            if not password or password == ADMIN_USER:
                raise ServiceError(
                    f"{self.password_file}: the {ADMIN_USER!r} password is empty or equal to the "
                    "user name; delete the file to generate a random one"
                )
            return

        password = secrets.token_urlsafe(24)
        _write_private_file(self.password_file, json.dumps({ADMIN_USER: password}) + "\n")
        logger.info("generated the %s password in %s (mode 0600)", ADMIN_USER, self.password_file)


def _write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, created with mode 0600 from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
