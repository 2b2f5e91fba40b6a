"""Synthetic click stream: determinism, partition format, Zipf law, click rate, new ids, drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydantic
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

from crossadapt.config.days import day_start_timestamp
from crossadapt.data.encoding import encode
from crossadapt.data.schema import fit_schema
from crossadapt.data.synthetic import (
    SyntheticConfig,
    _encode_ids,
    _encode_ranks,
    _rank_owners,
    generate_day,
    iter_days,
    synthetic_field_defs,
    zipf_head_share,
)


def small_config(**overrides) -> SyntheticConfig:
    settings = {
        "n_days": 4,
        "rows_per_day": 5000,
        "n_categorical": 4,
        "n_numeric": 2,
        "vocab_sizes": [20, 200, 2000, 100_000],
        "seed": 5,
    }
    return SyntheticConfig(**{**settings, **overrides})


def test_same_seed_same_day() -> None:
    config = small_config()
    later_first = generate_day(config, 2)
    generate_day(config, 0)

    pd.testing.assert_frame_equal(generate_day(config, 2), later_first)
    other_seed = generate_day(small_config(seed=6), 2)
    assert not other_seed["c3"].equals(later_first["c3"])
    assert not generate_day(config, 1)["c3"].equals(later_first["c3"])


def test_partition_format() -> None:
    config = small_config(start_date="2014-03-01", missing_share=0.1)
    frame = generate_day(config, 1)

    assert list(frame.columns) == ["timestamp", "label", "c0", "c1", "c2", "c3", "n0", "n1"]
    assert frame["timestamp"].dtype == np.int64
    assert frame["label"].dtype == np.int8
    assert set(frame["label"].unique()) <= {0, 1}
    assert all(pd.api.types.is_string_dtype(frame[f"c{i}"]) for i in range(4))
    assert frame["n0"].dtype == np.float64

    start = day_start_timestamp("2014-03-02")
    assert frame["timestamp"].is_monotonic_increasing
    assert frame["timestamp"].min() >= start
    assert frame["timestamp"].max() < start + 86_400
    assert frame["c3"].dropna().str.fullmatch(r"[0-9a-f]{12}").all()
    assert (frame["n0"].dropna() >= 0).all()


def test_missing_share() -> None:
    frame = generate_day(small_config(rows_per_day=20_000, missing_share=0.2), 0)

    for column in ("c0", "c3", "n1"):
        assert frame[column].isna().mean() == pytest.approx(0.2, abs=0.015)


def test_zipf_head_share() -> None:
    config = small_config(
        rows_per_day=100_000,
        n_categorical=1,
        n_numeric=0,
        vocab_sizes=50_000,
        zipf_exponent=1.2,
        daily_popularity_shift=0.0,
        new_id_share=0.0,
    )
    counts = generate_day(config, 0)["c0"].value_counts()

    for head in (1, 10, 100):
        expected = zipf_head_share(50_000, 1.2, head)
        assert counts.iloc[:head].sum() / 100_000 == pytest.approx(expected, abs=0.01)
    assert zipf_head_share(50_000, 1.2, 100) == pytest.approx((101**-0.2 - 1) / (50_001**-0.2 - 1))


def test_positive_rate_near_base_ctr() -> None:
    for base_ctr in (0.05, 0.3):
        config = small_config(rows_per_day=20_000, base_ctr=base_ctr)
        rates = [generate_day(config, day)["label"].mean() for day in range(3)]

        assert np.mean(rates) == pytest.approx(base_ctr, rel=0.15)


def test_new_ids_appear_over_days() -> None:
    # Small vocabularies: every vocabulary id is drawn on day 0, so later unseen ids are new.
    config = small_config(
        n_days=6, rows_per_day=20_000, vocab_sizes=30, new_id_share=0.1, daily_popularity_shift=0
    )
    seen = set(generate_day(config, 0)["c2"])
    unseen_shares = []
    for day in range(1, 6):
        values = generate_day(config, day)["c2"]
        unseen_shares.append(float((~values.isin(seen)).mean()))
        seen |= set(values)

    assert all(share > 0.0 for share in unseen_shares)
    assert np.mean(unseen_shares) == pytest.approx(0.1, abs=0.08)

    frozen = small_config(vocab_sizes=30, new_id_share=0.0, daily_popularity_shift=0.0)
    assert set(generate_day(frozen, 3)["c2"]) <= set(generate_day(frozen, 0)["c2"])


def test_popularity_shift_moves_ids() -> None:
    settings = {"rows_per_day": 20_000, "vocab_sizes": 1000, "new_id_share": 0.0}
    still = small_config(**settings, daily_popularity_shift=0.0)
    moving = small_config(**settings, daily_popularity_shift=0.5)

    def top_ids(config: SyntheticConfig, day: int, count: int) -> set[str]:
        return set(generate_day(config, day)["c2"].value_counts().index[:count])

    assert top_ids(still, 0, 5) == top_ids(still, 3, 5)
    assert len(top_ids(moving, 0, 20) & top_ids(moving, 3, 20)) < 12


def test_head_table_matches_direct_hashing() -> None:
    config = small_config(vocab_sizes=300_000, daily_popularity_shift=0.3, new_id_share=0.2)
    ranks = np.random.default_rng(0).integers(0, 300_000, size=300_000).astype(np.uint64)

    words, rows = _encode_ranks(config, 3, 300_000, ranks, 2)
    direct_words, direct_rows = _encode_ids(config, 3, _rank_owners(config, 3, 300_000, ranks, 2))

    np.testing.assert_array_equal(words, direct_words)
    np.testing.assert_array_equal(rows, direct_rows)


def one_hot_auc(train: list[pd.DataFrame], test: pd.DataFrame) -> float:
    columns = ["c0", "c1", "c2", "c3"]
    encoder = OneHotEncoder(handle_unknown="ignore")
    features = encoder.fit_transform(pd.concat(train)[columns].astype(object))
    model = LogisticRegression(C=0.5, max_iter=300)
    model.fit(features, pd.concat(train)["label"])
    scores = model.predict_proba(encoder.transform(test[columns].astype(object)))[:, 1]
    return float(roc_auc_score(test["label"], scores))


def test_drift_day_breaks_pre_drift_model() -> None:
    settings = {
        "n_days": 4,
        "rows_per_day": 20_000,
        "n_numeric": 0,
        "vocab_sizes": [50, 50, 100, 100],
        "daily_popularity_shift": 0.0,
        "new_id_share": 0.0,
        "interaction_strength": 0.5,
        "linear_strength": 2.0,
    }
    drifting = small_config(**settings, drift_day=3, drift_strength=1.0)
    stable = small_config(**settings)

    drifting_days = [generate_day(drifting, day) for day in range(4)]
    auc_before = one_hot_auc(drifting_days[:2], drifting_days[2])
    auc_after = one_hot_auc(drifting_days[:2], drifting_days[3])
    stable_days = [generate_day(stable, day) for day in range(4)]
    auc_stable = one_hot_auc(stable_days[:2], stable_days[3])

    assert auc_before > 0.7
    assert auc_after < auc_before - 0.15
    assert auc_stable == pytest.approx(auc_before, abs=0.03)


def test_iter_days_and_field_defs_fit_a_schema() -> None:
    config = small_config(n_days=2, rows_per_day=500, start_date="2014-01-05")
    days = list(iter_days(config))

    assert [day for day, _ in days] == ["2014-01-05", "2014-01-06"]
    defs = synthetic_field_defs(config)
    assert [d["source"] for d in defs] == [
        "user",
        "item",
        "context",
        "context",
        "context",
        "context",
    ]
    schema = fit_schema(
        [frame for _, frame in days],
        defs,
        min_count=1,
        fit_range=(days[0][0], days[1][0]),
        dataset="synthetic",
    )
    assert schema.field("c0").vocab_size == days[0][1]["c0"].nunique() + 2
    encoded = encode(days[1][1], schema)
    assert encoded.categorical.shape == (500, 4)
    assert encoded.numeric.shape == (500, 2)
    assert (encoded.categorical >= 2).all()  # every value was seen in the fit range


def test_invalid_config_rejected() -> None:
    with pytest.raises(pydantic.ValidationError, match="one size per field"):
        small_config(vocab_sizes=[10, 10])
    with pytest.raises(pydantic.ValidationError, match="drift would never happen"):
        small_config(drift_day=4)
    with pytest.raises(pydantic.ValidationError, match="2014-02-30"):
        small_config(start_date="2014-02-30")
    with pytest.raises(pydantic.ValidationError):
        small_config(unknown_key=1)
    with pytest.raises(ValueError, match="day_index 4"):
        generate_day(small_config(), 4)
