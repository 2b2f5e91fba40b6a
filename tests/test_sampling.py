"""Tests of strategic sampling of the retained window."""

from __future__ import annotations

import numpy as np
import pytest

from crossadapt.distill.sampling import SAMPLING_STRATEGIES, sample_indices, uncertainty_weights
from crossadapt.errors import DataError, ParamsError

N_ROWS = 20_000


@pytest.fixture(scope="module")
def window() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (10% positive), shuffled timestamps with ties, teacher probabilities."""
    rng = np.random.default_rng(0)
    labels = (rng.random(N_ROWS) < 0.1).astype(np.int8)
    timestamps = rng.permutation(N_ROWS // 2).repeat(2).astype(np.int64)
    logits = np.where(labels == 1, 1.0, -3.0) + rng.normal(0.0, 1.5, N_ROWS)
    teacher_probs = 1.0 / (1.0 + np.exp(-logits))
    return labels, timestamps, teacher_probs


def _time_rank(timestamps: np.ndarray) -> np.ndarray:
    rank = np.empty(timestamps.shape[0])
    rank[np.argsort(timestamps, kind="stable")] = np.arange(timestamps.shape[0])
    return rank


@pytest.mark.parametrize("strategy", SAMPLING_STRATEGIES)
def test_sample_size_and_time_order(strategy: str, window) -> None:
    labels, timestamps, teacher_probs = window
    indices = sample_indices(
        N_ROWS,
        labels,
        timestamps,
        strategy,
        0.1,
        seed=1,
        chunk_rows=3000,
        teacher_probs=teacher_probs,
    )
    assert indices.dtype == np.int64
    assert indices.shape == ((N_ROWS,) if strategy == "none" else (2000,))
    assert indices.min() >= 0
    assert indices.max() < N_ROWS
    assert np.all(np.diff(timestamps[indices]) >= 0)


@pytest.mark.parametrize("strategy", ["uniform", "recency", "uncertainty"])
def test_sample_without_replacement(strategy: str, window) -> None:
    labels, timestamps, teacher_probs = window
    indices = sample_indices(
        N_ROWS, labels, timestamps, strategy, 0.3, seed=2, teacher_probs=teacher_probs
    )
    assert np.unique(indices).size == indices.size


@pytest.mark.parametrize("strategy", ["balanced", "balanced_recency"])
@pytest.mark.parametrize("positive_rate", [0.5, 0.3])
def test_balanced_positive_rate(strategy: str, positive_rate: float, window) -> None:
    labels, timestamps, _ = window
    indices = sample_indices(
        N_ROWS,
        labels,
        timestamps,
        strategy,
        0.1,
        seed=3,
        positive_rate=positive_rate,
        chunk_rows=2500,
    )
    assert indices.size == 2000
    assert float(labels[indices].mean()) == pytest.approx(positive_rate, abs=1e-3)


def test_balanced_draws_with_replacement(window) -> None:
    # 2000 positives are drawn from about 2000 positive rows, so duplicates are certain.
    labels, timestamps, _ = window
    indices = sample_indices(N_ROWS, labels, timestamps, "balanced", 0.2, seed=4)
    assert np.unique(indices).size < indices.size


def test_balanced_share_follows_chunk_size(window) -> None:
    labels, timestamps, _ = window
    indices = sample_indices(N_ROWS, labels, timestamps, "balanced", 0.1, seed=5, chunk_rows=5000)
    rank = _time_rank(timestamps)[indices]
    per_chunk = np.bincount((rank // 5000).astype(int), minlength=4)
    assert per_chunk.tolist() == [500, 500, 500, 500]


def test_recency_newer_than_uniform(window) -> None:
    labels, timestamps, _ = window
    rank = _time_rank(timestamps)
    uniform = sample_indices(N_ROWS, labels, timestamps, "uniform", 0.1, seed=6)
    recency = sample_indices(N_ROWS, labels, timestamps, "recency", 0.1, seed=6)
    balanced = sample_indices(N_ROWS, labels, timestamps, "balanced", 0.1, seed=6)
    balanced_recency = sample_indices(N_ROWS, labels, timestamps, "balanced_recency", 0.1, seed=6)
    # Uniform ranks average (N - 1) / 2. Draws with weight r + 1 average about 2N / 3.
    assert rank[uniform].mean() == pytest.approx((N_ROWS - 1) / 2, rel=0.05)
    assert rank[recency].mean() > 0.6 * N_ROWS
    assert rank[balanced_recency].mean() > rank[balanced].mean() + 0.1 * N_ROWS


def test_uncertainty_prefers_uncertain_rows(window) -> None:
    labels, timestamps, teacher_probs = window
    uniform = sample_indices(N_ROWS, labels, timestamps, "uniform", 0.1, seed=7)
    uncertain = sample_indices(
        N_ROWS, labels, timestamps, "uncertainty", 0.1, seed=7, teacher_probs=teacher_probs
    )
    base_rate = labels.mean()
    distance = np.abs(teacher_probs - base_rate)
    assert distance[uncertain].mean() < distance[uniform].mean()
    disagrees = (teacher_probs > base_rate) != (labels == 1)
    assert disagrees[uncertain].mean() > disagrees[uniform].mean() + 0.1


def test_uncertainty_weights_formula() -> None:
    labels = np.array([0, 0, 0, 1, 1])  # base rate 0.4
    probs = np.array([0.4, 1.0, 0.0, 0.0, 1.0])
    weights = uncertainty_weights(probs, labels)
    # 1 - |p - b| / max(b, 1 - b), plus 1 where (p > b) != (y == 1), floored at 0.01.
    expected = [1.0, 0.0 + 1.0, 1.0 / 3.0, 1.0 / 3.0 + 1.0, 0.01]
    np.testing.assert_allclose(weights, expected)


@pytest.mark.parametrize("strategy", SAMPLING_STRATEGIES)
def test_sample_deterministic(strategy: str, window) -> None:
    labels, timestamps, teacher_probs = window
    arguments = (N_ROWS, labels, timestamps, strategy, 0.05)
    first = sample_indices(*arguments, seed=8, teacher_probs=teacher_probs)
    np.testing.assert_array_equal(
        first, sample_indices(*arguments, seed=8, teacher_probs=teacher_probs)
    )
    if strategy != "none":
        other = sample_indices(*arguments, seed=9, teacher_probs=teacher_probs)
        assert not np.array_equal(first, other)


def test_sample_without_timestamps_uses_row_order() -> None:
    labels = np.array([0, 1] * 50)
    indices = sample_indices(100, labels, None, "recency", 0.5, seed=0)
    assert np.all(np.diff(indices) > 0)
    assert indices.mean() > 55


def test_tiny_ratio_samples_one_row() -> None:
    indices = sample_indices(10, None, None, "uniform", 0.01, seed=0)
    assert indices.size == 1


@pytest.mark.parametrize("ratio", [0.0, -0.1, 1.5])
def test_rejects_ratio_outside_range(ratio: float) -> None:
    with pytest.raises(ParamsError, match=r"sampling\.ratio"):
        sample_indices(10, np.zeros(10), None, "uniform", ratio, seed=0)


def test_rejects_unknown_strategy() -> None:
    with pytest.raises(ParamsError, match="'stratified'"):
        sample_indices(10, np.zeros(10), None, "stratified", 0.5, seed=0)  # type: ignore[arg-type]


def test_rejects_empty_window() -> None:
    with pytest.raises(DataError, match="no rows"):
        sample_indices(0, np.zeros(0), np.zeros(0), "uniform", 0.5, seed=0)


@pytest.mark.parametrize("strategy", ["balanced", "balanced_recency"])
def test_balanced_rejects_single_class(strategy: str) -> None:
    with pytest.raises(DataError, match=r"label 0.*sampling\.strategy=uniform"):
        sample_indices(50, np.zeros(50), None, strategy, 0.5, seed=0)


def test_uncertainty_requires_teacher_probs() -> None:
    with pytest.raises(ParamsError, match="teacher_probs"):
        sample_indices(10, np.array([0, 1] * 5), None, "uncertainty", 0.5, seed=0)


def test_rejects_non_binary_labels() -> None:
    with pytest.raises(DataError, match="0 or 1"):
        sample_indices(3, np.array([0, 1, 2]), None, "balanced", 0.5, seed=0)


def test_rejects_length_mismatch() -> None:
    with pytest.raises(DataError, match="timestamps"):
        sample_indices(4, np.array([0, 1, 0, 1]), np.arange(3), "uniform", 0.5, seed=0)


def test_rejects_probabilities_outside_unit_interval() -> None:
    with pytest.raises(DataError, match="logits"):
        sample_indices(
            4,
            np.array([0, 1, 0, 1]),
            None,
            "uncertainty",
            0.5,
            seed=0,
            teacher_probs=np.array([0.1, 2.0, 0.3, 0.4]),
        )


def test_single_class_chunk_gives_share_to_other_class() -> None:
    # First chunk has no positives; its whole share comes from its negatives.
    labels = np.array([0] * 100 + [0, 1] * 50)
    indices = sample_indices(200, labels, None, "balanced", 0.5, seed=0, chunk_rows=100)
    assert np.sum(indices < 100) == 50
    assert np.all(labels[indices[indices < 100]] == 0)
    assert labels[indices[indices >= 100]].mean() == pytest.approx(0.5, abs=0.02)
