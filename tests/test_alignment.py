"""Tests of student vocabulary alignment and of building the student embedding tables."""

from __future__ import annotations

import numpy as np
import pytest

from crossadapt.errors import DataError, ParamsError, SchemaError
from crossadapt.transfer.alignment import (
    NEW_ROW_STD,
    align_vocabulary,
    init_new_rows,
    transfer_embedding_tables,
)
from crossadapt.transfer.projection import expansion_matrix, pca_reduce


def _teacher_table(vocab_size: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    table = (rng.standard_normal((vocab_size, dim)) * 0.1 + 0.05).astype(np.float32)
    table[0] = 0.0  # PAD
    return table


# align_vocabulary


def test_align_keeps_teacher_order_and_appends_new() -> None:
    teacher_vocab = ["b", "a", "c"]
    counts = {"a": 10, "z": 3, "x": 3, "y": 7, "c": 1, "w": 1}
    student_vocab, new_tokens = align_vocabulary(teacher_vocab, counts, min_count=2)
    assert new_tokens == ["y", "x", "z"]  # count desc, then token asc; "w" below min_count
    assert student_vocab == ["b", "a", "c", "y", "x", "z"]


def test_align_keeps_teacher_tokens_absent_from_window() -> None:
    student_vocab, new_tokens = align_vocabulary(["old1", "old2"], {"new": 1}, min_count=1)
    assert student_vocab == ["old1", "old2", "new"]
    assert new_tokens == ["new"]


def test_align_no_new_tokens() -> None:
    student_vocab, new_tokens = align_vocabulary(["a", "b"], {"a": 5}, min_count=1)
    assert student_vocab == ["a", "b"]
    assert new_tokens == []


def test_align_rejects_bad_min_count() -> None:
    with pytest.raises(ParamsError, match="min_count"):
        align_vocabulary(["a"], {"b": 1}, min_count=0)


def test_align_rejects_duplicate_teacher_tokens() -> None:
    with pytest.raises(SchemaError, match="'a'"):
        align_vocabulary(["a", "b", "a"], {}, min_count=1)


def test_align_rejects_negative_count() -> None:
    with pytest.raises(DataError, match="'q'"):
        align_vocabulary(["a"], {"q": -1}, min_count=1)


# init_new_rows


def test_init_mean_rows_centre_on_token_rows() -> None:
    table = _teacher_table(50, 8, seed=1)
    table[1] = 9.0  # OOV row, excluded from the mean
    rows = init_new_rows(table, 400, "mean", seed=3)
    assert rows.shape == (400, 8)
    assert rows.dtype == np.float32
    token_mean = table[2:].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(rows.mean(axis=0), token_mean, atol=4 * NEW_ROW_STD / 20)
    np.testing.assert_allclose(rows.std(axis=0), NEW_ROW_STD, rtol=0.15)


def test_init_random_rows_small_normal() -> None:
    rows = init_new_rows(_teacher_table(10, 8), 2000, "random", seed=0)
    assert abs(float(rows.mean())) < 1e-3
    assert float(rows.std()) == pytest.approx(NEW_ROW_STD, rel=0.05)


def test_init_rows_seed_deterministic() -> None:
    table = _teacher_table(10, 4)
    np.testing.assert_array_equal(init_new_rows(table, 5, seed=8), init_new_rows(table, 5, seed=8))
    assert not np.array_equal(init_new_rows(table, 5, seed=8), init_new_rows(table, 5, seed=9))


def test_init_mean_without_token_rows_uses_oov() -> None:
    table = np.array([[0.0, 0.0], [0.5, -0.5]], dtype=np.float32)
    rows = init_new_rows(table, 1000, "mean", seed=0)
    np.testing.assert_allclose(rows.mean(axis=0), [0.5, -0.5], atol=2e-3)


def test_init_zero_rows() -> None:
    assert init_new_rows(_teacher_table(5, 3), 0).shape == (0, 3)


def test_init_rejects_unknown_strategy() -> None:
    with pytest.raises(ParamsError, match="new_row_init"):
        init_new_rows(_teacher_table(5, 3), 2, "zeros")  # type: ignore[arg-type]


# transfer_embedding_tables


def test_transfer_tables_expand_layout() -> None:
    teacher = {"user_id": _teacher_table(30, 8, seed=2), "item_id": _teacher_table(20, 8, seed=3)}
    student, report = transfer_embedding_tables(
        teacher, {"user_id": 16, "item_id": 16}, {"user_id": 4}, seed=5
    )
    weights = expansion_matrix(8, 16, seed=5)
    user = student["user_id"]
    assert user.shape == (34, 16)
    np.testing.assert_array_equal(user[0], 0.0)  # PAD stays zero
    # OOV and token rows are the teacher's rows, expanded.
    np.testing.assert_allclose(user[1:30], teacher["user_id"][1:] @ weights, atol=1e-6)
    np.testing.assert_allclose(
        user[30:].mean(axis=0), user[2:30].mean(axis=0), atol=4 * NEW_ROW_STD
    )
    assert student["item_id"].shape == (20, 16)

    assert report["user_id"]["method"] == "expand"
    assert report["user_id"]["new_rows"] == 4
    assert report["user_id"]["rows"] == 30
    assert report["user_id"]["student_rows"] == 34
    assert report["item_id"]["new_rows"] == 0


def test_transfer_tables_keep_cross_field_inner_products() -> None:
    teacher = {"user_id": _teacher_table(10, 8, seed=4), "item_id": _teacher_table(12, 8, seed=5)}
    student, _ = transfer_embedding_tables(teacher, {"user_id": 32, "item_id": 32}, {}, seed=1)
    cross_teacher = teacher["user_id"].astype(np.float64) @ teacher["item_id"].T
    cross_student = student["user_id"].astype(np.float64) @ student["item_id"].T
    np.testing.assert_allclose(cross_student, cross_teacher, atol=1e-6)


def test_transfer_tables_reduce_excludes_pad_from_fit() -> None:
    table = _teacher_table(60, 16, seed=6)
    student, report = transfer_embedding_tables({"genre": table}, {"genre": 4}, {}, seed=0)
    expected, _, _, _ = pca_reduce(table[1:], 4)
    np.testing.assert_array_equal(student["genre"][0], 0.0)
    np.testing.assert_allclose(student["genre"][1:], expected, atol=1e-7)
    assert report["genre"]["method"] == "reduce"
    assert 0.0 < report["genre"]["explained_variance_ratio"] < 1.0


def test_transfer_tables_numeric_one_row() -> None:
    teacher = {"price": np.array([[0.3, -0.2, 0.1, 0.4]], dtype=np.float32)}
    student, report = transfer_embedding_tables(teacher, {"price": 8}, {}, seed=2)
    assert student["price"].shape == (1, 8)
    assert float(np.linalg.norm(student["price"])) == pytest.approx(
        float(np.linalg.norm(teacher["price"])), rel=1e-6
    )
    assert report["price"]["method"] == "expand"


def test_transfer_tables_numeric_rejects_new_rows() -> None:
    teacher = {"price": np.ones((1, 4), dtype=np.float32)}
    with pytest.raises(SchemaError, match="price"):
        transfer_embedding_tables(teacher, {"price": 4}, {"price": 2}, seed=0)


def test_transfer_tables_missing_dim() -> None:
    with pytest.raises(ParamsError, match="item_id"):
        transfer_embedding_tables({"item_id": _teacher_table(5, 4)}, {}, {}, seed=0)


def test_transfer_tables_unknown_new_rows_field() -> None:
    with pytest.raises(SchemaError, match="ghost"):
        transfer_embedding_tables(
            {"item_id": _teacher_table(5, 4)}, {"item_id": 4}, {"ghost": 1}, seed=0
        )


def test_transfer_tables_deterministic() -> None:
    teacher = {"user_id": _teacher_table(30, 8), "tag": _teacher_table(40, 8, seed=9)}
    dims = {"user_id": 16, "tag": 4}
    first, _ = transfer_embedding_tables(teacher, dims, {"user_id": 3, "tag": 2}, seed=4)
    second, _ = transfer_embedding_tables(teacher, dims, {"user_id": 3, "tag": 2}, seed=4)
    for field in teacher:
        np.testing.assert_array_equal(first[field], second[field])
