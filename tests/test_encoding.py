"""Encoding of partition rows: OOV, PAD, buckets, log values, multi-valued padding, caching."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crossadapt.config.days import day_start_timestamp
from crossadapt.data.encoding import EncodedFrame, encode, oov_rates
from crossadapt.data.schema import FeatureSchema, FieldSpec, fit_schema
from crossadapt.errors import DataError, SchemaError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DAY = "2014-01-01"


def toy_schema() -> FeatureSchema:
    fields = (
        FieldSpec(name="site", type="categorical", source="context", vocabulary=("b", "a")),
        FieldSpec(
            name="price",
            type="numeric",
            source="item",
            fill_value=0.0,
            transform="bucket",
            boundaries=(0.0, 1.0),
        ),
        FieldSpec(
            name="genres",
            type="multi_valued",
            source="item",
            vocabulary=("x", "y"),
            max_len=2,
            separator="|",
        ),
        FieldSpec(
            name="tags",
            type="multi_valued",
            source="item",
            vocabulary=("t",),
            max_len=3,
            separator="|",
        ),
        FieldSpec(name="count", type="numeric", source="context", fill_value=2.0, transform="log"),
    )
    return FeatureSchema(dataset="toy", fit_range=(DAY, DAY), fields=fields)


def toy_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": day_start_timestamp(DAY) + np.arange(6, dtype=np.int64),
            "label": np.array([0, 1, 0, 1, 0, 0], dtype=np.int8),
            "site": ["b", "a", "zz", None, "", "a"],
            "price": [-1.0, 0.0, 0.5, 1.0, 2.0, None],
            "genres": ["x|y|x", "", None, "zz|y", "y", "x||y"],
            "tags": ["t|t|t|t", "t", None, None, "u", ""],
            "count": [0.0, 9.0, -9.0, None, 1.0, 0.5],
        }
    )


def test_categorical_rows_oov_and_null() -> None:
    encoded = encode(toy_frame(), toy_schema())

    # Vocabulary ("b", "a"): b -> 2, a -> 3; unseen, null and "" -> OOV (1).
    np.testing.assert_array_equal(encoded.categorical[:, 0], [2, 3, 1, 1, 1, 3])
    assert encoded.categorical.dtype == np.int64


def test_bucket_boundaries_inclusive_upper() -> None:
    encoded = encode(toy_frame(), toy_schema())

    # Boundaries (0, 1): x <= 0 -> bucket 0 (row 2), 0 < x <= 1 -> row 3, x > 1 -> row 4.
    np.testing.assert_array_equal(encoded.categorical[:, 1], [2, 2, 3, 3, 4, 1])


def test_log_values_with_fill() -> None:
    encoded = encode(toy_frame(), toy_schema())

    expected = [0.0, math.log(10.0), -math.log(10.0), math.log(3.0), math.log(2.0), math.log(1.5)]
    np.testing.assert_allclose(encoded.numeric[:, 0], expected, rtol=1e-6)
    assert encoded.numeric.dtype == np.float32


def test_multi_valued_truncation_and_padding() -> None:
    encoded = encode(toy_frame(), toy_schema())

    assert encoded.multi_valued.shape == (6, 2, 3)
    genres = encoded.multi_valued[:, 0, :]
    # x -> 2, y -> 3; max_len 2 truncates "x|y|x"; the third slot is padding up to L = 3.
    np.testing.assert_array_equal(
        genres, [[2, 3, 0], [0, 0, 0], [0, 0, 0], [1, 3, 0], [3, 0, 0], [2, 3, 0]]
    )
    tags = encoded.multi_valued[:, 1, :]
    np.testing.assert_array_equal(
        tags, [[2, 2, 2], [2, 0, 0], [0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0]]
    )


def test_label_and_timestamp() -> None:
    frame = toy_frame()
    encoded = encode(frame, toy_schema())

    np.testing.assert_array_equal(encoded.label, [0, 1, 0, 1, 0, 0])
    assert encoded.label.dtype == np.float32
    np.testing.assert_array_equal(encoded.timestamp, frame["timestamp"].to_numpy())
    assert len(encoded) == 6


def test_oov_rates_hand_computed() -> None:
    rates = oov_rates(toy_frame(), toy_schema())

    # site: non-null b, a, zz, a -> 1 of 4; genres tokens x y x zz y y x y -> 1 of 8.
    # tags tokens t t t t, t, u -> 1 of 6.
    assert rates == pytest.approx({"site": 0.25, "genres": 0.125, "tags": 1 / 6})


def test_missing_column_rejected() -> None:
    frame = toy_frame().drop(columns=["genres"])

    with pytest.raises(SchemaError, match=r"lacks columns \['genres'\]"):
        encode(frame, toy_schema())


def test_invalid_label_rejected() -> None:
    frame = toy_frame()
    frame["label"] = [0, 1, 2, 1, 0, 0]

    with pytest.raises(DataError, match="'label' has 1 values that are not 0 or 1"):
        encode(frame, toy_schema())


def test_non_numeric_column_rejected() -> None:
    frame = toy_frame()
    frame["count"] = ["1", "x", None, None, None, None]

    with pytest.raises(DataError, match="'count' must be numeric"):
        encode(frame, toy_schema())


def test_integer_categorical_matches_string_form() -> None:
    frame = toy_frame()
    schema = toy_schema().with_vocabulary("site", ["7", "8"])
    frame["site"] = pd.array([7, 8, 9, None, 7, 8], dtype="Int64")

    encoded = encode(frame, schema)

    np.testing.assert_array_equal(encoded.categorical[:, 0], [2, 3, 1, 1, 2, 3])


def test_take_and_concat() -> None:
    encoded = encode(toy_frame(), toy_schema())
    part = encoded.take([5, 0, 0])

    np.testing.assert_array_equal(part.categorical[:, 0], [3, 2, 2])
    np.testing.assert_array_equal(part.timestamp, encoded.timestamp[[5, 0, 0]])
    both = EncodedFrame.concat([encoded, part])
    assert len(both) == 9
    np.testing.assert_array_equal(both.multi_valued[6:], part.multi_valued)

    other = toy_schema().with_embedding_dims(4)
    narrow = FeatureSchema(dataset="toy", fit_range=(DAY, DAY), fields=other.fields[:1])
    with pytest.raises(SchemaError, match="different layouts"):
        EncodedFrame.concat([encoded, encode(toy_frame(), narrow)])


def test_npz_round_trip_and_hash_check(tmp_path) -> None:
    schema = toy_schema()
    encoded = encode(toy_frame(), schema)
    path = encoded.save_npz(tmp_path / "day.npz", schema_hash=schema.hash())

    loaded = EncodedFrame.load_npz(path, expected_schema_hash=schema.hash())
    for name in ("categorical", "multi_valued", "numeric", "label", "timestamp"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(encoded, name))
        assert getattr(loaded, name).dtype == getattr(encoded, name).dtype

    with pytest.raises(SchemaError, match=r"day\.npz was written with schema hash"):
        EncodedFrame.load_npz(path, expected_schema_hash="0" * 64)

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match=r"truncated\.npz is truncated"):
        EncodedFrame.load_npz(truncated)
    with pytest.raises(DataError, match=r"absent\.npz not found"):
        EncodedFrame.load_npz(tmp_path / "absent.npz")


def test_criteo_sample_fit_and_encode() -> None:
    raw = pd.read_csv(SHARED_DATA / "criteo_sample" / "criteo_sample_deepctr.csv")
    raw.insert(0, "timestamp", day_start_timestamp(DAY) + np.arange(len(raw), dtype=np.int64))
    categorical = [c for c in raw.columns if c.startswith("C")]
    numeric = [c for c in raw.columns if c.startswith("I")]
    defs = [{"name": c, "type": "categorical", "source": "context"} for c in categorical]
    defs += [{"name": c, "type": "numeric", "source": "context"} for c in numeric]

    fit_part, later_part = raw.iloc[:150], raw.iloc[150:]
    schema = fit_schema([fit_part], defs, min_count=1, fit_range=(DAY, DAY), dataset="criteo")
    encoded = encode(raw, schema)

    assert encoded.categorical.shape == (len(raw), 26)
    assert encoded.numeric.shape == (len(raw), 13)
    assert encoded.multi_valued.shape == (len(raw), 0, 0)
    assert not np.isnan(encoded.numeric).any()
    assert all(rate == 0.0 for rate in oov_rates(fit_part, schema).values())
    later_rates = oov_rates(later_part, schema)
    assert later_rates["C4"] > 0.0  # a high-cardinality field has unseen ids
    assert later_rates["C9"] == 0.0  # a low-cardinality field has none


def test_encode_range_equals_encoding_each_day(tmp_path: Path) -> None:
    from crossadapt.data.dataset import encode_range
    from crossadapt.data.ingest import write_generated_days
    from crossadapt.data.partitions import read_day
    from crossadapt.data.synthetic import SyntheticConfig, iter_days, synthetic_field_defs

    config = SyntheticConfig(n_days=3, rows_per_day=300, n_categorical=3, n_numeric=2, seed=1)
    write_generated_days(iter_days(config), tmp_path, "synthetic")
    days = [config.day(index) for index in range(3)]
    frames = [read_day(tmp_path, "synthetic", day) for day in days]
    schema = fit_schema(
        frames[:1], synthetic_field_defs(config), 1, (days[0], days[0]), "synthetic"
    ).with_embedding_dims(4)

    encoded = encode_range(tmp_path, "synthetic", days[0], days[-1], schema)
    expected = EncodedFrame.concat([encode(frame, schema) for frame in frames])

    assert len(encoded) == 900
    for name in ("categorical", "multi_valued", "numeric", "label", "timestamp"):
        np.testing.assert_array_equal(getattr(encoded, name), getattr(expected, name))
