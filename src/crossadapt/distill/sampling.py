"""Strategic sampling of the retained window: which rows the offline distillation trains on.

Returns row indices into the retained window, in time order.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

import numpy as np

from crossadapt.errors import DataError, ParamsError

logger = logging.getLogger(__name__)

SamplingStrategy = Literal[
    "uniform", "balanced", "recency", "balanced_recency", "uncertainty", "none"
]
SAMPLING_STRATEGIES: tuple[str, ...] = (
    "uniform",
    "balanced",
    "recency",
    "balanced_recency",
    "uncertainty",
    "none",
)
_BALANCED_STRATEGIES = ("balanced", "balanced_recency")

# Extra uncertainty weight of a row whose label contradicts the teacher (see uncertainty_weights).
DISAGREEMENT_BONUS = 1.0
# Smallest uncertainty weight, so that confident and correct rows keep a small chance.
MIN_UNCERTAINTY_WEIGHT = 0.01


def sample_indices(
    n_rows: int,
    labels: np.ndarray | None,
    timestamps: np.ndarray | None,
    strategy: SamplingStrategy,
    ratio: float,
    seed: int,
    positive_rate: float = 0.5,
    chunk_rows: int = 100_000,
    teacher_probs: np.ndarray | None = None,
) -> np.ndarray:
    """Return the int64 indices of the sampled rows, sorted by timestamp (then row index).

    The sample has ``max(1, round(ratio * n_rows))`` rows, except with ``none``.

    - ``uniform``: rows drawn without replacement, all equally likely.
    - ``balanced`` (CrossAdapt reference default, github.com/wuyucheng2002/CrossAdapt):
      the rows, in time order, are cut into chunks of ``chunk_rows``. Each chunk gets a
      share of the sample proportional to its size. A fraction ``positive_rate`` of that
      share is drawn from the chunk's positives and the rest from its negatives, with
      replacement. A chunk that lacks one class gives its whole share to the other class.
    - ``recency``: rows drawn without replacement with weight ``w_i = r_i + 1``, where
      ``r_i`` is the row's time rank (0 = oldest), so newer rows are drawn more often.
    - ``balanced_recency``: ``balanced`` with the same time weights: chunk shares are
      proportional to the chunk's total weight and draws inside a class follow ``w_i``.
    - ``uncertainty`` (ours, not in the reference): rows drawn without replacement with
      the weights of :func:`uncertainty_weights`; needs ``teacher_probs``.
    - ``none``: every row.

    Weighted draws without replacement use exponential keys ``k_i = Exp(1) / w_i`` and keep
    the smallest (Efraimidis and Spirakis, 2006), which is one pass over the rows. Rows with
    equal timestamps are ranked by row index. Without ``timestamps`` the row order is the
    time order. ``labels`` may be None for ``uniform``, ``recency`` and ``none``.

    Raises ParamsError for an unknown strategy, ``ratio`` outside (0, 1], ``positive_rate``
    outside (0, 1), ``chunk_rows < 1`` or ``uncertainty`` without ``teacher_probs``.
    Raises DataError for an empty window, arrays of the wrong length, labels other than 0/1,
    or a single-class window with a balanced strategy.
    """
    started = time.perf_counter()
    _validate_params(strategy, ratio, positive_rate, chunk_rows)
    if n_rows < 1:
        raise DataError("the retained window has no rows to sample; check split.retained_start")
    labels_array = _validate_labels(labels, n_rows, strategy)
    time_order = _time_order(timestamps, n_rows)
    rng = np.random.default_rng(seed)
    n_target = max(1, round(ratio * n_rows))
    logger.info(
        "sampling %d of %d retained rows, strategy %s, seed %d", n_target, n_rows, strategy, seed
    )

    if strategy == "none":
        picked = np.arange(n_rows, dtype=np.int64)
    elif strategy == "uniform":
        picked = rng.choice(n_rows, size=n_target, replace=False)
    elif strategy == "recency":
        picked = _weighted_without_replacement(_recency_weights(time_order), n_target, rng)
    elif strategy == "uncertainty":
        if teacher_probs is None:
            raise ParamsError(
                "sampling.strategy=uncertainty needs the teacher's probabilities on the "
                "retained window (teacher_probs); pass them or pick another strategy"
            )
        assert labels_array is not None  # _validate_labels requires labels for this strategy
        weights = uncertainty_weights(teacher_probs, labels_array)
        picked = _weighted_without_replacement(weights, n_target, rng)
    else:
        assert labels_array is not None
        weights = (
            _recency_weights(time_order) if strategy == "balanced_recency" else np.ones(n_rows)
        )
        picked = _balanced_by_chunk(
            time_order, labels_array, weights, n_target, positive_rate, chunk_rows, rng
        )

    indices = _sort_by_time(np.asarray(picked, dtype=np.int64), timestamps)
    _log_sample(indices, labels_array, strategy, started)
    return indices


def uncertainty_weights(teacher_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Return the per-row sampling weights of the ``uncertainty`` strategy (ours).

    With ``b`` the window's base rate (mean label) and ``p_i`` the teacher's probability:

    ``w_i = max(0.01, 1 - |p_i - b| / max(b, 1 - b) + 1.0 * [ (p_i > b) != (y_i = 1) ])``

    The first term is 1 where the teacher is no more informative than the base rate and
    falls to 0 at its most confident. The bonus marks rows whose label falls on the other
    side of the base rate from the teacher's prediction. Measuring both against ``b``
    rather than 0.5 keeps the rule meaningful at CTR base rates of a few percent.
    """
    probs = np.asarray(teacher_probs, dtype=np.float64)
    label_values = np.asarray(labels, dtype=np.float64)
    if probs.shape != label_values.shape:
        raise DataError(
            f"teacher_probs has shape {probs.shape} but labels have shape "
            f"{label_values.shape}; compute teacher probabilities on the same rows"
        )
    if not np.all(np.isfinite(probs)) or np.any((probs < 0.0) | (probs > 1.0)):
        raise DataError(
            "teacher_probs must be finite probabilities in [0, 1]; pass sigmoid(logits), not logits"
        )

    base_rate = float(label_values.mean())
    closeness = 1.0 - np.abs(probs - base_rate) / max(base_rate, 1.0 - base_rate)
    disagrees = (probs > base_rate) != (label_values == 1.0)
    weights = closeness + DISAGREEMENT_BONUS * disagrees
    return np.maximum(weights, MIN_UNCERTAINTY_WEIGHT)


def _validate_params(strategy: str, ratio: float, positive_rate: float, chunk_rows: int) -> None:
    if strategy not in SAMPLING_STRATEGIES:
        raise ParamsError(
            f"sampling.strategy must be one of {list(SAMPLING_STRATEGIES)}, got {strategy!r}"
        )
    if not 0.0 < ratio <= 1.0:
        raise ParamsError(f"sampling.ratio must be in (0, 1], got {ratio}")
    if not 0.0 < positive_rate < 1.0:
        raise ParamsError(f"sampling.positive_rate must be in (0, 1), got {positive_rate}")
    if chunk_rows < 1:
        raise ParamsError(f"sampling.chunk_rows must be >= 1, got {chunk_rows}")


def _validate_labels(labels: np.ndarray | None, n_rows: int, strategy: str) -> np.ndarray | None:
    needs_labels = strategy in (*_BALANCED_STRATEGIES, "uncertainty")
    if labels is None:
        if needs_labels:
            raise DataError(f"sampling.strategy={strategy} needs the labels of the retained rows")
        return None

    values = np.asarray(labels)
    if values.shape != (n_rows,):
        raise DataError(f"labels have shape {values.shape}, expected ({n_rows},) for {n_rows} rows")
    if not np.all((values == 0) | (values == 1)):
        bad = values[~((values == 0) | (values == 1))][0]
        raise DataError(f"labels must be 0 or 1, found {bad!r}; binarise the label column")

    if strategy in _BALANCED_STRATEGIES:
        positives = int(np.count_nonzero(values == 1))
        if positives in (0, n_rows):
            found = 1 if positives else 0
            raise DataError(
                f"sampling.strategy={strategy} needs both labels, but all {n_rows} retained rows "
                f"have label {found}; use sampling.strategy=uniform or widen the retained window"
            )
    return values


def _time_order(timestamps: np.ndarray | None, n_rows: int) -> np.ndarray:
    # Row indices from oldest to newest; ties keep row order.
    if timestamps is None:
        return np.arange(n_rows)
    times = np.asarray(timestamps)
    if times.shape != (n_rows,):
        raise DataError(
            f"timestamps have shape {times.shape}, expected ({n_rows},) for {n_rows} rows"
        )
    return np.argsort(times, kind="stable")


def _recency_weights(time_order: np.ndarray) -> np.ndarray:
    # w_i = time rank of row i + 1.
    weights = np.empty(time_order.shape[0])
    weights[time_order] = np.arange(1, time_order.shape[0] + 1)
    return weights


def _weighted_without_replacement(
    weights: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    if size >= weights.shape[0]:
        return np.arange(weights.shape[0])
    keys = rng.exponential(size=weights.shape[0]) / weights
    return np.argpartition(keys, size - 1)[:size]


def _balanced_by_chunk(
    time_order: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    n_target: int,
    positive_rate: float,
    chunk_rows: int,
    rng: np.random.Generator,
) -> np.ndarray:
    # Cumulative rounding gives each chunk its share so that the shares add up to exactly
    # n_target rows and round(positive_rate * n_target) positives.
    cumulative_weight = np.concatenate([[0.0], np.cumsum(weights[time_order])])
    total_weight = cumulative_weight[-1]
    picked: list[np.ndarray] = []
    single_class_chunks = 0
    drawn_before = 0

    for start in range(0, time_order.shape[0], chunk_rows):
        rows = time_order[start : start + chunk_rows]
        end = start + rows.shape[0]
        drawn_after = round(n_target * cumulative_weight[end] / total_weight)
        share = drawn_after - drawn_before
        positive_share = round(positive_rate * drawn_after) - round(positive_rate * drawn_before)
        drawn_before = drawn_after
        if share == 0:
            continue

        is_positive = labels[rows] == 1
        positives, negatives = rows[is_positive], rows[~is_positive]
        if positives.size == 0 or negatives.size == 0:
            single_class_chunks += 1
            picked.append(_draw_with_replacement(rows, weights, share, rng))
            continue
        picked.append(_draw_with_replacement(positives, weights, positive_share, rng))
        picked.append(_draw_with_replacement(negatives, weights, share - positive_share, rng))

    if single_class_chunks:
        logger.warning(
            "%d chunks of %d rows had a single label; their share was drawn from that label, "
            "so the sample's positive rate differs from %.3f",
            single_class_chunks,
            chunk_rows,
            positive_rate,
        )
    return np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)


def _draw_with_replacement(
    rows: np.ndarray, weights: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    if size <= 0:
        return np.empty(0, dtype=np.int64)
    row_weights = weights[rows]
    return rng.choice(rows, size=size, replace=True, p=row_weights / row_weights.sum())


def _sort_by_time(indices: np.ndarray, timestamps: np.ndarray | None) -> np.ndarray:
    if timestamps is None:
        return np.sort(indices, kind="stable")
    times = np.asarray(timestamps)[indices]
    return indices[np.lexsort((indices, times))]


def _log_sample(
    indices: np.ndarray, labels: np.ndarray | None, strategy: str, started: float
) -> None:
    positive_rate = float(labels[indices].mean()) if labels is not None and indices.size else None
    logger.info(
        "sampled %d rows (%d distinct) with strategy %s, positive rate %s, in %.2f s",
        indices.size,
        np.unique(indices).size,
        strategy,
        "n/a" if positive_rate is None else f"{positive_rate:.4f}",
        time.perf_counter() - started,
    )
