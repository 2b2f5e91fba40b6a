"""Evaluation report: HTML page, per-day CSV and plots."""

from __future__ import annotations

import base64
import csv
from pathlib import Path

from crossadapt.monitoring.report import write_evaluation_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def daily_rows() -> list[dict]:
    rows = []
    for day in range(1, 6):
        rows.append(
            {
                "day": f"1998-03-{day:02d}",
                "teacher_auc": 0.75 + 0.001 * day,
                "student_auc": 0.74 + 0.004 * day,
                "scratch_auc": 0.70,
                "teacher_log_loss": 0.50,
                "student_log_loss": 0.51 - 0.005 * day,
                "teacher_prediction_bias": 0.05,
                "student_prediction_bias": -0.02,
                "drift_score": 0.1 * day,
                "flagged": day == 5,
            }
        )
    return rows


def test_report_contains_table_and_images(tmp_path: Path) -> None:
    final = {
        "teacher": {
            "auc": 0.7512,
            "log_loss": 0.49,
            "prediction_bias": 0.03,
            "rows": 1000,
            "positives": 210,
        },
        "student": {
            "auc": 0.7634,
            "log_loss": 0.48,
            "prediction_bias": -0.01,
            "rows": 1000,
            "positives": 210,
        },
    }
    gate = {"promote": True, "reasons": []}

    paths = write_evaluation_report(tmp_path, daily_rows(), final, baselines=["scratch"], gate=gate)

    page = paths.html.read_text()
    assert '<table id="final-metrics">' in page
    assert "<td>student</td>" in page
    assert "<td>0.7634</td>" in page
    assert "<td>1000</td>" in page
    assert page.count('src="data:image/png;base64,') == 4
    assert "Drift flagged on: 1998-03-05" in page
    assert "Promotion gate: promote the student" in page
    assert "<th>scratch_auc</th>" in page

    assert set(paths.images) == {"auc", "log_loss", "prediction_bias", "drift_score"}
    for image in paths.images.values():
        assert image.read_bytes().startswith(PNG_SIGNATURE)
    embedded = page.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(embedded) == paths.images["auc"].read_bytes()


def test_report_csv_has_one_line_per_day(tmp_path: Path) -> None:
    paths = write_evaluation_report(tmp_path, list(reversed(daily_rows())), {})

    with paths.csv.open() as handle:
        lines = list(csv.DictReader(handle))
    assert [line["day"] for line in lines] == [f"1998-03-{day:02d}" for day in range(1, 6)]
    assert lines[0]["student_auc"] == "0.744"
    assert lines[4]["flagged"] == "1"
    assert lines[0]["flagged"] == "0"


def test_report_without_days_still_renders(tmp_path: Path) -> None:
    paths = write_evaluation_report(tmp_path, [], {"teacher": {"auc": float("nan")}})

    page = paths.html.read_text()
    assert "<td>n/a</td>" in page
    assert "data:image/png" not in page
    assert paths.images == {}
