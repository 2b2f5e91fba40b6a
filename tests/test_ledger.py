"""Tests of the online ledger: idempotent re-runs, explicit replacement, order and gaps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossadapt.errors import LedgerError
from crossadapt.storage.hashing import sha256_file
from crossadapt.storage.ledger import Ledger, LedgerRow

DAYS = ["1998-03-01", "1998-03-02", "1998-03-04", "1998-03-05"]


def make_row(day: str, input_sha256: str = "in", **overrides: object) -> LedgerRow:
    values: dict[str, object] = {
        "day": day,
        "input_sha256": input_sha256,
        "teacher_checkpoint_sha256": "t",
        "student_checkpoint_sha256": "s",
        "drift_score": 0.1,
        "weights": {"alpha": 0.7, "replay_ratio": 0.1, "teacher_update_interval": 10},
        "metrics": {"student_auc": 0.74},
    }
    values.update(overrides)
    return LedgerRow(**values)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.json")


def test_ledger_empty(ledger: Ledger) -> None:
    assert ledger.days() == []
    assert ledger.last_day() is None
    assert ledger.get("1998-03-01") is None
    assert ledger.check_next("1998-03-01", "in", expected_days=DAYS) == "apply"


def test_ledger_append_and_read_back(ledger: Ledger) -> None:
    ledger.append(make_row("1998-03-01", "h1"))
    ledger.append(make_row("1998-03-02", "h2").to_dict())

    reopened = Ledger(ledger.path)
    assert reopened.days() == ["1998-03-01", "1998-03-02"]
    assert reopened.last_day() == "1998-03-02"
    row = reopened.get("1998-03-01")
    assert row is not None
    assert row.input_sha256 == "h1"
    assert row.weights["teacher_update_interval"] == 10
    assert row.metrics == {"student_auc": 0.74}
    assert row.replaced is False
    assert row.teacher_checkpoint == "1998-03-01/teacher.pt"
    assert row.created_at.endswith("+00:00")

    content = json.loads(ledger.path.read_text())
    assert content["format_version"] == 1
    assert [r["day"] for r in content["rows"]] == ["1998-03-01", "1998-03-02"]


def test_ledger_same_day_same_input_skips(ledger: Ledger) -> None:
    ledger.append(make_row("1998-03-01", "h1"))
    ledger.append(make_row("1998-03-02", "h2"))
    assert ledger.check_next("1998-03-02", "h2") == "skip"
    assert ledger.check_next("1998-03-01", "h1") == "skip"


def test_ledger_same_day_other_input_raises(ledger: Ledger) -> None:
    ledger.append(make_row("1998-03-01", "h1"))
    with pytest.raises(
        LedgerError, match="day 1998-03-01 was already applied with input sha256 h1"
    ):
        ledger.check_next("1998-03-01", "changed")


def test_ledger_replace_last_day(ledger: Ledger) -> None:
    ledger.append(make_row("1998-03-01", "h1"))
    ledger.append(make_row("1998-03-02", "h2"))
    assert ledger.check_next("1998-03-02", "changed", replace=True) == "apply"
    assert ledger.check_next("1998-03-02", "h2", replace=True) == "apply"

    ledger.replace(make_row("1998-03-02", "changed"))
    row = ledger.get("1998-03-02")
    assert row is not None
    assert row.input_sha256 == "changed"
    assert row.replaced is True
    assert ledger.days() == ["1998-03-01", "1998-03-02"]


def test_ledger_replace_earlier_day_raises(ledger: Ledger) -> None:
    ledger.append(make_row("1998-03-01", "h1"))
    ledger.append(make_row("1998-03-02", "h2"))
    with pytest.raises(LedgerError, match="cannot replace day 1998-03-01"):
        ledger.check_next("1998-03-01", "changed", replace=True)
    with pytest.raises(LedgerError, match="only the last applied day"):
        ledger.replace(make_row("1998-03-01", "changed"))


def test_ledger_changed_earlier_day_names_last_day(ledger: Ledger) -> None:
    ledger.append(make_row("1998-03-01", "h1"))
    ledger.append(make_row("1998-03-02", "h2"))
    with pytest.raises(LedgerError, match=r"Only the last applied day \(1998-03-02\)"):
        ledger.check_next("1998-03-01", "changed")


def test_ledger_out_of_order_day_raises(ledger: Ledger) -> None:
    ledger.append(make_row("1998-03-01"))
    ledger.append(make_row("1998-03-04"))
    with pytest.raises(LedgerError, match="day 1998-03-02 comes before the last applied day"):
        ledger.check_next("1998-03-02", "in")
    with pytest.raises(LedgerError, match="cannot append day 1998-03-02"):
        ledger.append(make_row("1998-03-02"))


def test_ledger_gap_names_missing_day(ledger: Ledger) -> None:
    ledger.append(make_row("1998-03-01"))
    with pytest.raises(LedgerError, match="day 1998-03-02 is missing before day 1998-03-04"):
        ledger.check_next("1998-03-04", "in", expected_days=DAYS)
    # 1998-03-03 is not an expected day (no data), so 03-04 follows 03-02 without a gap.
    ledger.append(make_row("1998-03-02"))
    assert ledger.check_next("1998-03-04", "in", expected_days=DAYS) == "apply"


def test_ledger_first_day_must_be_first_expected(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="day 1998-03-01 is missing before day 1998-03-02"):
        ledger.check_next("1998-03-02", "in", expected_days=DAYS)


def test_ledger_unexpected_day_raises(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="day 1998-03-03 is not one of the online days"):
        ledger.check_next("1998-03-03", "in", expected_days=DAYS)


def test_ledger_without_expected_days_allows_gap(ledger: Ledger) -> None:
    ledger.append(make_row("1998-03-01"))
    assert ledger.check_next("1998-03-09", "in") == "apply"


def test_ledger_invalid_day_raises(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="'03/01/1998' is not a date"):
        ledger.check_next("03/01/1998", "in")


def test_ledger_corrupt_file_raises(ledger: Ledger) -> None:
    ledger.path.write_text('{"format_version": 1, "rows": [')
    with pytest.raises(LedgerError, match=r"ledger\.json is unreadable"):
        ledger.days()


def test_ledger_row_with_unknown_key_raises(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match=r"unknown keys \['colour'\]"):
        ledger.append({**make_row("1998-03-01").to_dict(), "colour": "red"})


def test_ledger_verify_checkpoint_hashes(ledger: Ledger, tmp_path: Path) -> None:
    checkpoints = tmp_path / "online"
    for day in ("1998-03-01", "1998-03-02"):
        (checkpoints / day).mkdir(parents=True)
        (checkpoints / day / "teacher.pt").write_bytes(f"teacher {day}".encode())
        (checkpoints / day / "student.pt").write_bytes(f"student {day}".encode())
        ledger.append(
            make_row(
                day,
                teacher_checkpoint_sha256=sha256_file(checkpoints / day / "teacher.pt"),
                student_checkpoint_sha256=sha256_file(checkpoints / day / "student.pt"),
            )
        )
    assert ledger.verify(checkpoints) == 4

    (checkpoints / "1998-03-02" / "student.pt").write_bytes(b"tampered")
    (checkpoints / "1998-03-01" / "teacher.pt").unlink()
    with pytest.raises(LedgerError) as raised:
        ledger.verify(checkpoints)
    message = str(raised.value)
    assert "day 1998-03-01: " in message
    assert "teacher.pt is missing" in message
    assert "day 1998-03-02: " in message
    assert "student.pt has sha256" in message
