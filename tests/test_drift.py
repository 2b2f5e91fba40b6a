"""Drift of a day against its reference: Evidently report, teacher prediction drift, drift score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crossadapt.monitoring.drift import compute_drift, population_stability_index
from crossadapt.monitoring.validation import FeatureColumns

COLUMNS = FeatureColumns(
    categorical=("user_id", "item_id"), multi_valued=("genres",), numeric=("age", "price")
)


def make_frame(rows: int, shift: float, seed: int) -> pd.DataFrame:
    """Zipf-like ids, genres and two numeric columns; ``shift`` moves every distribution."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, 301)
    popularity /= popularity.sum()
    users = rng.choice(300, rows, p=popularity) + int(100 * shift)
    return pd.DataFrame(
        {
            "label": (rng.random(rows) < 0.2 + 0.3 * shift).astype("int8"),
            "user_id": users.astype(str),
            "item_id": (rng.choice(300, rows, p=popularity) * (1 + int(shift))).astype(str),
            "genres": rng.choice(
                ["Comedy", "Drama|Comedy", "Action"],
                rows,
                p=[0.5 - 0.3 * shift, 0.3, 0.2 + 0.3 * shift],
            ),
            "age": rng.normal(30.0 + 10.0 * shift, 8.0, rows),
            "price": rng.lognormal(1.0 + shift, 0.5, rows),
        }
    )


def teacher_probs(rows: int, shift: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).beta(2.0 + 4.0 * shift, 8.0, rows)


def test_population_stability_index_values() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=20_000)

    assert population_stability_index(reference, reference) == pytest.approx(0.0, abs=1e-12)
    assert population_stability_index(reference, rng.normal(size=20_000)) < 0.01
    assert population_stability_index(reference, rng.normal(1.0, 1.0, size=20_000)) > 0.25
    assert np.isnan(population_stability_index(reference, np.array([np.nan])))


def test_drifted_day_scores_higher(tmp_path: Path) -> None:
    rows = 3000
    reference = make_frame(rows, 0.0, seed=1)
    same = make_frame(rows, 0.0, seed=2)
    drifted = make_frame(rows, 1.0, seed=3)

    stable = compute_drift(
        reference,
        same,
        COLUMNS,
        teacher_probs(rows, 0.0, 4),
        teacher_probs(rows, 0.0, 5),
        tmp_path / "same",
    )
    moved = compute_drift(
        reference,
        drifted,
        COLUMNS,
        teacher_probs(rows, 0.0, 4),
        teacher_probs(rows, 1.0, 6),
        tmp_path / "drifted",
        max_rows=1000,
    )

    assert stable.share_drifted == 0.0
    assert moved.share_drifted >= 0.8
    assert set(stable.per_feature) == {"user_id", "item_id", "genres", "age", "price"}
    assert moved.per_feature["age"].drifted
    assert not stable.per_feature["age"].drifted
    assert stable.prediction_drift < 0.05
    assert moved.prediction_drift > 0.25
    assert moved.prediction_drift_test is not None
    assert moved.prediction_drift_test.drifted
    assert moved.positive_rate_cur > stable.positive_rate_cur
    expected_bias = teacher_probs(rows, 1.0, 6).mean() / drifted["label"].mean() - 1.0
    assert moved.teacher_bias == pytest.approx(expected_bias)
    assert moved.teacher_bias < -0.1
    assert stable.drift_score < 0.2
    assert moved.drift_score > 0.6
    assert moved.flagged
    assert not stable.flagged

    assert moved.sampled_rows_cur == 1000
    assert moved.rows_cur == rows
    assert stable.sampled_rows_cur == rows

    saved = json.loads((tmp_path / "drifted" / "drift.json").read_text())
    assert saved["drift_score"] == pytest.approx(moved.drift_score)
    # Evidently picks the method by size: a p-value test up to 1000 rows, a distance above.
    assert saved["per_feature"]["age"]["method"] == "K-S p_value"
    assert saved["per_feature"]["age"]["value"] < saved["per_feature"]["age"]["threshold"]
    assert stable.per_feature["age"].method == "Wasserstein distance (normed)"
    assert (tmp_path / "drifted" / "drift_report.html").stat().st_size > 100_000
    snapshot = json.loads((tmp_path / "drifted" / "drift_report.json").read_text())
    assert "metrics" in snapshot
    assert not list((tmp_path / "drifted").glob(".*.tmp"))
