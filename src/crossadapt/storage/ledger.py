"""Ledger of applied online days, so that re-running a day is a no-op or an explicit
replacement and never a second training on the same data.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from crossadapt.errors import LedgerError
from crossadapt.storage.atomic import atomic_write_json
from crossadapt.storage.hashing import sha256_file

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
Decision = Literal["apply", "skip"]


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _parse_day(day: str, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(day)
    except (TypeError, ValueError) as error:
        raise LedgerError(f"{where}: day {day!r} is not a date in YYYY-MM-DD form") from error


@dataclass
class LedgerRow:
    """One applied online day.

    ``teacher_checkpoint`` and ``student_checkpoint`` are the checkpoint paths relative to
    the checkpoint folder that ``Ledger.verify`` is given; by default
    ``<day>/teacher.pt`` and ``<day>/student.pt``.
    """

    day: str
    input_sha256: str
    teacher_checkpoint_sha256: str
    student_checkpoint_sha256: str
    drift_score: float | None = None
    weights: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    replaced: bool = False
    created_at: str = field(default_factory=_utc_now)
    teacher_checkpoint: str | None = None
    student_checkpoint: str | None = None

    def __post_init__(self) -> None:
        _parse_day(self.day, "ledger row")
        if self.teacher_checkpoint is None:
            self.teacher_checkpoint = f"{self.day}/teacher.pt"
        if self.student_checkpoint is None:
            self.student_checkpoint = f"{self.day}/student.pt"

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LedgerRow:
        """Build a row from a dict, raising LedgerError on missing or unknown keys."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        required = ("day", "input_sha256", "teacher_checkpoint_sha256", "student_checkpoint_sha256")
        missing = [key for key in required if key not in values]
        if unknown or missing:
            raise LedgerError(
                f"invalid ledger row for day {values.get('day')!r}: missing keys {missing}, "
                f"unknown keys {unknown}"
            )
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """Return the row as a JSON-ready dict."""
        return asdict(self)


class Ledger:
    """The applied online days, stored as one JSON file that every write rewrites atomically.

    File layout: ``{"format_version": 1, "rows": [row, ...]}`` with rows in day order. Every
    call re-reads the file, so two processes see each other's writes. Writers must be
    serialized with ``crossadapt.storage.locks.run_lock``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def rows(self) -> list[LedgerRow]:
        """Return every row in day order (empty when the ledger file does not exist yet)."""
        if not self.path.exists():
            return []
        try:
            content = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise LedgerError(
                f"ledger {self.path} is unreadable ({error}): restore it from version control "
                "(dvc checkout) or delete it to start the online stage again"
            ) from error

        if not isinstance(content, dict) or content.get("format_version") != FORMAT_VERSION:
            raise LedgerError(
                f"ledger {self.path} is not a format_version {FORMAT_VERSION} ledger: restore "
                "it from version control or delete it to start the online stage again"
            )
        return [LedgerRow.from_dict(row) for row in content.get("rows", [])]

    def days(self) -> list[str]:
        """Return the applied days, oldest first."""
        return [row.day for row in self.rows()]

    def last_day(self) -> str | None:
        """Return the most recent applied day, or None for an empty ledger."""
        days = self.days()
        return days[-1] if days else None

    def get(self, day: str) -> LedgerRow | None:
        """Return the row of ``day``, or None if that day was not applied."""
        for row in self.rows():
            if row.day == day:
                return row
        return None

    def check_next(
        self,
        day: str,
        input_sha256: str,
        replace: bool = False,
        expected_days: Sequence[str] | None = None,
    ) -> Decision:
        """Decide whether the online step may train on ``day``: "apply" or "skip".

        - ``day`` already applied with the same input hash: "skip" (the re-run is a no-op),
          unless ``replace`` and ``day`` is the last day: "apply".
        - ``day`` already applied with another input hash: LedgerError, unless ``replace``
          and ``day`` is the last day.
        - ``replace`` of a day that is not the last applied one: LedgerError, because later
          days were trained on top of it.
        - ``day`` before the last applied day and never applied: LedgerError (out of order).
        - With ``expected_days`` (every online day, in order), ``day`` must be the expected
          day after the last applied one; otherwise LedgerError names the missing day.
          Without it, gaps between days are not checked.
        """
        _parse_day(day, f"ledger {self.path}")
        rows = self.rows()
        applied = {row.day: row for row in rows}
        last = rows[-1].day if rows else None

        if replace and day in applied and day != last:
            raise LedgerError(
                f"ledger {self.path}: cannot replace day {day} because later days (up to "
                f"{last}) were trained on top of it. Only the last applied day can be replaced"
            )

        if day in applied:
            recorded = applied[day].input_sha256
            if replace:
                logger.info("ledger: replacing day %s (input sha256 %s)", day, input_sha256)
                return "apply"
            if recorded == input_sha256:
                logger.info("ledger: day %s already applied with the same input, skipping", day)
                return "skip"
            raise LedgerError(
                f"ledger {self.path}: day {day} was already applied with input sha256 "
                f"{recorded}, but its input now has sha256 {input_sha256}. "
                + (
                    "Re-run with replace to retrain it."
                    if day == last
                    else f"Only the last applied day ({last}) can be replaced."
                )
            )

        if last is not None and day < last:
            raise LedgerError(
                f"ledger {self.path}: day {day} comes before the last applied day {last}: "
                "online days must be applied in date order"
            )

        if expected_days is not None:
            self._check_no_gap(day, last, list(expected_days))
        return "apply"

    def _check_no_gap(self, day: str, last: str | None, expected_days: list[str]) -> None:
        if day not in expected_days:
            raise LedgerError(
                f"ledger {self.path}: day {day} is not one of the online days "
                f"({expected_days[0] if expected_days else 'none'} .. "
                f"{expected_days[-1] if expected_days else 'none'}): check split.online_start "
                "and split.online_end in params.yaml"
            )

        if last is None:
            next_expected = expected_days[0]
        else:
            later = [candidate for candidate in expected_days if candidate > last]
            next_expected = later[0] if later else day
        if day != next_expected:
            raise LedgerError(
                f"ledger {self.path}: day {next_expected} is missing before day {day}: "
                f"apply {next_expected} first"
            )

    def append(self, row: LedgerRow | Mapping[str, Any]) -> LedgerRow:
        """Record a new day after the last one; raise LedgerError if it is not newer."""
        new_row = row if isinstance(row, LedgerRow) else LedgerRow.from_dict(row)
        rows = self.rows()
        if rows and new_row.day <= rows[-1].day:
            raise LedgerError(
                f"ledger {self.path}: cannot append day {new_row.day}, the last applied day "
                f"is {rows[-1].day}. Use replace for the last day"
            )
        rows.append(new_row)
        self._write(rows)
        logger.info("ledger %s: appended day %s", self.path, new_row.day)
        return new_row

    def replace(self, row: LedgerRow | Mapping[str, Any]) -> LedgerRow:
        """Replace the last applied day's row, marking it ``replaced``."""
        new_row = row if isinstance(row, LedgerRow) else LedgerRow.from_dict(row)
        rows = self.rows()
        if not rows or rows[-1].day != new_row.day:
            raise LedgerError(
                f"ledger {self.path}: cannot replace day {new_row.day}, only the last applied "
                f"day ({rows[-1].day if rows else 'none'}) can be replaced"
            )
        new_row.replaced = True
        rows[-1] = new_row
        self._write(rows)
        logger.info("ledger %s: replaced day %s", self.path, new_row.day)
        return new_row

    def rewind_to(self, day: str) -> list[LedgerRow]:
        """Drop the rows of ``day`` and of every later day; return the dropped rows.

        Replacing an earlier day makes the later days stale (each was trained from the
        day before it), so they must be applied again, in order.
        """
        rows = self.rows()
        kept = [row for row in rows if row.day < day]
        dropped = [row for row in rows if row.day >= day]
        if dropped:
            self._write(kept)
            logger.warning(
                "ledger %s: rewound to before %s, dropped days %s",
                self.path,
                day,
                [row.day for row in dropped],
            )
        return dropped

    def verify(self, checkpoint_dir: str | os.PathLike[str]) -> int:
        """Check that each row's checkpoint hashes match the files under ``checkpoint_dir``.

        Returns the number of files checked; raises LedgerError listing every missing file
        and every hash mismatch.
        """
        folder = Path(checkpoint_dir)
        problems: list[str] = []
        checked = 0
        for row in self.rows():
            pairs = (
                (row.teacher_checkpoint, row.teacher_checkpoint_sha256),
                (row.student_checkpoint, row.student_checkpoint_sha256),
            )
            for relative_path, recorded in pairs:
                checkpoint_path = folder / str(relative_path)
                checked += 1
                if not checkpoint_path.is_file():
                    problems.append(f"day {row.day}: {checkpoint_path} is missing")
                    continue
                actual = sha256_file(checkpoint_path)
                if actual != recorded:
                    problems.append(
                        f"day {row.day}: {checkpoint_path} has sha256 {actual}, "
                        f"the ledger records {recorded}"
                    )

        if problems:
            raise LedgerError(
                f"ledger {self.path} does not match the checkpoints in {folder}: "
                + "; ".join(problems)
                + ". Restore the checkpoints (dvc checkout) or replay the online days"
            )
        logger.info("ledger %s: %d checkpoint hashes verified", self.path, checked)
        return checked

    def _write(self, rows: list[LedgerRow]) -> None:
        ordered = sorted(rows, key=lambda row: row.day)
        atomic_write_json(
            self.path,
            {"format_version": FORMAT_VERSION, "rows": [row.to_dict() for row in ordered]},
        )
