"""Faults done for real: SIGKILL during distillation, a checkpoint write and an online day; two
runs of one day at once; a diverging loss. A rerun must recover, and every checkpoint must load.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import reliability_project as rp

from crossadapt.storage.checkpoint import load_checkpoint
from crossadapt.storage.ledger import Ledger
from crossadapt.storage.locks import holder_info_path
from tasks import cli

DAY = rp.ONLINE_DAYS[0]


@pytest.fixture
def offline(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """A copy of the session's offline project (teacher and distilled student ready)."""
    return rp.built_project("offline", tmp_path_factory.getbasetemp(), tmp_path / "project")


def run_cli(capsys: pytest.CaptureFixture[str], params: Path, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    status = cli.main([argv[0], "--params", str(params), *argv[1:]])
    return status, capsys.readouterr().err


def checkpoints_on_disk(artifacts: Path) -> list[Path]:
    """Every ``*.pt`` file under ``artifacts``, each loaded (raises if one does not load)."""
    paths = sorted(artifacts.rglob("*.pt"))
    for path in paths:
        load_checkpoint(path)
    return paths


def temp_files(artifacts: Path) -> list[Path]:
    """Temporary files of interrupted atomic writes (``.<name>.<random>.tmp``)."""
    return sorted(artifacts.rglob(".*.tmp"))


def outputs_without_caches(project: Path) -> dict[str, str]:
    """Hashes of data/ and artifacts/ without lock files and the online check cache."""
    return {
        path: digest
        for path, digest in rp.file_hashes(project / "data", project / "artifacts").items()
        if ".lock" not in Path(path).name and "/online/.checks/" not in path
    }


def test_kill_during_distill_then_rerun(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = offline.parent
    student = project / "artifacts" / "distill" / "student.pt"
    before = outputs_without_caches(project)
    process, log = rp.start_step(project, "distill", "--set", "distill.epochs_c=100000")

    killed = rp.kill_when(process, lambda: "step C epoch 0:" in log.read_text())

    assert killed
    assert process.returncode == -9
    assert outputs_without_caches(project) == before
    assert checkpoints_on_disk(project / "artifacts")
    assert temp_files(project / "artifacts") == []

    status, stderr = run_cli(capsys, offline, "distill")

    assert status == 0, stderr[-2000:]
    assert load_checkpoint(student).meta["step"] == "distill"
    assert student in checkpoints_on_disk(project / "artifacts")


def test_kill_during_checkpoint_write(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = offline.parent
    folder = project / "artifacts" / "transfer"
    target = folder / "student_init.pt"
    old_bytes = target.read_bytes()
    # A 68 MB student: torch.save took about 0.5 s here, so the kill lands inside the write.
    process, _ = rp.start_step(
        project, "transfer", "--set", "student.hidden_units=[4096, 4096]", log_name="big"
    )

    def writing() -> bool:
        for path in folder.glob(".student_init.pt.*.tmp"):
            try:
                return path.stat().st_size > 0
            except FileNotFoundError:
                return False
        return False

    killed = rp.kill_when(process, writing)

    assert killed
    assert target.read_bytes() == old_bytes
    leftovers = temp_files(project / "artifacts")
    assert [path.parent for path in leftovers] == [folder]
    assert 0 < leftovers[0].stat().st_size < 68_000_000
    assert checkpoints_on_disk(project / "artifacts")

    status, stderr = run_cli(capsys, offline, "transfer")

    assert status == 0, stderr[-2000:]
    assert load_checkpoint(target).meta["step"] == "transfer"
    assert target in checkpoints_on_disk(project / "artifacts")


def test_rerun_removes_killed_write_temp(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The file test_kill_during_checkpoint_write leaves behind, without paying for the kill.
    folder = offline.parent / "artifacts" / "transfer"
    leftover = folder / ".student_init.pt.k1lled00.tmp"
    leftover.write_bytes((folder / "student_init.pt").read_bytes()[:4096])

    assert run_cli(capsys, offline, "transfer")[0] == 0

    assert temp_files(offline.parent / "artifacts") == []


def test_kill_during_online_day_then_rerun(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = offline.parent
    online = project / "artifacts" / "online"
    staging = online / f".staging-{DAY}"
    offline_state = outputs_without_caches(project)
    # Batches of 4 rows make the day's training take several seconds.
    process, _ = rp.start_step(project, "online_day", "--day", DAY, "--set", "online.batch_size=4")

    killed = rp.kill_when(process, lambda: (staging / "check.json").is_file())

    assert killed
    assert not (online / DAY).exists()
    assert not (online / "ledger.json").exists()
    assert not (staging / "student.pt").exists()
    assert {
        path: digest
        for path, digest in outputs_without_caches(project).items()
        if f".staging-{DAY}" not in path
    } == offline_state

    status, stderr = run_cli(capsys, offline, "online-day", "--day", DAY)

    assert status == 0, stderr[-2000:]
    assert not staging.exists()
    ledger = Ledger(online / "ledger.json")
    assert ledger.days() == [DAY]
    assert ledger.verify(online) == 2
    paths = checkpoints_on_disk(project / "artifacts")
    assert online / DAY / "teacher.pt" in paths
    assert online / DAY / "student.pt" in paths


def test_online_day_twice_at_once(offline: Path) -> None:
    project = offline.parent
    lock = project / "artifacts" / ".crossadapt.lock"
    first, first_log = rp.start_step(
        project, "online_day", "--day", DAY, "--set", "online.batch_size=16", log_name="first"
    )
    rp.wait_for(lambda: holder_info_path(lock).is_file() or first.poll() is not None)

    second = rp.run_step(project, "online_day", "--day", DAY)
    first.wait(timeout=rp.STEP_TIMEOUT_SECONDS)

    assert first.returncode == 0, first_log.read_text()[-2000:]
    assert second.returncode == 2
    assert "Traceback" not in second.stderr
    assert f"error: another run holds the lock {lock}" in second.error_line
    assert f"held by pid {first.pid}" in second.error_line
    assert "Wait for that run to finish or stop it, then retry" in second.error_line
    assert not re.search(r"acquired run lock", second.stderr)

    online = project / "artifacts" / "online"
    ledger = Ledger(online / "ledger.json")
    assert ledger.days() == [DAY]
    assert ledger.verify(online) == 2
    assert json.loads((online / DAY / "metrics.json").read_text())["day"] == DAY
    checkpoints_on_disk(project / "artifacts")


def test_online_loss_nan_stops_day(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = offline.parent
    before = outputs_without_caches(project)

    status, stderr = run_cli(
        capsys,
        offline,
        "online-day",
        "--day",
        DAY,
        "--set",
        "online.lr_dense=1e30",
        "--set",
        "online.lr_embedding=1e30",
    )

    assert status == 2
    assert "Traceback" not in stderr
    message = stderr[stderr.index("error: ") :]
    assert re.search(rf"loss is (nan|inf|-inf) on day {DAY} at batch \d+", message), message
    assert "the day's checkpoints were not written" in message
    assert "Lower online.lr_dense / online.lr_embedding" in message
    online = project / "artifacts" / "online"
    assert not (online / DAY).exists()
    assert not (online / "ledger.json").exists()
    assert not list(online.glob(".staging-*"))
    assert outputs_without_caches(project) == before
    checkpoints_on_disk(project / "artifacts")


def test_distill_loss_nan_keeps_checkpoint(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = offline.parent
    before = outputs_without_caches(project)

    status, stderr = run_cli(
        capsys,
        offline,
        "distill",
        "--set",
        "distill.lr_dense=1e30",
        "--set",
        "distill.lr_embedding=1e30",
    )

    assert status == 2
    assert "Traceback" not in stderr
    message = stderr[stderr.index("error: ") :]
    assert re.search(r"step [BC] loss is (nan|inf|-inf) at epoch \d+, batch \d+", message), message
    assert "lower distill.lr_embedding / distill.lr_dense" in message
    assert outputs_without_caches(project) == before
    checkpoints_on_disk(project / "artifacts")


def test_huge_numeric_value_stays_finite(offline: Path) -> None:
    from crossadapt.data.encoding import encode
    from crossadapt.data.partitions import read_day
    from crossadapt.data.schema import FeatureSchema

    project = offline.parent
    schema = FeatureSchema.from_dict(
        json.loads((project / "artifacts" / "teacher" / "schema.json").read_text())
    )
    frame = read_day(project / "data", rp.DATASET, DAY)
    frame.loc[0, "n0"] = 1e300
    frame.loc[1, "n0"] = -1e300

    encoded = encode(frame, schema)

    assert encoded.numeric[0, 0] == pytest.approx(math.log1p(1e300), rel=1e-6)
    assert encoded.numeric[1, 0] == pytest.approx(-math.log1p(1e300), rel=1e-6)
    assert pd.notna(encoded.numeric).all()
