"""Shared fixtures: the local services of tests/services.py and small CrossAdapt project copies.

``pipeline_project`` builds a throw-away project (git + DVC, a small synthetic stream)
once per session; ``project_copy`` gives a test its own copy of it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import services
import yaml
from services import airflow_stack, local_s3  # noqa: F401

from crossadapt.services import ServiceError
from crossadapt.services.s3_local import find_weed

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
COMMAND_TIMEOUT_SECONDS = 600

DAYS = [f"2024-01-{n:02d}" for n in range(1, 10)]
HISTORY_DAYS, RETAINED_DAYS, ONLINE_DAYS, TEST_DAYS = DAYS[:3], DAYS[3:5], DAYS[5:7], DAYS[7:]
# The second online day has a shifted id distribution and click weights, so its drift is flagged.
DRIFT_DAY_INDEX = 6

PIPELINE_PARAMS: dict[str, Any] = {
    "seed": 42,
    "dataset": {
        "name": "synthetic",
        "synthetic": {
            "n_days": len(DAYS),
            "rows_per_day": 2000,
            "n_categorical": 6,
            "n_numeric": 2,
            "vocab_sizes": [80, 50, 10, 6, 12, 20],
            "start_date": DAYS[0],
            "drift_day": DRIFT_DAY_INDEX,
            "drift_strength": 1.0,
            "seed": 7,
        },
    },
    "split": {
        "history_start": HISTORY_DAYS[0],
        "retained_start": RETAINED_DAYS[0],
        "online_start": ONLINE_DAYS[0],
        "online_end": ONLINE_DAYS[-1],
        "test_start": TEST_DAYS[0],
        "test_end": TEST_DAYS[-1],
    },
    "features": {"min_count": 1, "numeric_transform": "log"},
    "teacher": {
        "arch": "dnn",
        "embedding_dim": 4,
        "hidden_units": [16],
        "epochs": 1,
        "batch_size": 512,
    },
    "student": {"arch": "deepfm", "embedding_dim": 8, "hidden_units": [16]},
    "sampling": {"strategy": "balanced", "ratio": 0.5},
    "distill": {"alpha": 0.7, "temperature": 4.0, "batch_size": 512},
    "online": {"batch_size": 512},
    "adaptation": {"drift_threshold": 0.45},
    "validation": {"min_rows": 1, "max_oov_rate": 0.95},
    "promotion": {"last_n_days": 2, "auc_margin": 0.05, "max_abs_prediction_bias": 0.5},
    "paths": {"data_dir": "data", "artifacts_dir": "artifacts"},
}

# Files of the repository a pipeline project needs: the dvc.yaml stages run the steps
# from the project folder, and their deps name folders of src/ and tasks/.
PROJECT_FILES = ("src", "tasks", "dags", "dvc.yaml", ".dvcignore")
_IGNORED_NAMES = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def _require_weed_or_fail() -> None:
    """Skip an S3 test when ``weed`` is missing, except on CI (``CI=true``), where it fails."""
    try:
        find_weed()
    except ServiceError as error:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the S3 tests cannot run: {error}")
        pytest.skip(str(error))


# services.local_s3 and the test modules call services.require_weed; on CI a missing
# binary must fail the run, not skip the S3 tests silently.
services.require_weed = _require_weed_or_fail


def project_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of every command run in a project: the venv first on PATH, no analytics."""
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "DVC_NO_ANALYTICS": "1",
            "GX_ANALYTICS_ENABLED": "False",
            "GIT_AUTHOR_NAME": "CrossAdapt tests",
            "GIT_AUTHOR_EMAIL": "tests@crossadapt.invalid",
            "GIT_COMMITTER_NAME": "CrossAdapt tests",
            "GIT_COMMITTER_EMAIL": "tests@crossadapt.invalid",
        }
    )
    env.update(extra or {})
    return env


def run_in(
    project: Path, *command: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``project``; with ``check`` fail the test with its output on error."""
    result = subprocess.run(
        list(command),
        cwd=project,
        env=project_env(env),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"`{' '.join(command)}` failed with status {result.returncode}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
        )
    return result


def dvc(project: Path, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dvc ARGUMENTS`` in ``project``."""
    return run_in(project, sys.executable, "-m", "dvc", *arguments, check=check)


def build_project(folder: Path, params: dict[str, Any] | None = None) -> Path:
    """Create a git + DVC project in ``folder`` with the pipeline code and a small params.yaml.

    The DVC remote ``local`` (default) is the folder ``<folder>.dvc-storage`` next to it.
    """
    folder.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=_IGNORED_NAMES)
        else:
            shutil.copy2(source, folder / name)
    (folder / ".gitignore").write_text(
        "__pycache__/\n*.pyc\n/data/\n/logs/\n/artifacts/online/.checks/\n"
        "/artifacts/.crossadapt.lock*\n"
    )
    (folder / "params.yaml").write_text(yaml.safe_dump(params or PIPELINE_PARAMS, sort_keys=False))

    run_in(folder, sys.executable, "-m", "tasks.plan_days", "--params", "params.yaml")
    run_in(folder, "git", "init", "--quiet", "--initial-branch=main")
    dvc(folder, "init", "--quiet")
    dvc(folder, "config", "core.analytics", "false")
    storage = folder.parent / f"{folder.name}.dvc-storage"
    dvc(folder, "remote", "add", "--default", "local", str(storage))
    run_in(folder, "git", "add", "--all")
    run_in(folder, "git", "commit", "--quiet", "-m", "Small CrossAdapt project for tests")
    return folder


def copy_project(source: Path, destination: Path) -> Path:
    """Copy a project folder (git, DVC cache, data, artifacts) with its remote storage.

    The default remote is pointed at the copy's own storage folder so copies never share it.
    """
    shutil.copytree(source, destination, symlinks=True)
    storage = source.parent / f"{source.name}.dvc-storage"
    copy_storage = destination.parent / f"{destination.name}.dvc-storage"
    if storage.is_dir():
        shutil.copytree(storage, copy_storage)
    dvc(destination, "remote", "modify", "local", "url", str(copy_storage))
    return destination


@pytest.fixture(scope="session")
def pipeline_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh project (nothing run yet), built once per session; copy it before changing it."""
    return build_project(tmp_path_factory.mktemp("template") / "project")


@pytest.fixture(scope="session")
def reproduced_project(pipeline_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project on which ``dvc repro`` ran the whole pipeline once; copy it before changing it."""
    project = copy_project(pipeline_project, tmp_path_factory.mktemp("reproduced") / "project")
    dvc(project, "repro")
    return project


@pytest.fixture
def project_copy(tmp_path: Path) -> Callable[[Path], Path]:
    """Factory ``project_copy(source)``: a private copy of a session project for one test."""

    def make(source: Path) -> Path:
        return copy_project(source, tmp_path / "project")

    return make
