"""Click-through-rate metrics computed on a whole evaluation set: AUC, log loss, bias, NE.

A metric that the set leaves undefined (empty set, a single class) is NaN with a logged
warning; malformed input (lengths differ, labels not 0/1, NaN predictions) raises ValueError.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

logger = logging.getLogger(__name__)

DEFAULT_EPS = 1e-7


def _as_labels_and_probabilities(y: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(y, dtype=np.float64).reshape(-1)
    probabilities = np.asarray(p, dtype=np.float64).reshape(-1)
    if labels.shape != probabilities.shape:
        raise ValueError(
            f"labels and predictions differ in length: {labels.size} labels, "
            f"{probabilities.size} predictions"
        )

    not_binary = ~np.isin(labels, (0.0, 1.0))
    if not_binary.any():
        bad = labels[not_binary][0]
        raise ValueError(
            f"labels must be 0 or 1: found {int(not_binary.sum())} other values (first: {bad})"
        )

    not_finite = ~np.isfinite(probabilities)
    if not_finite.any():
        raise ValueError(
            f"predictions contain {int(not_finite.sum())} NaN or infinite values "
            f"out of {probabilities.size}: the model diverged or its output is not a probability"
        )
    return labels, probabilities


def auc(y: ArrayLike, p: ArrayLike) -> float:
    """Compute the ROC AUC from ranks, with tied scores given their average rank.

    ``AUC = (sum of the ranks of the positives - P (P + 1) / 2) / (P N)`` for P positives
    and N negatives (Mann-Whitney U statistic divided by P N; Hanley and McNeil, Radiology
    1982). A tie between a positive and a negative counts one half. Returns NaN with a
    warning when the set is empty or has a single class.
    """
    labels, scores = _as_labels_and_probabilities(y, p)
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        logger.warning(
            "AUC is undefined on a set with a single class (%d rows, %d positives): returning NaN",
            labels.size,
            positives,
        )
        return math.nan

    # Average rank of each distinct score: a group of c ties ending at rank e gets e - (c - 1) / 2.
    _, group_of_row, group_sizes = np.unique(scores, return_inverse=True, return_counts=True)
    group_end_rank = np.cumsum(group_sizes).astype(np.float64)
    group_mean_rank = group_end_rank - (group_sizes - 1) / 2.0
    ranks = group_mean_rank[group_of_row]

    positive_rank_sum = float(ranks[labels == 1.0].sum())
    return (positive_rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def log_loss(y: ArrayLike, p: ArrayLike, eps: float = DEFAULT_EPS) -> float:
    """Compute the mean binary cross-entropy with predictions clipped to ``[eps, 1 - eps]``.

    ``LogLoss = -mean(y log p + (1 - y) log(1 - p))`` in nats. Returns NaN with a warning
    on an empty set.
    """
    labels, probabilities = _as_labels_and_probabilities(y, p)
    if labels.size == 0:
        logger.warning("log loss is undefined on an empty set: returning NaN")
        return math.nan

    clipped = np.clip(probabilities, eps, 1.0 - eps)
    losses = labels * np.log(clipped) + (1.0 - labels) * np.log1p(-clipped)
    return float(-losses.mean())


def prediction_bias(y: ArrayLike, p: ArrayLike) -> float:
    """Compute the relative calibration error ``mean(p) / mean(y) - 1``.

    0 means calibrated on average, +0.1 means 10% more predicted clicks than observed.
    Returns NaN with a warning when the set has no positives (``mean(y) = 0``).
    """
    labels, probabilities = _as_labels_and_probabilities(y, p)
    if labels.size == 0 or labels.sum() == 0:
        logger.warning(
            "prediction bias is undefined without positives (%d rows): returning NaN",
            labels.size,
        )
        return math.nan
    return float(probabilities.mean() / labels.mean() - 1.0)


def binary_entropy(base_rate: float) -> float:
    """Compute ``H(b) = -(b log b + (1 - b) log(1 - b))`` in nats; ``H(0) = H(1) = 0``."""
    if base_rate <= 0.0 or base_rate >= 1.0:
        return 0.0
    return -(base_rate * math.log(base_rate) + (1.0 - base_rate) * math.log1p(-base_rate))


def normalized_entropy(y: ArrayLike, p: ArrayLike, eps: float = DEFAULT_EPS) -> float:
    """Compute the normalized entropy ``NE = LogLoss / H(mean(y))``.

    The log loss divided by the entropy of the background click rate, so that a model
    which always predicts the base rate scores 1 and lower is better (He et al.,
    "Practical Lessons from Predicting Clicks on Ads at Facebook", ADKDD 2014).
    Returns NaN with a warning when the set is empty or has a single class.
    """
    labels, probabilities = _as_labels_and_probabilities(y, p)
    base_rate = float(labels.mean()) if labels.size else math.nan
    entropy = binary_entropy(base_rate) if labels.size else 0.0
    if entropy == 0.0:
        logger.warning(
            "normalized entropy is undefined on a set with a single class "
            "(%d rows, base rate %s): returning NaN",
            labels.size,
            base_rate,
        )
        return math.nan
    return log_loss(labels, probabilities, eps=eps) / entropy


def evaluate_predictions(y: ArrayLike, p: ArrayLike, eps: float = DEFAULT_EPS) -> dict[str, Any]:
    """Compute every metric on the whole set.

    Returns ``{"auc", "log_loss", "prediction_bias", "normalized_entropy", "rows",
    "positives"}``; the undefined metrics of a set are NaN (see each function).
    """
    labels, probabilities = _as_labels_and_probabilities(y, p)
    return {
        "auc": auc(labels, probabilities),
        "log_loss": log_loss(labels, probabilities, eps=eps),
        "prediction_bias": prediction_bias(labels, probabilities),
        "normalized_entropy": normalized_entropy(labels, probabilities, eps=eps),
        "rows": int(labels.size),
        "positives": int(labels.sum()),
    }
