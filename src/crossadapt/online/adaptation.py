"""Distribution-aware adaptation: reduce a day's drift to one score and set the day's weights."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from crossadapt.errors import ParamsError

logger = logging.getLogger(__name__)

REFERENCES = ("retained", "last_n_days")


@dataclass(frozen=True)
class DriftScoreWeights:
    """Weights and saturation scales of the four terms of ``drift_score``.

    The default weights count feature drift twice as much as each of the three signals about the
    label and the teacher. Each scale is the raw value at which a term reaches 1 - 1/e (0.63).
    These values are a PSI of 0.1 (0.1 to 0.25 is the usual "moderate shift" band), a
    positive-rate ratio of e^0.5 (x1.65), and a teacher prediction bias of 20 %.
    """

    feature: float = 0.4
    prediction: float = 0.2
    positive_rate: float = 0.2
    teacher_bias: float = 0.2
    prediction_scale: float = 0.1
    positive_rate_scale: float = 0.5
    teacher_bias_scale: float = 0.2

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not math.isfinite(value) or value < 0:
                raise ParamsError(
                    f"drift score weight {item.name}={value} is invalid; use a finite value >= 0"
                )
        for name in ("prediction_scale", "positive_rate_scale", "teacher_bias_scale"):
            if getattr(self, name) == 0:
                raise ParamsError(f"drift score weight {name}=0 is invalid; use a scale > 0")


def saturate(value: float, scale: float) -> float:
    """Map a magnitude >= 0 to [0, 1) as ``1 - exp(-value / scale)``; +inf and NaN map to 1."""
    if math.isnan(value) or math.isinf(value):
        return 1.0
    return 1.0 - math.exp(-max(0.0, value) / scale)


def drift_score(
    share_drifted: float,
    prediction_drift: float | None = None,
    positive_rate_ref: float | None = None,
    positive_rate_cur: float | None = None,
    teacher_bias: float | None = None,
    weights: DriftScoreWeights | None = None,
    eps: float = 1e-6,
) -> float:
    """Reduce a day's drift measurements to one score ``s`` in [0, 1].

    Our design: the CrossAdapt method calls for such a score but gives no formula.

    ``s = sum_i w_i * t_i / sum_i w_i`` over the terms that were measured, with

    - ``t_feature = clip(share_drifted, 0, 1)``, the share of features Evidently flags as drifted;
    - ``t_prediction = 1 - exp(-PSI / prediction_scale)``, PSI of the teacher's probabilities
      (reference vs day);
    - ``t_positive_rate = 1 - exp(-|log((r_cur + eps) / (r_ref + eps))| / positive_rate_scale)``;
    - ``t_teacher_bias = 1 - exp(-|b| / teacher_bias_scale)``, with ``b = mean(p) / mean(y) - 1``
      the teacher's prediction bias on the day.

    A term passed as None (not measured, e.g. no teacher probabilities) is left out and the weights
    are renormalised over the others; an infinite or NaN measurement (e.g. a day without positives)
    counts as full drift, ``t = 1``. ``s == 0`` exactly when no feature drifted and the other
    measured terms are 0.
    """
    weights = weights or DriftScoreWeights()
    terms: list[tuple[float, float]] = [(weights.feature, min(1.0, max(0.0, float(share_drifted))))]
    if prediction_drift is not None:
        terms.append(
            (weights.prediction, saturate(abs(prediction_drift), weights.prediction_scale))
        )
    if positive_rate_ref is not None and positive_rate_cur is not None:
        log_ratio = abs(math.log((positive_rate_cur + eps) / (positive_rate_ref + eps)))
        terms.append((weights.positive_rate, saturate(log_ratio, weights.positive_rate_scale)))
    if teacher_bias is not None:
        terms.append(
            (weights.teacher_bias, saturate(abs(teacher_bias), weights.teacher_bias_scale))
        )

    total_weight = sum(weight for weight, _ in terms)
    if total_weight == 0:
        return 0.0
    score = sum(weight * term for weight, term in terms) / total_weight
    return min(1.0, max(0.0, score))


@dataclass(frozen=True)
class AdaptedWeights:
    """Online weights for one day: KD weight, replay ratio and teacher update interval."""

    alpha: float
    replay_ratio: float
    teacher_update_interval: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def adapt_weights(
    s: float, alpha_max: float, alpha_min: float, replay_max: float, k: int
) -> AdaptedWeights:
    """Set the day's weights from its drift score ``s``.

    ``alpha_day = alpha_max - (alpha_max - alpha_min) * s`` (strong drift: trust new labels more);
    ``replay_day = replay_max * (1 - s)``; ``k_day = max(1, round(k * (1 - s)))`` (the teacher
    catches up faster). With ``s == 0`` the result is exactly ``(alpha_max, replay_max, k)``,
    with ``s == 1`` exactly ``(alpha_min, 0, 1)``.
    """
    if not 0.0 <= s <= 1.0 or math.isnan(s):
        raise ValueError(f"drift score s={s} is outside [0, 1]")
    if k < 1:
        raise ParamsError(f"online.teacher_update_interval={k} is invalid; use an integer >= 1")
    # alpha_max * (1 - s) + alpha_min * s is the same line, written so that s = 0 and s = 1
    # return alpha_max and alpha_min exactly, with no rounding error.
    return AdaptedWeights(
        alpha=alpha_max * (1.0 - s) + alpha_min * s,
        replay_ratio=replay_max * (1.0 - s),
        teacher_update_interval=max(1, round(k * (1.0 - s))),
    )


@dataclass(frozen=True)
class AdaptationConfig:
    """The ``adaptation:`` block of params.yaml.

    ``reference`` is the window the day is compared with: the retained window, or the last
    ``last_n_days`` online days. ``drift_threshold`` flags a day whose drift score is above it.
    ``statistical_threshold`` is the p-value below which a per-feature test counts as drift
    (distance-based tests keep their own thresholds, see ``monitoring.drift.compute_drift``).
    """

    enabled: bool = True
    reference: str = "retained"
    last_n_days: int = 7
    alpha_max: float = 0.7
    alpha_min: float = 0.3
    replay_max: float = 0.1
    drift_threshold: float = 0.5
    statistical_threshold: float = 0.05

    def __post_init__(self) -> None:
        if self.reference not in REFERENCES:
            raise ParamsError(
                f"adaptation.reference={self.reference!r} is invalid; use one of {list(REFERENCES)}"
            )
        if self.last_n_days < 1:
            raise ParamsError(
                f"adaptation.last_n_days={self.last_n_days} is invalid; use an integer >= 1"
            )
        if not 0.0 <= self.alpha_min <= self.alpha_max <= 1.0:
            raise ParamsError(
                f"adaptation.alpha_min={self.alpha_min}, alpha_max={self.alpha_max} are invalid; "
                "use 0 <= alpha_min <= alpha_max <= 1"
            )
        if not 0.0 <= self.replay_max <= 1.0:
            raise ParamsError(
                f"adaptation.replay_max={self.replay_max} is invalid; use a value in [0, 1]"
            )
        if not 0.0 <= self.drift_threshold <= 1.0:
            raise ParamsError(
                f"adaptation.drift_threshold={self.drift_threshold} is invalid; "
                "use a value in [0, 1]"
            )
        if not 0.0 < self.statistical_threshold < 1.0:
            raise ParamsError(
                f"adaptation.statistical_threshold={self.statistical_threshold} is invalid; "
                "use a value in (0, 1)"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | Any) -> AdaptationConfig:
        """Build from the params.yaml block: a dict or a pydantic model with the same fields."""
        if hasattr(values, "model_dump"):
            values = values.model_dump()
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParamsError(
                f"adaptation: unknown keys {unknown}; the known keys are {sorted(known)}"
            )
        return cls(**dict(values))

    def weights_for_day(
        self, s: float, *, alpha: float, replay_ratio: float, teacher_update_interval: int
    ) -> AdaptedWeights:
        """Return the day's weights: adapted from ``s`` if enabled, else the fixed ones given."""
        if not self.enabled:
            return AdaptedWeights(
                alpha=alpha,
                replay_ratio=replay_ratio,
                teacher_update_interval=teacher_update_interval,
            )
        weights = adapt_weights(
            s, self.alpha_max, self.alpha_min, self.replay_max, teacher_update_interval
        )
        logger.info(
            "adapted weights for drift score %.3f: alpha=%.3f replay_ratio=%.3f "
            "teacher_update_interval=%d",
            s,
            weights.alpha,
            weights.replay_ratio,
            weights.teacher_update_interval,
        )
        return weights

    def is_flagged(self, s: float) -> bool:
        """Tell whether a drift score is above ``drift_threshold`` (an alert for that day)."""
        return s > self.drift_threshold
