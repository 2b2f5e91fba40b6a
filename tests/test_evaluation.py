"""Shadow evaluation of teacher and student, and the promotion gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crossadapt.monitoring.evaluation import compare_models, promotion_gate, write_promotion_record


def day_row(
    day: int, teacher_auc: float, student_auc: float, bias: float, positives: int = 100
) -> dict:
    return {
        "day": f"1998-03-{day:02d}",
        "teacher_auc": teacher_auc,
        "student_auc": student_auc,
        "student_prediction_bias": bias,
        "positives": positives,
    }


def test_compare_models_side_by_side() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    teacher = np.array([0.1, 0.6, 0.4, 0.8, 0.3, 0.7])
    student = np.array([0.1, 0.2, 0.6, 0.8, 0.3, 0.7])

    row = compare_models(y, teacher, student)

    assert row["rows"] == 6
    assert row["positives"] == 3
    assert row["teacher_auc"] == pytest.approx(8 / 9)
    assert row["student_auc"] == pytest.approx(1.0)
    assert row["delta_auc"] == pytest.approx(1 / 9)
    assert row["delta_log_loss"] == pytest.approx(row["student_log_loss"] - row["teacher_log_loss"])
    assert row["delta_log_loss"] < 0
    assert row["teacher_prediction_bias"] == pytest.approx(teacher.mean() / 0.5 - 1)
    assert set(row) >= {
        "teacher_normalized_entropy",
        "student_normalized_entropy",
        "delta_normalized_entropy",
    }


def test_gate_promotes_close_student() -> None:
    rows = [day_row(d, 0.78, 0.776, 0.02) for d in range(1, 11)]

    decision = promotion_gate(rows, last_n_days=7, auc_margin=0.005, max_abs_prediction_bias=0.1)

    assert decision.promote
    assert decision.reasons == []
    assert decision.days == [f"1998-03-{d:02d}" for d in range(4, 11)]
    assert decision.student_prediction_bias == pytest.approx(0.02)


def test_gate_uses_only_last_days() -> None:
    rows = [day_row(d, 0.80, 0.70, 0.0) for d in range(1, 4)] + [
        day_row(d, 0.78, 0.79, 0.0) for d in range(4, 11)
    ]

    assert promotion_gate(
        rows, last_n_days=7, auc_margin=0.005, max_abs_prediction_bias=0.1
    ).promote
    assert not promotion_gate(
        rows, last_n_days=10, auc_margin=0.005, max_abs_prediction_bias=0.1
    ).promote


def test_gate_rejects_lower_auc() -> None:
    rows = [day_row(d, 0.78, 0.77, 0.0) for d in range(1, 8)]

    decision = promotion_gate(rows, last_n_days=7, auc_margin=0.005, max_abs_prediction_bias=0.1)

    assert not decision.promote
    assert decision.checks == {"enough_days": True, "auc": False, "prediction_bias": True}
    assert "student mean AUC 0.7700 is below teacher mean AUC 0.7800" in decision.reasons[0]


def test_gate_rejects_pooled_bias() -> None:
    # Pooled bias: (1.3 * 300 + 1.0 * 100) / 400 - 1 = 0.225.
    rows = [day_row(1, 0.78, 0.79, 0.3, positives=300), day_row(2, 0.78, 0.79, 0.0, positives=100)]

    decision = promotion_gate(rows, last_n_days=2, auc_margin=0.005, max_abs_prediction_bias=0.1)

    assert not decision.promote
    assert decision.student_prediction_bias == pytest.approx(0.225)
    assert decision.checks["prediction_bias"] is False
    assert "+0.2250 exceeds promotion.max_abs_prediction_bias=0.1" in decision.reasons[0]


def test_gate_rejects_too_few_days() -> None:
    rows = [day_row(1, float("nan"), float("nan"), 0.0), day_row(2, 0.7, 0.8, 0.0)]

    decision = promotion_gate(rows, last_n_days=3, auc_margin=0.005, max_abs_prediction_bias=0.1)

    assert not decision.promote
    assert decision.checks == {"enough_days": False, "auc": True, "prediction_bias": True}
    assert decision.student_auc == pytest.approx(0.8)
    assert "only 2 evaluated days" in decision.reasons[0]


def test_promotion_record_json(tmp_path: Path) -> None:
    rows = [day_row(1, float("nan"), float("nan"), 0.0)]
    decision = promotion_gate(rows, last_n_days=1, auc_margin=0.005, max_abs_prediction_bias=0.1)

    path = write_promotion_record(
        tmp_path / "promotion.json", decision, "artifacts/student.pt", "ab" * 32
    )

    record = json.loads(path.read_text())
    assert record["promoted"] is False
    assert record["student_checkpoint"] == "artifacts/student.pt"
    assert record["student_checkpoint_sha256"] == "ab" * 32
    assert record["decision"]["student_auc"] is None
    assert record["decision"]["reasons"] == decision.reasons
