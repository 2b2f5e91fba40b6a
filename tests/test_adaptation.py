"""Drift score and the online weights derived from it."""

from __future__ import annotations

import math

import pytest

from crossadapt.errors import ParamsError
from crossadapt.online.adaptation import (
    AdaptationConfig,
    AdaptedWeights,
    DriftScoreWeights,
    adapt_weights,
    drift_score,
)


def test_zero_drift_reproduces_reference_weights() -> None:
    weights = adapt_weights(0.0, alpha_max=0.7, alpha_min=0.3, replay_max=0.1, k=10)

    assert weights == AdaptedWeights(alpha=0.7, replay_ratio=0.1, teacher_update_interval=10)


def test_full_drift_gives_minimum_weights() -> None:
    weights = adapt_weights(1.0, alpha_max=0.7, alpha_min=0.3, replay_max=0.1, k=10)

    assert weights.alpha == 0.3
    assert weights.replay_ratio == 0.0
    assert weights.teacher_update_interval == 1


def test_half_drift_interpolates() -> None:
    weights = adapt_weights(0.5, alpha_max=0.7, alpha_min=0.3, replay_max=0.1, k=10)

    assert weights.alpha == pytest.approx(0.5)
    assert weights.replay_ratio == pytest.approx(0.05)
    assert weights.teacher_update_interval == 5


@pytest.mark.parametrize("s", [-0.1, 1.1, math.nan])
def test_adapt_weights_rejects_bad_score(s: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        adapt_weights(s, alpha_max=0.7, alpha_min=0.3, replay_max=0.1, k=10)


def test_drift_score_zero_without_drift() -> None:
    score = drift_score(
        0.0, prediction_drift=0.0, positive_rate_ref=0.2, positive_rate_cur=0.2, teacher_bias=0.0
    )

    assert score == 0.0


def test_drift_score_formula() -> None:
    weights = DriftScoreWeights()
    score = drift_score(
        0.5, prediction_drift=0.1, positive_rate_ref=0.2, positive_rate_cur=0.4, teacher_bias=-0.2
    )

    log_ratio = abs(math.log((0.4 + 1e-6) / (0.2 + 1e-6)))
    expected = (
        0.4 * 0.5
        + 0.2 * (1 - math.exp(-0.1 / weights.prediction_scale))
        + 0.2 * (1 - math.exp(-log_ratio / weights.positive_rate_scale))
        + 0.2 * (1 - math.exp(-0.2 / weights.teacher_bias_scale))
    )
    assert score == pytest.approx(expected)


def test_drift_score_grows_with_each_term() -> None:
    base = drift_score(
        0.1, prediction_drift=0.01, positive_rate_ref=0.2, positive_rate_cur=0.2, teacher_bias=0.0
    )

    assert drift_score(0.6, 0.01, 0.2, 0.2, 0.0) > base
    assert drift_score(0.1, 0.3, 0.2, 0.2, 0.0) > base
    assert drift_score(0.1, 0.01, 0.2, 0.5, 0.0) > base
    assert drift_score(0.1, 0.01, 0.2, 0.2, 0.5) > base


def test_drift_score_unmeasured_terms_are_left_out() -> None:
    assert drift_score(0.5) == pytest.approx(0.5)
    assert drift_score(1.0, prediction_drift=None, teacher_bias=None) == 1.0


def test_drift_score_undefined_term_saturates() -> None:
    score = drift_score(0.0, teacher_bias=math.nan)

    assert score == pytest.approx(0.2 / 0.6)
    assert drift_score(1.0, math.inf, 0.0, 0.5, math.inf) == pytest.approx(1.0)


def test_config_disabled_returns_fixed_weights() -> None:
    config = AdaptationConfig(enabled=False)

    weights = config.weights_for_day(0.9, alpha=0.7, replay_ratio=0.1, teacher_update_interval=10)

    assert weights == AdaptedWeights(alpha=0.7, replay_ratio=0.1, teacher_update_interval=10)


def test_config_enabled_adapts_and_flags() -> None:
    config = AdaptationConfig.from_mapping(
        {
            "enabled": True,
            "alpha_max": 0.8,
            "alpha_min": 0.2,
            "replay_max": 0.2,
            "drift_threshold": 0.5,
        }
    )

    weights = config.weights_for_day(1.0, alpha=0.7, replay_ratio=0.1, teacher_update_interval=10)

    assert weights == AdaptedWeights(alpha=0.2, replay_ratio=0.0, teacher_update_interval=1)
    assert config.is_flagged(0.6)
    assert not config.is_flagged(0.5)


def test_config_rejects_unknown_key_and_bad_values() -> None:
    with pytest.raises(ParamsError, match="unknown keys \\['alpah_max'\\]"):
        AdaptationConfig.from_mapping({"alpah_max": 0.7})
    with pytest.raises(ParamsError, match=r"adaptation\.alpha_min=0\.9"):
        AdaptationConfig(alpha_min=0.9, alpha_max=0.7)
    with pytest.raises(ParamsError, match=r"adaptation\.reference='yesterday'"):
        AdaptationConfig(reference="yesterday")
