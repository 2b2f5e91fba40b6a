"""Feature schema: vocabulary fitting, bucket boundaries, JSON round trip and hash."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from crossadapt.config.days import day_start_timestamp
from crossadapt.data.schema import (
    FeatureSchema,
    TokenCounter,
    ValueCounter,
    fit_schema,
    ordered_vocabulary,
)
from crossadapt.errors import DataError, ParamsError, SchemaError

DAY = "2014-01-01"
FIT_RANGE = (DAY, "2014-01-02")


def frame_of(**columns: list) -> pd.DataFrame:
    rows = len(next(iter(columns.values())))
    timestamp = day_start_timestamp(DAY) + np.arange(rows, dtype=np.int64) % 86_400
    label = np.zeros(rows, dtype=np.int8)
    return pd.DataFrame({"timestamp": timestamp, "label": label, **columns})


CAT = {"name": "site", "type": "categorical", "source": "context"}


def test_vocabulary_orders_by_count_then_token() -> None:
    frame = frame_of(site=["b", "a", "b", "c", "a", "b", None, "", "d"])
    schema = fit_schema([frame], [CAT], min_count=1, fit_range=FIT_RANGE, dataset="toy")
    field = schema.field("site")

    assert field.vocabulary == ("b", "a", "c", "d")
    assert field.vocab_size == 6
    assert field.pad_index == 0
    assert field.oov_index == 1


def test_min_count_drops_rare_tokens() -> None:
    frame = frame_of(site=["b", "a", "b", "c", "a", "b"], user=["u1", "u2", "u2", "u3", "u3", "u3"])
    user = {"name": "user", "type": "categorical", "source": "user", "min_count": 3}
    schema = fit_schema([frame], [CAT, user], min_count=2, fit_range=FIT_RANGE, dataset="toy")

    assert schema.field("site").vocabulary == ("b", "a")
    assert schema.field("site").min_count == 2
    assert schema.field("user").vocabulary == ("u3",)
    assert schema.field("user").min_count == 3


def test_vocabulary_independent_of_row_order() -> None:
    rng = np.random.default_rng(3)
    tokens = [f"t{i}" for i in rng.zipf(1.5, size=2000) % 300]
    frame = frame_of(site=tokens)
    shuffled = frame.sample(frac=1.0, random_state=11).reset_index(drop=True)
    chunks = [shuffled.iloc[start : start + 333] for start in range(0, len(shuffled), 333)]

    whole = fit_schema([frame], [CAT], min_count=2, fit_range=FIT_RANGE, dataset="toy")
    chunked = fit_schema(chunks, [CAT], min_count=2, fit_range=FIT_RANGE, dataset="toy")

    assert whole.to_dict() == chunked.to_dict()
    assert whole.hash() == chunked.hash()


def test_token_counter_merges_many_chunks() -> None:
    counter = TokenCounter(merge_rows=5)
    for start in range(0, 90, 10):
        counter.update(np.array([f"t{i % 70}" for i in range(start, start + 10)], dtype=object))
    counts = counter.counts()

    # t0..t19 appear twice (i and i + 70), t20..t69 once.
    assert int(counts.sum()) == 90
    assert ordered_vocabulary(counts, min_count=2) == sorted(f"t{i}" for i in range(20))
    assert len(ordered_vocabulary(counts, min_count=1)) == 70


def test_rows_outside_fit_range_rejected() -> None:
    frame = frame_of(site=["a", "b"])
    frame.loc[1, "timestamp"] = day_start_timestamp("2014-01-03")

    with pytest.raises(DataError, match=r"outside the fit range 2014-01-01\.\.2014-01-02"):
        fit_schema([frame], [CAT], min_count=1, fit_range=FIT_RANGE, dataset="toy")


def test_fit_range_stored_and_validated() -> None:
    schema = fit_schema(
        [frame_of(site=["a"])], [CAT], min_count=1, fit_range=FIT_RANGE, dataset="toy"
    )
    assert schema.fit_range == FIT_RANGE
    assert schema.dataset == "toy"

    with pytest.raises(ParamsError, match="ends before it starts"):
        fit_schema([frame_of(site=["a"])], [CAT], 1, ("2014-01-02", DAY), "toy")
    with pytest.raises(ParamsError, match="2014-13-01"):
        fit_schema([frame_of(site=["a"])], [CAT], 1, (DAY, "2014-13-01"), "toy")


def test_empty_fit_range_rejected() -> None:
    with pytest.raises(DataError, match="no rows"):
        fit_schema([], [CAT], min_count=1, fit_range=FIT_RANGE, dataset="toy")


def test_label_as_feature_rejected() -> None:
    frame = frame_of(site=["a"])
    label_field = {"name": "Label", "type": "numeric", "source": "context"}

    with pytest.raises(SchemaError, match="label"):
        fit_schema([frame], [CAT, label_field], min_count=1, fit_range=FIT_RANGE, dataset="toy")


def test_missing_column_named() -> None:
    with pytest.raises(DataError, match=r"lacks columns \['site'\]"):
        fit_schema([frame_of(other=["a"])], [CAT], min_count=1, fit_range=FIT_RANGE, dataset="toy")


def test_bucket_boundaries_hand_computed() -> None:
    # Sorted values: 0 x6, 1, 1, 2, 3 -> quantiles 0.25, 0.5, 0.75 are 0, 0, 1.
    values = [0.0] * 6 + [1.0, 1.0, 2.0, 3.0, None]
    frame = frame_of(price=values)
    price = {
        "name": "price",
        "type": "numeric",
        "source": "item",
        "transform": "bucket",
        "n_buckets": 4,
    }
    schema = fit_schema([frame], [price], min_count=1, fit_range=FIT_RANGE, dataset="toy")
    field = schema.field("price")

    assert field.boundaries == (0.0, 1.0)
    assert field.vocab_size == 5
    assert field.n_buckets == 4


def test_bucket_boundaries_drop_maximum() -> None:
    counter = ValueCounter()
    counter.update(np.array([1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, np.inf, np.nan]))

    assert counter.quantile_boundaries(2) == []
    assert counter.quantile_boundaries(8) == [1.0, 2.0]


def test_bucket_boundaries_streaming_equals_whole() -> None:
    values = np.random.default_rng(0).lognormal(size=5000).round(1)
    whole = ValueCounter()
    whole.update(values)
    streamed = ValueCounter()
    for part in np.array_split(values, 7):
        streamed.update(part)

    assert whole.quantile_boundaries(10) == streamed.quantile_boundaries(10)
    expected = np.quantile(values, np.arange(1, 10) / 10, method="inverted_cdf")
    np.testing.assert_allclose(whole.quantile_boundaries(10), expected)


def test_log_numeric_field() -> None:
    frame = frame_of(count=[1.0, None])
    count = SimpleNamespace(name="count", type="numeric", source="context", fill_value=-1.0)
    schema = fit_schema([frame], [count], min_count=1, fit_range=FIT_RANGE, dataset="toy")
    field = schema.field("count")

    assert field.transform == "log"
    assert field.fill_value == -1.0
    assert field.vocab_size == 1


def test_multi_valued_max_len_inferred() -> None:
    frame = frame_of(genres=["a|b|c", "a", None, "", "b||a"])
    genres = {"name": "genres", "type": "multi_valued", "source": "item"}
    schema = fit_schema([frame], [genres], min_count=1, fit_range=FIT_RANGE, dataset="toy")
    field = schema.field("genres")

    assert field.vocabulary == ("a", "b", "c")
    assert field.max_len == 3
    assert field.separator == "|"


def test_invalid_field_definitions_named() -> None:
    frame = frame_of(site=["a"])
    with pytest.raises(SchemaError, match=r"'site'.*type is 'text'"):
        fit_schema([frame], [{**CAT, "type": "text"}], 1, FIT_RANGE, "toy")
    with pytest.raises(SchemaError, match="used more than once"):
        fit_schema([frame], [CAT, CAT], 1, FIT_RANGE, "toy")
    with pytest.raises(SchemaError, match="n_buckets"):
        fit_schema(
            [frame],
            [{**CAT, "type": "numeric", "transform": "bucket", "n_buckets": 1}],
            1,
            FIT_RANGE,
            "toy",
        )


def fitted_schema() -> FeatureSchema:
    frame = frame_of(
        site=["b", "a", "b"],
        genres=["x|y", "y", None],
        price=[1.0, 5.0, 9.0],
        count=[1.0, 2.0, 3.0],
    )
    defs = [
        {"name": "count", "type": "numeric", "source": "context"},
        {"name": "genres", "type": "multi_valued", "source": "item", "max_len": 4},
        CAT,
        {
            "name": "price",
            "type": "numeric",
            "source": "item",
            "transform": "bucket",
            "n_buckets": 2,
        },
    ]
    return fit_schema([frame], defs, min_count=1, fit_range=FIT_RANGE, dataset="toy")


def test_embedded_fields_model_order() -> None:
    schema = fitted_schema()

    assert [f.name for f in schema.embedded_fields()] == ["site", "price", "genres", "count"]
    assert [f.name for f in schema.categorical_fields()] == ["site", "price"]
    assert schema.max_multi_len() == 4


def test_save_load_round_trip(tmp_path) -> None:
    schema = fitted_schema().with_embedding_dims(8)
    path = schema.save(tmp_path / "schema.json")
    loaded = FeatureSchema.load(path)

    assert loaded == schema
    assert loaded.hash() == schema.hash()
    content = json.loads(path.read_text())
    assert content["format_version"] == 1
    assert content["fields"][1]["vocabulary"] == ["y", "x"]
    assert content["fields"][3]["boundaries"] == [5.0]  # median of 1, 5, 9
    assert not list(tmp_path.glob(".*.tmp"))


def test_load_errors_name_file(tmp_path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(SchemaError, match=r"missing\.json not found"):
        FeatureSchema.load(missing)

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(SchemaError, match=r"broken\.json is not valid JSON"):
        FeatureSchema.load(broken)

    edited = tmp_path / "edited.json"
    content = fitted_schema().to_dict()
    content["fields"][2]["vocab_size"] = 99
    edited.write_text(json.dumps(content))
    with pytest.raises(SchemaError, match=r"edited.json fields\[2\] \(site\): vocab_size is 99"):
        FeatureSchema.load(edited)

    duplicated = tmp_path / "duplicated.json"
    content = fitted_schema().to_dict()
    content["fields"][2]["vocabulary"] = ["a", "a"]
    duplicated.write_text(json.dumps(content))
    with pytest.raises(SchemaError, match="duplicate tokens"):
        FeatureSchema.load(duplicated)


def test_load_rejects_label_field(tmp_path) -> None:
    content = fitted_schema().to_dict()
    content["fields"][2]["name"] = "label"
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(content))

    with pytest.raises(SchemaError, match="label"):
        FeatureSchema.load(path)


def test_hash_ignores_embedding_dims() -> None:
    schema = fitted_schema()
    with_dims = schema.with_embedding_dims({"site": 16, "genres": 4})

    assert with_dims.hash() == schema.hash()
    assert with_dims.to_dict() != schema.to_dict()
    assert schema.with_vocabulary("site", ["b", "a", "new"]).hash() != schema.hash()


def test_with_embedding_dims_and_uniform_dim() -> None:
    schema = fitted_schema()
    assert schema.uniform_dim() is None

    uniform = schema.with_embedding_dims(8)
    assert uniform.uniform_dim() == 8
    mixed = uniform.with_embedding_dims({"site": 16})
    assert mixed.field("site").embedding_dim == 16
    assert mixed.field("genres").embedding_dim == 8
    assert mixed.uniform_dim() is None

    with pytest.raises(SchemaError, match="unknown fields"):
        schema.with_embedding_dims({"nope": 8})
    with pytest.raises(SchemaError, match="positive integer"):
        schema.with_embedding_dims(0)
