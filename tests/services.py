"""Session-scoped pytest fixtures that run real local services: SeaweedFS S3 and Airflow 3.

A conftest.py makes them available with ``from services import airflow_stack, local_s3``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crossadapt.services import ServiceError
from crossadapt.services.airflow_local import LocalAirflow
from crossadapt.services.s3_local import LocalS3, find_weed

TEST_BUCKET = "crossadapt-test"


def require_weed() -> None:
    """Skip the calling test when the SeaweedFS binary is not installed."""
    try:
        find_weed()
    except ServiceError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def local_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    """A running SeaweedFS S3 server with bucket ``crossadapt-test`` and a random key pair.

    Clients sign with ``local_s3.access_key`` and ``local_s3.secret_key``; other keys are rejected.
    """
    require_weed()
    server = LocalS3(
        tmp_path_factory.mktemp("s3"),
        bucket=TEST_BUCKET,
        access_key=f"test{secrets.token_hex(8)}",
        secret_key=secrets.token_urlsafe(30),
    )
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def airflow_stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., LocalAirflow]]:
    """Factory ``airflow_stack(dags_folder, **options)``: a migrated, healthy Airflow stack.

    Each call gets its own home folder and a free port. Every stack is stopped at the end
    of the session, and a test may stop one earlier.
    """
    stacks: list[LocalAirflow] = []

    def start_stack(dags_folder: Path, **options: Any) -> LocalAirflow:
        stack = LocalAirflow(tmp_path_factory.mktemp("airflow-home"), dags_folder, **options)
        stacks.append(stack)
        stack.migrate()
        stack.start()
        stack.wait_healthy()
        return stack

    try:
        yield start_stack
    finally:
        for stack in stacks:
            stack.stop()
