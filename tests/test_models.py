"""Tests of the model zoo: embeddings, interaction layers, every architecture, the registry."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import torch

from crossadapt.data.encoding import EncodedFrame, encode
from crossadapt.data.schema import FeatureSchema, FieldSpec
from crossadapt.errors import ParamsError, SchemaError
from crossadapt.models.base import CTRModel
from crossadapt.models.batch import Batch
from crossadapt.models.embedding import FeatureEmbedding, FirstOrderLinear
from crossadapt.models.layers import (
    BilinearInteraction,
    CompressedInteractionNetwork,
    CrossNet,
    CrossNetV2,
    FactorizationMachine,
    InteractingLayer,
    MultiHeadBilinearFusion,
)
from crossadapt.models.registry import (
    ARCHITECTURES,
    CONFIG_CLASSES,
    architecture_names,
    build_model,
    validate_model_config,
)

ALL_ARCHS = [
    "dnn",
    "wide_deep",
    "deepfm",
    "dcn",
    "dcnv2",
    "xdeepfm",
    "autoint",
    "fibinet",
    "finalmlp",
]
UNIFORM_DIM_ARCHS = ["deepfm", "xdeepfm", "autoint", "fibinet"]
SMALL_CONFIG = {"hidden_units": [32, 16]}
MAX_LEN = 4


@pytest.fixture(autouse=True, scope="module")
def single_thread() -> Iterator[None]:
    """Run these small models on one thread.

    With more threads than free cores (CI runners, shared machines), the thread pool's
    synchronisation made the fitting tests 10 to 100 times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tokens(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(count))


def make_schema(dims: int | dict[str, int] = 8) -> FeatureSchema:
    """Schema with every field kind: embedded order is user, item, price, genres, age."""
    fields = (
        FieldSpec("user", "categorical", "user", vocabulary=_tokens("u", 18)),
        FieldSpec(
            "genres",
            "multi_valued",
            "item",
            vocabulary=_tokens("g", 8),
            max_len=MAX_LEN,
            separator="|",
        ),
        FieldSpec("item", "categorical", "item", vocabulary=_tokens("i", 28)),
        FieldSpec("age", "numeric", "user", fill_value=0.0, transform="log"),
        FieldSpec(
            "price",
            "numeric",
            "item",
            fill_value=0.0,
            transform="bucket",
            boundaries=(1.0, 2.0, 3.0),
            n_buckets=4,
        ),
    )
    schema = FeatureSchema("tiny", ("2020-01-01", "2020-01-31"), fields)
    return schema.with_embedding_dims(dims)


def random_batch(schema: FeatureSchema, rows: int, seed: int = 0) -> Batch:
    """Random indices (PAD included) for every field of `schema`."""
    generator = torch.Generator().manual_seed(seed)
    categorical = torch.stack(
        [
            torch.randint(0, field.vocab_size, (rows,), generator=generator)
            for field in schema.categorical_fields()
        ],
        dim=1,
    )
    multi_valued = torch.stack(
        [
            torch.randint(0, field.vocab_size, (rows, MAX_LEN), generator=generator)
            for field in schema.multi_valued_fields()
        ],
        dim=1,
    )
    numeric = torch.randn(rows, len(schema.numeric_fields()), generator=generator)
    label = torch.randint(0, 2, (rows,), generator=generator).float()
    return Batch(categorical, multi_valued, numeric, label)


def bce(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, label)


# --------------------------------------------------------------------------- architectures


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_model_returns_one_logit_per_row(arch: str) -> None:
    schema = make_schema(8)
    model = build_model(arch, schema, SMALL_CONFIG)
    logits = model(random_batch(schema, rows=12))

    assert isinstance(model, CTRModel)
    assert model.arch == arch
    assert logits.shape == (12,)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_gradients_reach_both_parameter_groups(arch: str) -> None:
    schema = make_schema(8)
    model = build_model(arch, schema, SMALL_CONFIG)
    batch = random_batch(schema, rows=64)
    bce(model(batch), batch.label).backward()

    for group in (model.embedding_parameters(), model.dense_parameters()):
        missing = [tuple(p.shape) for p in group if p.grad is None]
        assert missing == []
        assert any(p.grad.abs().sum() > 0 for p in group)
    for name in model.embedding.field_names:
        assert model.embedding.get_table(name).grad.abs().sum() > 0, name


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_parameter_groups_disjoint_and_complete(arch: str) -> None:
    model = build_model(arch, make_schema(8), SMALL_CONFIG)
    embedding_ids = [id(p) for p in model.embedding_parameters()]
    dense_ids = [id(p) for p in model.dense_parameters()]
    all_ids = [id(p) for p in model.parameters()]

    assert len(set(embedding_ids)) == len(embedding_ids)
    assert set(embedding_ids).isdisjoint(dense_ids)
    assert sorted(embedding_ids + dense_ids) == sorted(all_ids)
    tables = {id(model.embedding.get_table(name)) for name in model.embedding.field_names}
    assert tables <= set(embedding_ids)


def test_first_order_weights_count_as_embedding() -> None:
    model = build_model("wide_deep", make_schema(8), SMALL_CONFIG)
    embedding_ids = {id(p) for p in model.embedding_parameters()}
    dense_ids = {id(p) for p in model.dense_parameters()}

    assert len(embedding_ids) == 2 * len(model.embedding.field_names)
    assert id(model.linear.weights.get_table("user")) in embedding_ids
    assert id(model.linear.bias) in dense_ids


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_pad_rows_stay_zero_after_training(arch: str) -> None:
    schema = make_schema(8)
    model = build_model(arch, schema, SMALL_CONFIG)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    batch = random_batch(schema, rows=64)
    assert (batch.categorical == 0).any()
    assert (batch.multi_valued == 0).any()
    for _ in range(3):
        optimizer.zero_grad()
        bce(model(batch), batch.label).backward()
        optimizer.step()

    for name in ("user", "item", "price", "genres"):
        table = model.embedding.get_table(name)
        assert torch.equal(table[0], torch.zeros_like(table[0])), name
        assert table[1:].abs().sum() > 0, name


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_pad_tokens_do_not_change_output(arch: str) -> None:
    schema = make_schema(8)
    model = build_model(arch, schema, SMALL_CONFIG).eval()
    batch = random_batch(schema, rows=16)
    tokens = torch.tensor([3, 5, 0, 0])
    moved_pads = torch.tensor([0, 3, 0, 5])
    first = batch._replace(multi_valued=tokens.expand(16, 1, MAX_LEN).clone())
    second = batch._replace(multi_valued=moved_pads.expand(16, 1, MAX_LEN).clone())

    with torch.no_grad():
        before = model(first)
        model.embedding.get_table("genres")[0].fill_(7.0)
        after_pad_edit = model(first)
        moved = model(second)

    torch.testing.assert_close(after_pad_edit, before)
    torch.testing.assert_close(moved, before)


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_same_seed_builds_same_model(arch: str) -> None:
    schema = make_schema(8)
    batch = random_batch(schema, rows=8)
    torch.manual_seed(11)
    first = build_model(arch, schema, SMALL_CONFIG).eval()
    torch.manual_seed(11)
    second = build_model(arch, schema, SMALL_CONFIG).eval()
    torch.manual_seed(12)
    other = build_model(arch, schema, SMALL_CONFIG).eval()

    first_state, second_state = first.state_dict(), second.state_dict()
    assert first_state.keys() == second_state.keys()
    for key in first_state:
        assert torch.equal(first_state[key], second_state[key]), key
    with torch.no_grad():
        assert torch.equal(first(batch), second(batch))
        assert not torch.equal(first(batch), other(batch))


def fit_batch(model: CTRModel, batch: Batch, optimizer: torch.optim.Optimizer) -> None:
    """Take 150 optimizer steps on one batch."""
    for _ in range(150):
        optimizer.zero_grad()
        bce(model(batch), batch.label).backward()
        optimizer.step()


def xor_task(schema: FeatureSchema, rows: int, seed: int) -> Batch:
    """Rows whose label is the parity of user + item: no first-order term can fit it.

    The other fields are random noise, so a model that memorises rows through them
    fails on rows drawn with another seed.
    """
    batch = random_batch(schema, rows=rows, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1000)
    user = torch.randint(2, 8, (rows,), generator=generator)
    item = torch.randint(2, 8, (rows,), generator=generator)
    categorical = batch.categorical.clone()
    categorical[:, 0] = user
    categorical[:, 1] = item
    label = ((user + item) % 2).float()
    return batch._replace(categorical=categorical, label=label)


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_model_learns_pairwise_interaction(arch: str) -> None:
    schema = make_schema(8)
    torch.manual_seed(0)
    model = build_model(arch, schema, SMALL_CONFIG)
    train_batch = xor_task(schema, rows=256, seed=5)
    held_out = xor_task(schema, rows=256, seed=9)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

    initial_loss = bce(model(train_batch), train_batch.label).item()
    fit_batch(model, train_batch, optimizer)
    model.eval()
    with torch.no_grad():
        train_loss = bce(model(train_batch), train_batch.label).item()
        held_out_logits = model(held_out)
    held_out_loss = bce(held_out_logits, held_out.label).item()
    held_out_accuracy = ((held_out_logits > 0).float() == held_out.label).float().mean().item()

    assert initial_loss == pytest.approx(np.log(2), abs=0.05)
    assert train_loss < 0.05, f"{arch}: train loss {initial_loss:.3f} -> {train_loss:.3f}"
    assert held_out_loss < 0.5, f"{arch}: held-out loss {held_out_loss:.3f}"
    assert held_out_accuracy >= 0.95, f"{arch}: held-out accuracy {held_out_accuracy:.3f}"


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_per_field_dims_build_or_raise(arch: str) -> None:
    schema = make_schema({"user": 8, "item": 8, "price": 4, "genres": 16, "age": 4})
    if arch in UNIFORM_DIM_ARCHS:
        with pytest.raises(SchemaError) as raised:
            build_model(arch, schema, SMALL_CONFIG)
        message = str(raised.value)
        assert f"'{arch}' needs one embedding_dim for all fields" in message
        assert "dim 4: price, age" in message
        assert "dim 8: user, item" in message
        assert "dim 16: genres" in message
    else:
        model = build_model(arch, schema, SMALL_CONFIG)
        assert model.embedding.dims == [8, 8, 4, 16, 4]
        assert model(random_batch(schema, rows=5)).shape == (5,)


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_xavier_weight_init_follows_fuxictr(arch: str) -> None:
    schema = make_schema(8)
    torch.manual_seed(3)
    default = build_model(arch, schema, SMALL_CONFIG)
    torch.manual_seed(3)
    xavier = build_model(arch, schema, {**SMALL_CONFIG, "weight_init": "xavier"})

    linears = [m for m in xavier.modules() if type(m) is torch.nn.Linear]
    assert linears, f"{arch} has no nn.Linear"
    for linear in linears:
        if linear.bias is not None:
            assert torch.equal(linear.bias, torch.zeros_like(linear.bias))
    widest = max(linears, key=lambda m: m.weight.numel())
    fan_out, fan_in = widest.weight.shape
    expected_std = (2.0 / (fan_in + fan_out)) ** 0.5
    assert widest.weight.std().item() == pytest.approx(expected_std, rel=0.25)

    embeddings = [m for m in xavier.modules() if isinstance(m, FeatureEmbedding)]
    for embedding in embeddings:
        for name in embedding.numeric_fields:
            # N(0, 1e-4) by default; xavier_normal_ of a 1 x d row has std sqrt(2 / (1 + d)).
            assert embedding.get_table(name).abs().max().item() > 1e-2
    # Categorical rows are drawn before the dense layers and keep their initialisation.
    assert torch.equal(xavier.embedding.get_table("item"), default.embedding.get_table("item"))
    assert xavier.config.weight_init == "xavier"
    assert xavier(random_batch(schema, rows=5)).shape == (5,)


# --------------------------------------------------------------------------- embedding


def test_embedding_layout_follows_schema() -> None:
    embedding = FeatureEmbedding(
        make_schema({"user": 8, "item": 6, "price": 4, "genres": 5, "age": 3})
    )

    assert embedding.field_names == ["user", "item", "price", "genres", "age"]
    assert embedding.categorical_fields == ["user", "item", "price"]
    assert embedding.multi_valued_fields == ["genres"]
    assert embedding.numeric_fields == ["age"]
    shapes = {name: tuple(embedding.get_table(name).shape) for name in embedding.field_names}
    assert shapes == {
        "user": (20, 8),
        "item": (30, 6),
        "price": (6, 4),
        "genres": (10, 5),
        "age": (1, 3),
    }
    assert embedding.output_dim == 26
    assert embedding.uniform_dim is None
    assert isinstance(embedding.tables["user"], torch.nn.Embedding)


def test_embedding_init_scale() -> None:
    embedding = FeatureEmbedding(make_schema(8), init_std=1e-2)
    rows = embedding.get_table("item")[1:]

    assert rows.std().item() == pytest.approx(1e-2, rel=0.3)
    assert torch.equal(embedding.get_table("item")[0], torch.zeros(8))
    assert embedding.get_table("age").abs().sum() > 0


def test_multi_valued_mean_pooling_by_hand() -> None:
    schema = make_schema(2)
    embedding = FeatureEmbedding(schema)
    table = torch.zeros(10, 2)
    table[2] = torch.tensor([1.0, 2.0])
    table[3] = torch.tensor([3.0, 6.0])
    table[4] = torch.tensor([-1.0, 5.0])
    embedding.set_table("genres", table)
    tokens = torch.tensor([[2, 3, 0, 0], [0, 0, 0, 0], [0, 4, 0, 0], [2, 2, 3, 0]])
    batch = random_batch(schema, rows=4)._replace(multi_valued=tokens.unsqueeze(1))

    genres = embedding(batch)[3]

    expected = torch.tensor([[2.0, 4.0], [0.0, 0.0], [-1.0, 5.0], [5.0 / 3, 10.0 / 3]])
    torch.testing.assert_close(genres, expected)


def test_numeric_embedding_is_value_times_row() -> None:
    schema = make_schema(3)
    embedding = FeatureEmbedding(schema)
    embedding.set_table("age", torch.tensor([[1.0, -2.0, 0.5]]))
    batch = random_batch(schema, rows=3)._replace(numeric=torch.tensor([[2.0], [0.0], [-1.0]]))

    age = embedding(batch)[4]

    expected = torch.tensor([[2.0, -4.0, 1.0], [0.0, 0.0, 0.0], [-1.0, 2.0, -0.5]])
    torch.testing.assert_close(age, expected)


def test_categorical_lookup_reads_its_column() -> None:
    schema = make_schema(2)
    embedding = FeatureEmbedding(schema)
    table = torch.arange(60, dtype=torch.float32).view(30, 2)
    embedding.set_table("item", table)
    batch = random_batch(schema, rows=3)
    batch = batch._replace(categorical=torch.tensor([[5, 7, 1], [0, 0, 0], [3, 29, 2]]))

    item = embedding(batch)[1]

    torch.testing.assert_close(item, table[[7, 0, 29]])


def test_stacked_and_flat_shapes() -> None:
    schema = make_schema(4)
    embedding = FeatureEmbedding(schema)
    batch = random_batch(schema, rows=6)

    stacked = embedding.stacked(batch)
    flat = embedding.flat(batch)

    assert stacked.shape == (6, 5, 4)
    assert flat.shape == (6, 20)
    torch.testing.assert_close(stacked.flatten(1), flat)


def test_stacked_rejects_mixed_dims() -> None:
    schema = make_schema({"user": 8, "item": 8, "price": 8, "genres": 8, "age": 2})
    embedding = FeatureEmbedding(schema)

    with pytest.raises(SchemaError, match=r"dim 2: age; dim 8: user, item, price, genres"):
        embedding.stacked(random_batch(schema, rows=2))


def test_set_table_rejects_wrong_shape() -> None:
    embedding = FeatureEmbedding(make_schema(4))

    with pytest.raises(SchemaError, match=r"field 'user': table of shape \(20, 8\)"):
        embedding.set_table("user", torch.zeros(20, 8))
    with pytest.raises(SchemaError, match="field 'city' has no embedding table"):
        embedding.get_table("city")


def test_schema_without_dims_is_rejected() -> None:
    schema = make_schema(4)
    schema = FeatureSchema(
        schema.dataset,
        schema.fit_range,
        (
            *schema.fields[:-1],
            FieldSpec("price2", "numeric", "item", fill_value=0.0, transform="log"),
        ),
    )

    with pytest.raises(SchemaError, match="field 'price2': embedding_dim is None"):
        FeatureEmbedding(schema)


def test_batch_with_wrong_columns_is_rejected() -> None:
    schema = make_schema(4)
    embedding = FeatureEmbedding(schema)
    batch = random_batch(schema, rows=2)
    batch = batch._replace(categorical=batch.categorical[:, :2])

    with pytest.raises(
        SchemaError, match=r"batch.categorical has shape \(2, 2\).*user, item, price"
    ):
        embedding(batch)


def test_first_order_linear_sums_field_weights() -> None:
    schema = make_schema(4)
    linear = FirstOrderLinear(schema)
    batch = random_batch(schema, rows=5)
    with torch.no_grad():
        linear.bias.fill_(0.25)

    expected = sum(e.squeeze(1) for e in linear.weights(batch)) + 0.25

    torch.testing.assert_close(linear(batch), expected)


# --------------------------------------------------------------------------- layers


def test_factorization_machine_matches_pairwise_sum() -> None:
    embeddings = torch.randn(3, 5, 4)
    expected = torch.zeros(3)
    for i in range(5):
        for j in range(i + 1, 5):
            expected += (embeddings[:, i] * embeddings[:, j]).sum(dim=1)

    torch.testing.assert_close(FactorizationMachine()(embeddings), expected)


def test_cross_net_layer_formula() -> None:
    cross = CrossNet(6, num_layers=1)
    x0 = torch.randn(4, 6)
    weight, bias = cross.weights[0], cross.biases[0]

    expected = x0 * (x0 @ weight).unsqueeze(1) + bias + x0

    torch.testing.assert_close(cross(x0), expected)


def test_cross_net_v2_low_rank_equals_full_rank() -> None:
    low = CrossNetV2(6, num_layers=2, low_rank=3)
    full = CrossNetV2(6, num_layers=2)
    with torch.no_grad():
        for low_layer, full_layer in zip(low.layers, full.layers, strict=True):
            down, up = low_layer[0], low_layer[1]
            full_layer.weight.copy_(up.weight @ down.weight)
            full_layer.bias.copy_(up.bias)
    x0 = torch.randn(5, 6)

    torch.testing.assert_close(low(x0), full(x0))


def test_cin_first_layer_by_hand() -> None:
    cin = CompressedInteractionNetwork(num_fields=3, layer_units=[2])
    embeddings = torch.randn(2, 3, 4)
    weight = cin.convolutions[0].weight.squeeze(2).view(2, 3, 3)  # (H_1, H_0, F)
    bias = cin.convolutions[0].bias

    maps = torch.einsum("hij,bid,bjd->bhd", weight, embeddings, embeddings) + bias.view(1, 2, 1)
    expected = torch.relu(maps).sum(dim=2)

    torch.testing.assert_close(cin(embeddings), expected)


def test_cin_output_width() -> None:
    cin = CompressedInteractionNetwork(num_fields=5, layer_units=[4, 3, 2])
    assert cin(torch.randn(7, 5, 8)).shape == (7, 9)
    assert cin.output_dim == 9


@pytest.mark.parametrize("bilinear_type", ["field_all", "field_each", "field_interaction"])
def test_bilinear_interaction_by_hand(bilinear_type: str) -> None:
    layer = BilinearInteraction(4, 3, bilinear_type)
    embeddings = torch.randn(2, 4, 3)
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]

    expected = []
    for pair_index, (i, j) in enumerate(pairs):
        weight_index = {"field_all": 0, "field_each": i, "field_interaction": pair_index}
        weight = layer.weight[weight_index[bilinear_type]]
        expected.append((embeddings[:, i] @ weight) * embeddings[:, j])

    torch.testing.assert_close(layer(embeddings), torch.stack(expected, dim=1))


def test_interacting_layer_by_hand() -> None:
    layer = InteractingLayer(4, attention_dim=3, num_heads=2, use_residual=True, use_scale=False)
    embeddings = torch.randn(2, 5, 4)
    query, key, value = layer.query_key_value.weight.view(3, 2, 3, 4)  # (H, d', d_in) each

    heads = []
    for head in range(2):
        q = embeddings @ query[head].T
        k = embeddings @ key[head].T
        v = embeddings @ value[head].T
        heads.append(torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v)
    expected = torch.relu(torch.cat(heads, dim=2) + layer.residual(embeddings))

    torch.testing.assert_close(layer(embeddings), expected)


def test_bilinear_fusion_by_hand() -> None:
    fusion = MultiHeadBilinearFusion(4, 6, num_heads=2)
    first, second = torch.randn(3, 4), torch.randn(3, 6)

    expected = fusion.first_linear(first).squeeze(1) + fusion.second_linear(second).squeeze(1)
    for head in range(2):
        left = first[:, 2 * head : 2 * head + 2]
        right = second[:, 3 * head : 3 * head + 3]
        expected = expected + ((left @ fusion.bilinear[head]) * right).sum(dim=1)

    torch.testing.assert_close(fusion(first, second), expected)


# --------------------------------------------------------------------------- registry


def test_registry_lists_every_architecture() -> None:
    assert architecture_names() == ALL_ARCHS
    assert list(ARCHITECTURES) == ALL_ARCHS
    for name, (model_class, config_class) in ARCHITECTURES.items():
        assert model_class.arch == name
        assert model_class.config_class is config_class
        assert CONFIG_CLASSES[name] is config_class
        assert model_class.needs_uniform_dim == (name in UNIFORM_DIM_ARCHS)


def test_unknown_architecture_lists_valid_names() -> None:
    with pytest.raises(ParamsError) as raised:
        build_model("dcn3", make_schema(8))
    message = str(raised.value)
    assert "unknown architecture 'dcn3'" in message
    assert ", ".join(ALL_ARCHS) in message


def test_unknown_config_key_is_named() -> None:
    with pytest.raises(ParamsError, match=r"unknown key 'hiden_units'.*Valid keys: hidden_units"):
        build_model("dnn", make_schema(8), {"hiden_units": [8]})


def test_invalid_config_value_is_named() -> None:
    with pytest.raises(ParamsError, match=r"key 'dropout' = 1.5"):
        validate_model_config("dcnv2", {"dropout": 1.5})
    with pytest.raises(ParamsError, match=r"key 'model_structure' = 'serial'"):
        validate_model_config("dcnv2", {"model_structure": "serial"})
    with pytest.raises(ParamsError, match=r"key 'weight_init' = 'he'"):
        validate_model_config("dnn", {"weight_init": "he"})


def test_config_defaults_and_dump_round_trip() -> None:
    model = build_model("dcnv2", make_schema(8), None)
    dumped = model.config.model_dump()

    assert dumped["hidden_units"] == [128, 64]
    assert dumped["dropout"] == 0.0
    assert dumped["low_rank"] is None
    rebuilt = build_model("dcnv2", make_schema(8), dumped)
    assert rebuilt.config == model.config


def test_dcnv2_structures_and_low_rank() -> None:
    schema = make_schema(8)
    batch = random_batch(schema, rows=4)
    for options in (
        {"model_structure": "stacked"},
        {"low_rank": 4},
        {"hidden_units": []},
    ):
        model = build_model("dcnv2", schema, options)
        assert model(batch).shape == (4,), options
    assert build_model("dcnv2", schema, {"low_rank": 4}).cross.layers[0][0].weight.shape == (4, 40)


def test_finalmlp_context_fields_and_heads() -> None:
    schema = make_schema(8)
    model = build_model(
        "finalmlp",
        schema,
        {
            "first_context_fields": ["user"],
            "second_context_fields": ["item", "genres"],
            "fusion_heads": 2,
        },
    )
    assert model(random_batch(schema, rows=3)).shape == (3,)

    with pytest.raises(ParamsError, match=r"first_context_fields lists unknown fields \['city'\]"):
        build_model("finalmlp", schema, {"first_context_fields": ["city"]})
    with pytest.raises(ParamsError, match=r"fusion_heads=3 must divide both stream widths \(64"):
        build_model("finalmlp", schema, {"fusion_heads": 3})


def test_registry_import_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from crossadapt.models.registry import architecture_names, validate_model_config\n"
        "validate_model_config('fibinet', {'bilinear_type': 'field_all'})\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(len(architecture_names()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "9"


# --------------------------------------------------------------------------- batch


def encoded_arrays(rows: int) -> EncodedFrame:
    rng = np.random.default_rng(0)
    return EncodedFrame(
        categorical=rng.integers(0, 10, size=(rows, 3), dtype=np.int64),
        multi_valued=rng.integers(0, 10, size=(rows, 1, MAX_LEN), dtype=np.int64),
        numeric=rng.normal(size=(rows, 1)).astype(np.float32),
        label=rng.integers(0, 2, size=rows).astype(np.float32),
        timestamp=np.arange(rows, dtype=np.int64),
    )


def test_batch_from_encoded_shares_memory() -> None:
    frame = encoded_arrays(10)
    batch = Batch.from_encoded(frame)

    assert np.shares_memory(batch.categorical.numpy(), frame.categorical)
    assert np.shares_memory(batch.multi_valued.numpy(), frame.multi_valued)
    assert np.shares_memory(batch.numeric.numpy(), frame.numeric)
    assert np.shares_memory(batch.label.numpy(), frame.label)
    sliced = Batch.from_encoded(frame, slice(2, 6))
    assert np.shares_memory(sliced.categorical.numpy(), frame.categorical)
    assert sliced.num_rows == 4


def test_batch_from_encoded_selects_rows() -> None:
    frame = encoded_arrays(10)
    rows = np.array([7, 2, 2, 9])
    batch = Batch.from_encoded(frame, rows)

    assert batch.num_rows == 4
    np.testing.assert_array_equal(batch.categorical.numpy(), frame.categorical[rows])
    np.testing.assert_array_equal(batch.multi_valued.numpy(), frame.multi_valued[rows])
    np.testing.assert_array_equal(batch.numeric.numpy(), frame.numeric[rows])
    np.testing.assert_array_equal(batch.label.numpy(), frame.label[rows])


def test_batch_from_encoded_converts_dtypes() -> None:
    frame = encoded_arrays(4)
    frame.categorical = frame.categorical.astype(np.int32)
    frame.numeric = frame.numeric.astype(np.float64)
    frame.label = frame.label.astype(np.int8)
    batch = Batch.from_encoded(frame)

    assert batch.categorical.dtype == torch.int64
    assert batch.numeric.dtype == torch.float32
    assert batch.label.dtype == torch.float32
    assert batch.multi_valued.dtype == torch.int64


def test_encoded_log_rows_feed_every_model() -> None:
    schema = make_schema(4)
    frame = pd.DataFrame(
        {
            "timestamp": [1, 2, 3],
            "label": np.array([1, 0, 1], dtype=np.int8),
            "user": ["u0", "u5", None],
            "genres": ["g1|g2", None, "g3|unseen|g0"],
            "item": ["i3", "never-seen", "i0"],
            "age": [30.0, None, 0.0],
            "price": [0.5, 2.5, None],
        }
    )
    batch = Batch.from_encoded(encode(frame, schema))

    assert batch.categorical.shape == (3, 3)
    assert batch.multi_valued.shape == (3, 1, MAX_LEN)
    assert batch.numeric.shape == (3, 1)
    for arch in ALL_ARCHS:
        logits = build_model(arch, schema, SMALL_CONFIG)(batch)
        assert logits.shape == (3,), arch
        assert torch.isfinite(logits).all(), arch


# --------------------------------------------------------------------------- sparse gradients


def sparse_and_dense(arch: str, schema: FeatureSchema) -> tuple[CTRModel, CTRModel]:
    torch.manual_seed(4)
    dense = build_model(arch, schema, SMALL_CONFIG)
    sparse = build_model(arch, schema, {**SMALL_CONFIG, "sparse_gradients": True})
    sparse.load_state_dict(dense.state_dict())
    return dense, sparse


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_sparse_gradients_match_dense_ones(arch: str) -> None:
    schema = make_schema(8)
    dense, sparse = sparse_and_dense(arch, schema)
    batch = random_batch(schema, rows=32)

    bce(dense(batch), batch.label).backward()
    bce(sparse(batch), batch.label).backward()

    for (name, dense_param), sparse_param in zip(
        dense.named_parameters(), sparse.parameters(), strict=True
    ):
        # Every table but the 1 x d rows of numeric "log" fields is looked up by index.
        expect_sparse = ".tables." in f".{name}" and sparse_param.shape[0] > 1
        assert sparse_param.grad.is_sparse == expect_sparse, name
        gradient = sparse_param.grad.to_dense() if expect_sparse else sparse_param.grad
        torch.testing.assert_close(gradient, dense_param.grad, msg=name)


def test_lazy_adam_moves_batch_rows_only() -> None:
    from crossadapt.training.trainer import make_optimizer

    schema = make_schema(8)
    dense, sparse = sparse_and_dense("dnn", schema)
    dense_optimizer = make_optimizer(dense, 0.01, 0.001)
    sparse_optimizer = make_optimizer(sparse, 0.01, 0.001)
    assert type(dense_optimizer) is torch.optim.Adam
    assert type(sparse_optimizer).__name__ == "SparseAwareAdam"
    first = random_batch(schema, rows=16, seed=1)
    second = random_batch(schema, rows=16, seed=2)

    for batch in (first,):
        for model, optimizer in ((dense, dense_optimizer), (sparse, sparse_optimizer)):
            optimizer.zero_grad()
            bce(model(batch), batch.label).backward()
            optimizer.step()
    # After one step lazy Adam equals Adam: rows without gradient have zero moments.
    for dense_param, sparse_param in zip(dense.parameters(), sparse.parameters(), strict=True):
        torch.testing.assert_close(sparse_param, dense_param)

    before = sparse.embedding.get_table("user").detach().clone()
    sparse_optimizer.zero_grad()
    bce(sparse(second), second.label).backward()
    sparse_optimizer.step()
    after = sparse.embedding.get_table("user").detach()
    touched = torch.zeros(after.shape[0], dtype=torch.bool)
    touched[second.categorical[:, 0]] = True
    touched[0] = False  # PAD
    assert not torch.equal(after[touched], before[touched])
    assert torch.equal(after[~touched], before[~touched])
    assert torch.equal(after[0], torch.zeros_like(after[0]))


def test_lazy_adam_state_loads_into_adam() -> None:
    from crossadapt.training.trainer import make_optimizer

    schema = make_schema(8)
    dense, sparse = sparse_and_dense("dcnv2", schema)
    sparse_optimizer = make_optimizer(sparse, 0.01, 0.001)
    batch = random_batch(schema, rows=16)
    bce(sparse(batch), batch.label).backward()
    sparse_optimizer.step()

    dense_optimizer = make_optimizer(dense, 0.01, 0.001)
    dense_optimizer.load_state_dict(sparse_optimizer.state_dict())
    table = sparse.embedding.get_table("item")
    assert torch.equal(
        dense_optimizer.state[dense.embedding.get_table("item")]["exp_avg"],
        sparse_optimizer.state[table]["exp_avg"],
    )


def test_lazy_adam_rejects_weight_decay() -> None:
    from crossadapt.training.optim import SparseAwareAdam

    schema = make_schema(8)
    _, sparse = sparse_and_dense("dnn", schema)
    optimizer = SparseAwareAdam(sparse.parameters(), lr=0.01, weight_decay=0.1)
    batch = random_batch(schema, rows=16)
    bce(sparse(batch), batch.label).backward()
    before = {name: value.detach().clone() for name, value in sparse.state_dict().items()}

    with pytest.raises(ValueError, match=r"weight_decay=0\.1, amsgrad=False, maximize=False"):
        optimizer.step()
    for name, value in sparse.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_sparse_gradient_norm_and_clipping() -> None:
    from crossadapt.training.optim import gradient_norm

    schema = make_schema(8)
    dense, sparse = sparse_and_dense("dnn", schema)
    batch = random_batch(
        schema, rows=64
    )  # rows repeat ids, so the sparse gradients contain duplicates
    bce(dense(batch), batch.label).backward()
    bce(sparse(batch), batch.label).backward()

    expected = gradient_norm(list(dense.parameters()), None)
    assert gradient_norm(list(sparse.parameters()), None) == pytest.approx(expected, rel=1e-5)
    assert gradient_norm(list(sparse.parameters()), expected / 4) == pytest.approx(expected)
    assert gradient_norm(list(sparse.parameters()), None) == pytest.approx(expected / 4, rel=1e-4)


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_model_learns_with_sparse_gradients(arch: str) -> None:
    from crossadapt.training.trainer import make_optimizer

    schema = make_schema(8)
    torch.manual_seed(0)
    model = build_model(arch, schema, {**SMALL_CONFIG, "sparse_gradients": True})
    train_batch = xor_task(schema, rows=256, seed=5)
    fit_batch(model, train_batch, make_optimizer(model, 0.01, 0.01))
    model.eval()
    with torch.no_grad():
        train_loss = bce(model(train_batch), train_batch.label).item()
    assert train_loss < 0.05, f"{arch}: train loss {train_loss:.3f}"
