"""Security checks: no secret in any output, no path outside the project, and no code run
from a crafted checkpoint. test_services.py checks the Airflow password file.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import reliability_project as rp
import torch
import yaml

from tasks import cli

DAY = rp.ONLINE_DAYS[0]


class OpensFileOnLoad:
    """Pickle payload: unpickling it calls ``open(path, "w")``, which creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.path), "w")


def run_cli(capsys: pytest.CaptureFixture[str], params: Path, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    status = cli.main([argv[0], "--params", str(params), *argv[1:]])
    return status, capsys.readouterr().err


def files_containing(folders: list[Path], needles: list[bytes]) -> list[str]:
    """``path: needle`` for every file under ``folders`` whose bytes contain a needle."""
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                found += [f"{path}: {needle!r}" for needle in needles if needle in data]
    return found


# --- Secrets ---------------------------------------------------------------------------------


def test_secret_absent_from_outputs_of_full_run(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    params = rp.built_project("full", tmp_path_factory.getbasetemp(), tmp_path / "project")
    project = params.parent
    folders = [project / "artifacts", project / "data", project / "logs"]
    needles = [value.encode() for value in rp.CREDENTIALS_ENV.values()]

    found = files_containing(folders, needles)

    assert found == []
    # The scan covered a whole run: every step's outputs and its log are there.
    assert (project / "artifacts" / "report" / "final.json").is_file()
    assert (project / "artifacts" / "online" / rp.ONLINE_DAYS[-1] / "student.pt").is_file()
    assert "tasks.common: metrics written to" in (project / "logs" / "pipeline.log").read_text()
    assert sum(1 for _ in project.rglob("*") if _.is_file()) > 100


def test_secret_scan_finds_planted_value(tmp_path: Path) -> None:
    # Control: the scan above can fail, in a binary file as well as in a text file.
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "step.log").write_text(f"key={rp.SECRET_CANARY}\n")
    torch.save({"meta": {"note": rp.SECRET_CANARY}}, tmp_path / "model.pt")

    found = files_containing([tmp_path], [rp.SECRET_CANARY.encode()])

    assert len(found) == 2


def test_dvc_config_has_no_credentials() -> None:
    config = (rp.REPO / ".dvc" / "config").read_text()
    ignored = (rp.REPO / ".dvc" / ".gitignore").read_text().split()

    for key in ("access_key_id", "secret_access_key", "session_token", "password"):
        assert key not in config
    assert "/config.local" in ignored


# --- Paths from params.yaml and the command line ---------------------------------------------

PATH_CASES = {
    "data_dir with ..": (
        "paths.data_dir=../escape",
        ["paths.data_dir = '../escape'", "contains '..'", "give a folder inside the project"],
    ),
    "absolute data_dir": (
        "paths.data_dir=/tmp/crossadapt-escape",
        ["paths.data_dir = '/tmp/crossadapt-escape'", "is outside the project"],
    ),
    "artifacts_dir with ..": (
        "paths.artifacts_dir=artifacts/../../escape",
        ["paths.artifacts_dir = 'artifacts/../../escape'", "contains '..'"],
    ),
    "generic dataset name": (
        "dataset.generic.name=../../etc",
        ["dataset.generic", "dataset name '../../etc' is invalid", "no '..'"],
    ),
    "absolute dataset name": (
        "dataset.generic.name=/etc",
        ["dataset name '/etc' is invalid", "lowercase letters, digits"],
    ),
}


@pytest.mark.parametrize("case", list(PATH_CASES))
def test_path_outside_project_rejected(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    override, fragments = PATH_CASES[case]
    project = tmp_path / "project"
    project.mkdir()
    rp.write_csv(project / "log.csv", rp.generic_rows())
    params = rp.generic_params(project)

    status, stderr = run_cli(capsys, params, "ingest", "--set", override)

    assert status == 2
    assert "Traceback" not in stderr
    message = stderr[stderr.index("error: ") :]
    for fragment in fragments:
        assert fragment in message
    assert sorted(path.name for path in tmp_path.iterdir()) == ["project"]
    assert sorted(path.name for path in project.iterdir()) == ["log.csv", "params.yaml"]
    assert not Path("/tmp/crossadapt-escape").exists()


def test_path_in_params_file_rejected_by_subprocess(tmp_path: Path) -> None:
    project = tmp_path / "project"
    content = yaml.safe_load(rp.synthetic_params(project).read_text())
    content["paths"]["artifacts_dir"] = "/etc"
    rp.write_params(project, content)

    result = rp.run_step(project, "train_teacher")

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "paths.artifacts_dir = '/etc': path '/etc' is outside the project" in result.error_line


@pytest.mark.parametrize("day", ["/etc/passwd", "2024-01-06/../../x", "2024-1-6"])
def test_day_argument_rejected(
    day: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = rp.synthetic_params(tmp_path / "project")

    status, stderr = run_cli(capsys, params, "online-day", "--day", day)

    assert status == 2
    assert "Traceback" not in stderr
    assert f"error: day {day!r} is not an online day" in stderr
    assert not (tmp_path / "project" / "artifacts" / "online").exists()


def test_day_traversal_rejected_by_subprocess(tmp_path: Path) -> None:
    project = tmp_path / "project"
    rp.synthetic_params(project)

    result = rp.run_step(project, "online_day", "--day", "../../etc")

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error: day '../../etc' is not an online day" in result.error_line
    assert "2024-01-06..2024-01-07" in result.error_line
    assert not (project / "artifacts" / "online").exists()


# --- Crafted checkpoints ---------------------------------------------------------------------


@pytest.fixture
def crafted(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> tuple[Path, Path]:
    """An offline project whose teacher.pt runs code when unpickled; returns (params, marker)."""
    params = rp.built_project("offline", tmp_path_factory.getbasetemp(), tmp_path / "project")
    marker = tmp_path / "code-ran"
    torch.save(
        {"format_version": 1, "state_dict": OpensFileOnLoad(marker)},
        params.parent / "artifacts" / "teacher" / "teacher.pt",
    )
    return params, marker


def test_crafted_checkpoint_payload_is_live(crafted: tuple[Path, Path]) -> None:
    # Control: a full unpickle of the file runs the payload, so the tests below can fail.
    params, marker = crafted
    teacher = params.parent / "artifacts" / "teacher" / "teacher.pt"
    code = (
        "import sys, torch; torch.load(sys.argv[1], weights_only=False)"
        if teacher.read_bytes()[:2] == b"PK"
        else "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))"
    )

    subprocess.run([sys.executable, "-c", code, str(teacher)], check=True, timeout=120)

    assert marker.exists()


def test_crafted_checkpoint_rejected_by_sample(crafted: tuple[Path, Path]) -> None:
    params, marker = crafted
    project = params.parent
    before = rp.file_hashes(project / "artifacts")

    result = rp.run_step(project, "sample")

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "teacher.pt was rejected" in result.error_line
    assert "crafted to run code" in result.error_line
    assert "Do not load it with weights_only=False" in result.error_line
    assert not marker.exists()
    assert rp.file_hashes(project / "artifacts") == before


def test_crafted_checkpoint_rejected_by_online_day(
    crafted: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    params, marker = crafted

    status, stderr = run_cli(capsys, params, "online-day", "--day", DAY)

    assert status == 2
    assert "Traceback" not in stderr
    assert "teacher.pt was rejected" in stderr
    assert not marker.exists()
    assert not (params.parent / "artifacts" / "online" / "ledger.json").exists()


def test_plain_pickle_checkpoint_rejected(
    crafted: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    params, marker = crafted
    teacher = params.parent / "artifacts" / "teacher" / "teacher.pt"
    teacher.write_bytes(pickle.dumps(OpensFileOnLoad(marker), protocol=2))

    status, stderr = run_cli(capsys, params, "sample")

    assert status == 2
    assert "teacher.pt was rejected" in stderr
    assert not marker.exists()
