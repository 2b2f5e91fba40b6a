"""Client of the Airflow 3 REST API (``/api/v2``): health, login, unpause, trigger, run states."""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from crossadapt.services import ServiceError

logger = logging.getLogger(__name__)

TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class AirflowRestClient:
    """Calls one Airflow API server as ``username``, with a bearer token from ``POST /auth/token``.

    ``liveness_check`` runs before each poll of the ``wait_*`` methods, so that a dead
    server process raises at once; ``log_hint`` ends error messages (where to look).
    Proxy variables are ignored (``trust_env=False``) because the server is local.
    """

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        log_hint: str = "",
        liveness_check: Callable[[], None] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.username = username
        self._password = password
        self._log_hint = f"; {log_hint}" if log_hint else ""
        self._liveness_check = liveness_check or (lambda: None)
        self._token: str | None = None

    def health(self) -> dict[str, Any]:
        """Return the report of ``GET /api/v2/monitor/health`` (no login needed)."""
        response = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5, trust_env=False)
        response.raise_for_status()
        return dict(response.json())

    def wait_healthy(self, components: Sequence[str], timeout_s: float = 180.0) -> float:
        """Wait until each of ``components`` (health report keys) is healthy; return seconds."""
        started = time.monotonic()
        deadline = started + timeout_s
        last_response: object = "no response"

        while time.monotonic() < deadline:
            self._liveness_check()
            try:
                report = self.health()
            except (httpx.HTTPError, ValueError) as error:
                last_response = str(error)
            else:
                last_response = report
                if all((report.get(name) or {}).get("status") == "healthy" for name in components):
                    waited = time.monotonic() - started
                    logger.info("Airflow healthy on %s after %.1f s", self.url, waited)
                    return waited
            time.sleep(1.0)

        raise ServiceError(
            f"Airflow at {self.url} not healthy after {timeout_s:.0f} s "
            f"(last response: {last_response}){self._log_hint}"
        )

    def token(self) -> str:
        """Return an access token (``POST /auth/token``), cached until the server rejects it."""
        if self._token is None:
            response = httpx.post(
                f"{self.url}/auth/token",
                json={"username": self.username, "password": self._password},
                timeout=10,
                trust_env=False,
            )
            if response.status_code not in (200, 201):
                raise ServiceError(
                    f"POST {self.url}/auth/token as {self.username!r} failed with status "
                    f"{response.status_code}: {response.text[:200]}; check the password"
                )
            self._token = str(response.json()["access_token"])
        return self._token

    def unpause(self, dag_id: str) -> None:
        """Unpause ``dag_id`` so that the scheduler runs its triggered runs."""
        self._request("PATCH", f"/api/v2/dags/{_quote(dag_id)}", json={"is_paused": False})
        logger.info("unpaused DAG %s", dag_id)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Trigger a run of ``dag_id`` with ``conf``; return its run id."""
        body = self._request(
            "POST",
            f"/api/v2/dags/{_quote(dag_id)}/dagRuns",
            json={"logical_date": None, "conf": conf or {}},
        )
        run_id = str(body["dag_run_id"])
        logger.info("triggered DAG %s: run %s", dag_id, run_id)
        return run_id

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """Return the REST record of one DAG run (state, start_date, end_date, conf, ...)."""
        return self._request("GET", f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}")

    def run_state(self, dag_id: str, run_id: str) -> str:
        """Return the state of one DAG run (queued, running, success, failed)."""
        return str(self.dag_run(dag_id, run_id)["state"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float = 300.0) -> str:
        """Wait until the run reaches success or failed; return that state."""
        started = time.monotonic()
        deadline = started + timeout_s
        state = "unknown"

        while time.monotonic() < deadline:
            self._liveness_check()
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL_RUN_STATES:
                elapsed = time.monotonic() - started
                logger.info("DAG %s run %s ended %s after %.1f s", dag_id, run_id, state, elapsed)
                return state
            time.sleep(1.0)

        raise ServiceError(
            f"DAG {dag_id} run {run_id} still {state} after {timeout_s:.0f} s; task states: "
            f"{self.task_states(dag_id, run_id)}{self._log_hint}"
        )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Return the REST records of one run's task instances (state, start_date, duration...)."""
        body = self._request(
            "GET", f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}/taskInstances"
        )
        return list(body["task_instances"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """Return ``{task_id: state}`` of one run; mapped tasks appear as ``task_id[map_index]``."""
        states: dict[str, str | None] = {}
        for instance in self.task_instances(dag_id, run_id):
            key = instance["task_id"]
            if instance.get("map_index", -1) >= 0:
                key = f"{key}[{instance['map_index']}]"
            states[key] = instance["state"]
        return states

    def wait_dag_parsed(self, dag_id: str, timeout_s: float = 120.0) -> float:
        """Wait until the dag-processor has stored ``dag_id``; return seconds.

        Raises at once when Airflow records an import error for any DAG file, with its trace.
        """
        started = time.monotonic()
        deadline = started + timeout_s

        while time.monotonic() < deadline:
            self._liveness_check()
            response = self._send("GET", f"/api/v2/dags/{_quote(dag_id)}")
            if response.status_code == 200:
                waited = time.monotonic() - started
                logger.info("DAG %s parsed after %.1f s", dag_id, waited)
                return waited

            errors = self._request("GET", "/api/v2/importErrors")["import_errors"]
            if errors:
                first = errors[0]
                raise ServiceError(
                    f"Airflow could not import {first['filename']}: {first['stack_trace'][-500:]}"
                )
            time.sleep(1.0)

        raise ServiceError(
            f"DAG {dag_id} not found after {timeout_s:.0f} s; check the dag_id and the DAG "
            f"folder{self._log_hint}"
        )

    def _send(self, method: str, path: str, json: dict[str, Any] | None = None) -> httpx.Response:
        response = self._send_once(method, path, json)
        if response.status_code == 401:
            # The cached token expired: fetch a new one and retry once.
            self._token = None
            response = self._send_once(method, path, json)
        return response

    def _send_once(self, method: str, path: str, json: dict[str, Any] | None) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.url}{path}",
            json=json,
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
            trust_env=False,
        )

    def _request(
        self, method: str, path: str, json: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        response = self._send(method, path, json=json)
        if response.status_code >= 400:
            raise ServiceError(
                f"{method} {self.url}{path} failed with status {response.status_code}: "
                f"{response.text[:500]}"
            )
        return dict(response.json())


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")
