"""Student build from a teacher, progressive distillation and one day of co-distillation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from crossadapt.data.encoding import encode
from crossadapt.data.schema import FeatureSchema, fit_schema
from crossadapt.distill.progressive import DistillConfig, progressive_distill, teacher_logits
from crossadapt.errors import ParamsError, SchemaError, TrainingDiverged
from crossadapt.models.batch import Batch
from crossadapt.models.registry import build_model
from crossadapt.online.codistill import CoDistillConfig, codistill_day, teacher_view_of
from crossadapt.training.trainer import TrainConfig, train
from crossadapt.transfer.student import build_student, retained_token_counts

FIELD_DEFS = [
    {"name": "user_id", "type": "categorical", "source": "user"},
    {"name": "genres", "type": "multi_valued", "source": "item"},
    {"name": "age", "type": "numeric", "source": "user", "transform": "log"},
]


def click_log(rows: int, seed: int, users: int = 40, first_user: int = 0) -> pd.DataFrame:
    """Partition-like rows whose click rate depends on the user and the age."""
    rng = np.random.default_rng(seed)
    user = rng.integers(first_user, first_user + users, size=rows)
    ages = rng.uniform(18, 70, size=rows)
    genres = np.array(["drama", "comedy|drama", "action", "action|comedy|horror"])
    logit = np.sin(user) * 2 + 0.03 * (ages - 40)
    labels = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return pd.DataFrame(
        {
            "timestamp": 883612800 + np.arange(rows, dtype=np.int64) * 60,
            "label": labels,
            "user_id": [f"u{u}" for u in user],
            "genres": genres[rng.integers(0, 4, size=rows)],
            "age": ages,
        }
    )


def teacher_schema(log: pd.DataFrame, dim: int = 4) -> FeatureSchema:
    schema = fit_schema([log], FIELD_DEFS, 1, ("1998-01-01", "1998-01-31"), "clicks")
    return schema.with_embedding_dims(dim)


@pytest.fixture(scope="module")
def trained_teacher_state():
    torch.manual_seed(0)
    history = click_log(1500, seed=1)
    schema = teacher_schema(history)
    teacher = build_model("dnn", schema, {"hidden_units": [16]})
    config = TrainConfig(epochs=3, batch_size=128, lr_embedding=0.05, lr_dense=0.01)
    train(teacher, encode(history, schema), None, config)
    return schema, {name: value.clone() for name, value in teacher.state_dict().items()}


@pytest.fixture
def teacher_setup(trained_teacher_state):
    """A trained teacher (a fresh copy per test) and a retained window with new users."""
    schema, state = trained_teacher_state
    teacher = build_model("dnn", schema, {"hidden_units": [16]})
    teacher.load_state_dict(state)
    # Retained window: users 30..49, so u40..u49 are new to the teacher.
    retained = click_log(800, seed=2, users=20, first_user=30)
    return teacher, schema, retained


def test_student_keeps_teacher_vocabulary_and_appends_new_ids(teacher_setup) -> None:
    teacher, schema, retained = teacher_setup
    counts = retained_token_counts([retained], schema)
    build = build_student(teacher, schema, counts, "dcnv2", 8, {"hidden_units": [16]}, seed=0)

    teacher_vocab = list(schema.field("user_id").vocabulary)
    student_vocab = list(build.schema.field("user_id").vocabulary)
    assert student_vocab[: len(teacher_vocab)] == teacher_vocab
    assert sorted(student_vocab[len(teacher_vocab) :]) == sorted(f"u{u}" for u in range(40, 50))
    assert build.report["user_id"]["new_rows"] == 10
    assert build.schema.field("user_id").embedding_dim == 8


def test_student_tables_preserve_teacher_inner_products(teacher_setup) -> None:
    teacher, schema, retained = teacher_setup
    counts = retained_token_counts([retained], schema)
    build = build_student(teacher, schema, counts, "dnn", 8, {"hidden_units": [16]}, seed=0)

    rows = schema.field("user_id").vocab_size
    teacher_table = teacher.embedding.get_table("user_id").detach().double()
    student_table = build.model.embedding.get_table("user_id").detach().double()[:rows]
    assert torch.allclose(
        student_table @ student_table.T, teacher_table @ teacher_table.T, atol=1e-6
    )
    assert torch.count_nonzero(student_table[0]) == 0


def test_student_without_transfer_has_random_tables(teacher_setup) -> None:
    teacher, schema, retained = teacher_setup
    counts = retained_token_counts([retained], schema)
    build = build_student(
        teacher, schema, counts, "dnn", 4, {"hidden_units": [16]}, seed=0, transfer_embeddings=False
    )
    rows = schema.field("user_id").vocab_size
    teacher_table = teacher.embedding.get_table("user_id").detach()
    student_table = build.model.embedding.get_table("user_id").detach()[:rows]
    assert not torch.allclose(student_table, teacher_table)
    assert build.report == {}


def test_student_dim_zero_rejected(teacher_setup) -> None:
    teacher, schema, _ = teacher_setup
    with pytest.raises(ParamsError, match=r"student\.embedding_dim"):
        build_student(teacher, schema, {}, "dnn", 0, None, seed=0)


def test_uniform_dim_architecture_rejects_per_field_dims(teacher_setup) -> None:
    teacher, schema, _ = teacher_setup
    dims = {"user_id": 8, "genres": 4, "age": 4}
    with pytest.raises(SchemaError, match="one embedding_dim"):
        build_student(teacher, schema, {}, "deepfm", dims, None, seed=0)


def test_step_b_freezes_embeddings_and_step_c_trains_them(teacher_setup) -> None:
    teacher, schema, retained = teacher_setup
    build = build_student(teacher, schema, {}, "dnn", 8, {"hidden_units": [16]}, seed=0)
    frame = encode(retained, build.schema)
    targets = teacher_logits(teacher, encode(retained, schema))
    student = build.model
    before = student.embedding.get_table("user_id").detach().clone()
    dense_before = [p.detach().clone() for p in student.dense_parameters()]

    progressive_distill(
        student, frame, targets, DistillConfig(epochs_b=1, epochs_c=0, batch_size=128)
    )
    after_b = student.embedding.get_table("user_id").detach().clone()
    assert torch.equal(after_b, before)
    assert any(
        not torch.equal(a, b) for a, b in zip(dense_before, student.dense_parameters(), strict=True)
    )

    progressive_distill(
        student, frame, targets, DistillConfig(epochs_b=0, epochs_c=1, batch_size=128)
    )
    assert not torch.equal(student.embedding.get_table("user_id").detach(), after_b)
    assert all(p.requires_grad for p in student.parameters())


def test_distillation_moves_student_towards_teacher(teacher_setup) -> None:
    teacher, schema, retained = teacher_setup
    build = build_student(teacher, schema, {}, "dnn", 4, {"hidden_units": [16]}, seed=0)
    frame = encode(retained, build.schema)
    targets = teacher_logits(teacher, encode(retained, schema))
    gap_before = np.abs(teacher_logits(build.model, frame) - targets).mean()

    config = DistillConfig(alpha=1.0, epochs_b=2, epochs_c=3, lr_embedding=0.01, batch_size=64)
    progressive_distill(build.model, frame, targets, config)
    gap_after = np.abs(teacher_logits(build.model, frame) - targets).mean()
    assert gap_after < 0.5 * gap_before


def test_distill_config_rejects_bad_values() -> None:
    with pytest.raises(ParamsError, match=r"distill\.alpha"):
        DistillConfig(alpha=1.5)
    with pytest.raises(ParamsError, match=r"distill\.temperature"):
        DistillConfig(temperature=0.0)


def codistill_models(teacher_setup, sparse_gradients: bool = False):
    """Return the teacher, its schema, a student build, an encoded day and the replay rows."""
    teacher, schema, retained = teacher_setup
    config = {"hidden_units": [16], "sparse_gradients": sparse_gradients}
    if sparse_gradients:
        dense_teacher = teacher
        teacher = build_model("dnn", schema, config)
        teacher.load_state_dict(dense_teacher.state_dict())
    counts = retained_token_counts([retained], schema)
    build = build_student(teacher, schema, counts, "dnn", 8, config, seed=0)
    day = encode(click_log(640, seed=3, users=30, first_user=25), build.schema)
    replay = encode(retained, build.schema)
    return teacher, schema, build, day, replay


@pytest.mark.parametrize(("interval", "expected_steps"), [(1, 10), (3, 4), (10, 1), (0, 0)])
def test_teacher_steps_every_k_batches(teacher_setup, interval: int, expected_steps: int) -> None:
    teacher, schema, build, day, replay = codistill_models(teacher_setup)
    teacher_optimizer = torch.optim.Adam(teacher.parameters(), lr=1e-3)
    student_optimizer = torch.optim.Adam(build.model.parameters(), lr=1e-3)
    teacher_before = [p.detach().clone() for p in teacher.parameters()]

    result = codistill_day(
        teacher,
        build.model,
        teacher_optimizer,
        student_optimizer,
        day,
        replay,
        CoDistillConfig(batch_size=64, teacher_update_interval=interval, replay_ratio=0.25),
        teacher_view=teacher_view_of(schema, build.schema),
    )

    assert result.batches == 10
    assert result.rows == 640
    assert result.replay_rows == 160
    assert result.teacher_steps == expected_steps
    changed = any(
        not torch.equal(a, b) for a, b in zip(teacher_before, teacher.parameters(), strict=True)
    )
    assert changed == (expected_steps > 0)


def test_teacher_view_maps_new_ids_to_oov(teacher_setup) -> None:
    _, schema, build, day, _ = codistill_models(teacher_setup)
    view = teacher_view_of(schema, build.schema)
    batch = view(Batch.from_encoded(day))
    teacher_rows = schema.field("user_id").vocab_size

    student_batch = Batch.from_encoded(day)
    new_ids = student_batch.categorical[:, 0] >= teacher_rows
    assert new_ids.any()
    assert torch.all(batch.categorical[new_ids, 0] == 1)
    assert torch.equal(batch.categorical[~new_ids, 0], student_batch.categorical[~new_ids, 0])
    teacher_encoded = Batch.from_encoded(
        encode(click_log(640, seed=3, users=30, first_user=25), schema)
    )
    assert torch.equal(batch.categorical, teacher_encoded.categorical)


def test_codistill_stops_on_nan_loss(teacher_setup) -> None:
    teacher, schema, build, day, replay = codistill_models(teacher_setup)
    with torch.no_grad():
        next(iter(build.model.dense_parameters())).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"1998-03-05 at batch 0"):
        codistill_day(
            teacher,
            build.model,
            torch.optim.Adam(teacher.parameters()),
            torch.optim.Adam(build.model.parameters()),
            day,
            replay,
            CoDistillConfig(batch_size=64),
            day="1998-03-05",
            teacher_view=teacher_view_of(schema, build.schema),
        )


def test_codistill_with_sparse_gradients(teacher_setup) -> None:
    # Both models emit sparse embedding gradients; the teacher accumulates them over k=3
    # batches before its step. Rows no batch touched keep their values (lazy Adam).
    from crossadapt.training.trainer import make_optimizer

    teacher, schema, build, day, replay = codistill_models(teacher_setup, sparse_gradients=True)
    teacher_optimizer = make_optimizer(teacher, 1e-2, 1e-3)
    student_optimizer = make_optimizer(build.model, 1e-2, 1e-3)
    assert type(student_optimizer).__name__ == "SparseAwareAdam"
    student_before = build.model.embedding.get_table("user_id").detach().clone()

    result = codistill_day(
        teacher,
        build.model,
        teacher_optimizer,
        student_optimizer,
        day,
        replay,
        CoDistillConfig(batch_size=64, teacher_update_interval=3, replay_ratio=0.0),
        teacher_view=teacher_view_of(schema, build.schema),
    )

    assert result.batches == 10
    assert result.teacher_steps == 4
    assert np.isfinite(result.student_loss)
    student_after = build.model.embedding.get_table("user_id").detach()
    seen = torch.unique(Batch.from_encoded(day).categorical[:, 0])
    unseen = torch.ones(student_after.shape[0], dtype=torch.bool)
    unseen[seen] = False
    assert not torch.equal(student_after[seen], student_before[seen])
    assert torch.equal(student_after[unseen], student_before[unseen])
    assert torch.equal(student_after[0], torch.zeros_like(student_after[0]))
