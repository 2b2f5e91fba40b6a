"""Tests of the whole-set CTR metrics against hand-computed values and scikit-learn."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from sklearn.metrics import log_loss as sklearn_log_loss
from sklearn.metrics import roc_auc_score

from crossadapt.training.metrics import (
    auc,
    binary_entropy,
    evaluate_predictions,
    log_loss,
    normalized_entropy,
    prediction_bias,
)


def test_auc_hand_computed() -> None:
    # Positive/negative pairs: (.35, .1) yes, (.35, .4) no, (.8, .1) yes, (.8, .4) yes -> 3/4.
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)


def test_auc_ties_count_half() -> None:
    # Pairs: (.5 pos, .5 neg) tie = 0.5, (.5, .2) = 1, (.9, .5) = 1, (.9, .2) = 1 -> 3.5/4.
    assert auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)


def test_auc_all_scores_tied_is_half() -> None:
    assert auc([0, 1, 1, 0, 1], [0.3] * 5) == pytest.approx(0.5)


def test_auc_perfect_and_reversed() -> None:
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(1.0)
    assert auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == pytest.approx(0.0)


def test_auc_single_class_is_nan_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="crossadapt.training.metrics"):
        value = auc([1, 1, 1], [0.2, 0.5, 0.9])
    assert math.isnan(value)
    assert "single class" in caplog.text


def test_auc_empty_set_is_nan() -> None:
    assert math.isnan(auc([], []))


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=5000)
    # Rounding to two decimals creates many tied scores across both classes.
    p = np.round(np.clip(0.3 * y + rng.uniform(0, 0.7, size=5000), 0, 1), 2)
    assert auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_log_loss_hand_computed() -> None:
    expected = -(math.log(0.8) + math.log(0.6)) / 2
    assert log_loss([1, 0], [0.8, 0.4]) == pytest.approx(expected)


def test_log_loss_clips_zero_and_one() -> None:
    assert log_loss([1], [0.0]) == pytest.approx(-math.log(1e-7))
    assert log_loss([0], [1.0]) == pytest.approx(-math.log(1e-7))
    assert log_loss([1], [1.0]) == pytest.approx(-math.log1p(-1e-7))
    assert math.isfinite(log_loss([1, 0], [0.0, 1.0], eps=1e-15))


def test_log_loss_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=2000)
    p = rng.uniform(0.01, 0.99, size=2000)
    assert log_loss(y, p) == pytest.approx(sklearn_log_loss(y, p), rel=1e-12)


def test_prediction_bias_hand_computed() -> None:
    assert prediction_bias([0, 1, 1, 0], [0.2, 0.4, 0.6, 0.8]) == pytest.approx(0.0)
    # mean(p) = 0.6, mean(y) = 0.5 -> 0.6 / 0.5 - 1 = 0.2
    assert prediction_bias([0, 1, 1, 0], [0.4, 0.6, 0.8, 0.6]) == pytest.approx(0.2)
    # mean(p) = 0.25, mean(y) = 0.5 -> -0.5
    assert prediction_bias([0, 1], [0.2, 0.3]) == pytest.approx(-0.5)


def test_prediction_bias_without_positives_is_nan(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="crossadapt.training.metrics"):
        value = prediction_bias([0, 0], [0.1, 0.2])
    assert math.isnan(value)
    assert "without positives" in caplog.text


def test_binary_entropy_values() -> None:
    assert binary_entropy(0.5) == pytest.approx(math.log(2))
    assert binary_entropy(0.25) == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    assert binary_entropy(0.0) == 0.0
    assert binary_entropy(1.0) == 0.0


def test_normalized_entropy_of_base_rate_predictor_is_one() -> None:
    assert normalized_entropy([0, 0, 1, 1], [0.5] * 4) == pytest.approx(1.0)
    assert normalized_entropy([0, 0, 0, 1], [0.25] * 4) == pytest.approx(1.0)


def test_normalized_entropy_hand_computed() -> None:
    y = [0, 0, 0, 1]
    p = [0.1, 0.2, 0.1, 0.7]
    expected_loss = -(2 * math.log(0.9) + math.log(0.8) + math.log(0.7)) / 4
    expected_entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert normalized_entropy(y, p) == pytest.approx(expected_loss / expected_entropy)
    assert normalized_entropy(y, p) < 1.0


def test_normalized_entropy_single_class_is_nan() -> None:
    assert math.isnan(normalized_entropy([1, 1], [0.5, 0.6]))
    assert math.isnan(normalized_entropy([], []))


def test_evaluate_predictions_keys_and_values() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    metrics = evaluate_predictions(y, p)
    assert set(metrics) == {
        "auc",
        "log_loss",
        "prediction_bias",
        "normalized_entropy",
        "rows",
        "positives",
    }
    assert metrics["auc"] == pytest.approx(0.75)
    assert metrics["log_loss"] == pytest.approx(sklearn_log_loss(y, p))
    assert metrics["prediction_bias"] == pytest.approx(np.mean(p) / 0.5 - 1)
    assert metrics["normalized_entropy"] == pytest.approx(sklearn_log_loss(y, p) / math.log(2))
    assert metrics["rows"] == 4
    assert metrics["positives"] == 2


def test_evaluate_predictions_single_class_does_not_raise() -> None:
    metrics = evaluate_predictions([0, 0, 0], np.array([0.1, 0.2, 0.3], dtype=np.float32))
    assert math.isnan(metrics["auc"])
    assert math.isnan(metrics["prediction_bias"])
    assert math.isnan(metrics["normalized_entropy"])
    assert metrics["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.7])), rel=1e-6)
    assert metrics["positives"] == 0


def test_metrics_reject_length_mismatch() -> None:
    with pytest.raises(ValueError, match="3 labels, 2 predictions"):
        auc([0, 1, 0], [0.1, 0.2])


def test_metrics_reject_non_binary_labels() -> None:
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        log_loss([0, 2], [0.1, 0.2])


def test_metrics_reject_nan_predictions() -> None:
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        evaluate_predictions([0, 1], [0.1, float("nan")])
