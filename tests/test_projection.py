"""Tests of the embedding projection: expansion, PCA reduction, streaming versions."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from crossadapt.errors import DataError, ParamsError
from crossadapt.transfer.projection import (
    chunk_rows_for_budget,
    expand,
    expansion_matrix,
    pca_reduce,
    streaming_covariance,
    streaming_expand,
    streaming_pca_reduce,
    streaming_transfer_table,
    transfer_table,
)


def _table(rows: int, dim: int, seed: int = 0, offset: float = 0.0) -> np.ndarray:
    # Anisotropic rows with distinct variances per direction, like a trained table.
    rng = np.random.default_rng(seed)
    scales = np.linspace(1.0, 0.05, dim)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    return ((rng.standard_normal((rows, dim)) * scales) @ basis + offset).astype(np.float32)


def _save(tmp_path: Path, name: str, table: np.ndarray) -> Path:
    path = tmp_path / name
    np.save(path, table)
    return path


# Expansion


@pytest.mark.parametrize(("d_t", "d_s"), [(8, 16), (4, 4), (3, 64)])
def test_expansion_matrix_rows_orthonormal(d_t: int, d_s: int) -> None:
    weights = expansion_matrix(d_t, d_s, seed=7)
    assert weights.shape == (d_t, d_s)
    np.testing.assert_allclose(weights @ weights.T, np.eye(d_t), atol=1e-12)


def test_expansion_matrix_seed_deterministic() -> None:
    first = expansion_matrix(8, 16, seed=3)
    np.testing.assert_array_equal(first, expansion_matrix(8, 16, seed=3))
    assert not np.allclose(first, expansion_matrix(8, 16, seed=4))


def test_expansion_matrix_rejects_shrinking() -> None:
    with pytest.raises(ParamsError, match="pca_reduce"):
        expansion_matrix(16, 8, seed=0)


def test_expand_preserves_inner_products() -> None:
    teacher = _table(200, 8, offset=0.3)
    student = expand(teacher, 16, seed=11)
    assert student.shape == (200, 16)
    assert student.dtype == np.float32

    teacher64 = teacher.astype(np.float64)
    student64 = student.astype(np.float64)
    np.testing.assert_allclose(student64 @ student64.T, teacher64 @ teacher64.T, atol=1e-5)


def test_expand_inverts_with_transpose() -> None:
    teacher = _table(50, 8)
    weights = expansion_matrix(8, 32, seed=5)
    student = expand(teacher, 32, seed=5)
    np.testing.assert_allclose(student.astype(np.float64) @ weights.T, teacher, atol=1e-5)


# PCA reduction


def test_pca_reduce_matches_svd() -> None:
    teacher = _table(300, 16, seed=2, offset=0.5)
    student, directions, mean, stats = pca_reduce(teacher, 6)

    values = teacher.astype(np.float64)
    centred = values - values.mean(axis=0)
    u, singular, vt = np.linalg.svd(centred, full_matrices=False)
    expected = u[:, :6] * singular[:6]
    signs = np.sign(np.sum(student * expected, axis=0))  # PCA is unique up to column sign
    np.testing.assert_allclose(student, expected * signs, atol=1e-5)
    np.testing.assert_allclose(np.abs(directions.T @ vt[:6].T), np.eye(6), atol=1e-8)
    np.testing.assert_allclose(mean, values.mean(axis=0), atol=1e-12)

    explained = np.sum(singular[:6] ** 2) / np.sum(singular**2)
    assert stats.explained_variance_ratio == pytest.approx(explained, rel=1e-9)
    assert stats.n_components == 6
    assert stats.centred


def test_pca_reduce_reconstruction_error_matches_definition() -> None:
    teacher = _table(300, 16, seed=3, offset=0.2)
    student, directions, mean, stats = pca_reduce(teacher, 4)
    values = teacher.astype(np.float64)
    rebuilt = student.astype(np.float64) @ directions.T + mean
    expected = np.linalg.norm(values - rebuilt) / np.linalg.norm(values)
    assert stats.relative_reconstruction_error == pytest.approx(expected, rel=1e-5)
    assert 0.0 < stats.relative_reconstruction_error < 1.0


def test_pca_reduce_sign_convention() -> None:
    _, directions, _, _ = pca_reduce(_table(100, 8, seed=9), 3)
    largest = np.argmax(np.abs(directions), axis=0)
    assert np.all(directions[largest, np.arange(3)] > 0)


def test_pca_reduce_keep_mean_adds_projected_mean() -> None:
    teacher = _table(100, 8, seed=4, offset=1.0)
    dropped, directions, mean, _ = pca_reduce(teacher, 3, keep_mean=False)
    kept, _, _, stats = pca_reduce(teacher, 3, keep_mean=True)
    np.testing.assert_allclose(kept, dropped + (mean @ directions).astype(np.float32), atol=1e-6)
    assert stats.keep_mean
    np.testing.assert_allclose(dropped.mean(axis=0), 0.0, atol=1e-5)


def test_pca_reduce_small_table_pads_and_is_lossless() -> None:
    # 5 rows reduced from 16 to 8 dims: the rows span 5 directions, so 3 columns are padding.
    teacher = _table(5, 16, seed=6, offset=0.4)
    student, directions, mean, stats = pca_reduce(teacher, 8)
    assert student.shape == (5, 8)
    assert stats.n_components == 5
    assert not stats.centred
    np.testing.assert_array_equal(student[:, 5:], 0.0)
    np.testing.assert_array_equal(directions[:, 5:], 0.0)
    np.testing.assert_array_equal(mean, 0.0)

    teacher64 = teacher.astype(np.float64)
    student64 = student.astype(np.float64)
    np.testing.assert_allclose(student64 @ student64.T, teacher64 @ teacher64.T, atol=1e-5)
    assert stats.relative_reconstruction_error < 1e-6


def test_pca_reduce_one_row_table_keeps_norm() -> None:
    teacher = np.array([[3.0, 0.0, 4.0, 0.0]], dtype=np.float32)
    student, _, _, stats = pca_reduce(teacher, 2)
    np.testing.assert_allclose(student, [[5.0, 0.0]], atol=1e-6)
    assert stats.n_components == 1


def test_pca_reduce_rejects_nan() -> None:
    teacher = _table(20, 8)
    teacher[7, 2] = np.nan
    with pytest.raises(DataError, match="row 7"):
        pca_reduce(teacher, 4)


# Dispatch


def test_transfer_table_dispatch() -> None:
    teacher = _table(40, 8)
    copied, copy_stats = transfer_table(teacher, 8, seed=0)
    np.testing.assert_array_equal(copied, teacher)
    assert copied is not teacher
    assert copy_stats.method == "copy"

    expanded, expand_stats = transfer_table(teacher, 12, seed=0)
    np.testing.assert_array_equal(expanded, expand(teacher, 12, seed=0))
    assert expand_stats.method == "expand"
    assert expand_stats.relative_reconstruction_error == 0.0

    reduced, reduce_stats = transfer_table(teacher, 4, seed=0, keep_mean=True)
    np.testing.assert_array_equal(reduced, pca_reduce(teacher, 4, keep_mean=True)[0])
    assert reduce_stats.method == "reduce"


def test_transfer_table_rejects_zero_dim() -> None:
    with pytest.raises(ParamsError, match="user_id"):
        transfer_table(_table(4, 4), 0, seed=0, name="field 'user_id'")


# Streaming


def test_streaming_covariance_matches_numpy() -> None:
    # A large mean relative to the spread is where naive sum / X^T X accumulation fails.
    table = _table(1003, 6, seed=8, offset=1000.0).astype(np.float64)
    mean, covariance, count = streaming_covariance(table, chunk_rows=97)
    assert count == 1003
    np.testing.assert_allclose(mean, table.mean(axis=0), rtol=1e-12)
    expected = np.cov(table, rowvar=False, bias=True)
    np.testing.assert_allclose(covariance, expected, rtol=1e-9, atol=1e-12)


def test_streaming_pca_equals_in_memory(tmp_path: Path) -> None:
    teacher = _table(2500, 16, seed=12, offset=0.3)
    source = _save(tmp_path, "teacher.npy", teacher)
    budget = chunk_budget(16, 6, rows=300)

    for keep_mean in (False, True):
        target = tmp_path / f"student_{keep_mean}.npy"
        stats = streaming_pca_reduce(source, target, 6, budget, keep_mean=keep_mean)
        expected, _, _, expected_stats = pca_reduce(teacher, 6, keep_mean=keep_mean)
        # A float32 table is streamed in float32 (compute_dtype), so equal to float32 rounding.
        np.testing.assert_allclose(np.load(target), expected, atol=1e-5)
        assert stats.explained_variance_ratio == pytest.approx(
            expected_stats.explained_variance_ratio, abs=1e-6
        )
        assert stats.relative_reconstruction_error == pytest.approx(
            expected_stats.relative_reconstruction_error, abs=1e-6
        )


def test_streaming_pca_small_table_equals_in_memory(tmp_path: Path) -> None:
    teacher = _table(5, 16, seed=1)
    source = _save(tmp_path, "small.npy", teacher)
    target = tmp_path / "small_out.npy"
    stats = streaming_pca_reduce(source, target, 8, chunk_budget(16, 8, rows=2))
    np.testing.assert_allclose(np.load(target), pca_reduce(teacher, 8)[0], atol=1e-6)
    assert stats.n_components == 5


def test_streaming_expand_equals_in_memory(tmp_path: Path) -> None:
    teacher = _table(2000, 8, seed=13)
    source = _save(tmp_path, "teacher.npy", teacher)
    target = tmp_path / "student.npy"
    streaming_expand(source, target, 24, seed=21, memory_budget_bytes=chunk_budget(8, 24, 128))
    output = np.load(target)
    assert output.dtype == np.float32
    np.testing.assert_allclose(output, expand(teacher, 24, seed=21), atol=1e-6)


@pytest.mark.parametrize("layout", ["fortran", "big-endian", "float64"])
def test_streaming_reads_every_npy_layout(tmp_path: Path, layout: str) -> None:
    # C-order native files are read with read() calls; the others through the memmap.
    teacher = _table(700, 16, seed=15)
    stored = {
        "fortran": np.asfortranarray(teacher),
        "big-endian": teacher.astype(">f4"),
        "float64": teacher.astype(np.float64),
    }[layout]
    source = _save(tmp_path, "teacher.npy", stored)
    target = tmp_path / "student.npy"
    streaming_pca_reduce(source, target, 6, chunk_budget(16, 6, rows=64))
    np.testing.assert_allclose(np.load(target), pca_reduce(teacher, 6)[0], atol=1e-5)


def test_streaming_transfer_table_copies(tmp_path: Path) -> None:
    teacher = _table(300, 8, seed=14)
    source = _save(tmp_path, "teacher.npy", teacher)
    target = tmp_path / "copy.npy"
    stats = streaming_transfer_table(source, target, 8, seed=0, memory_budget_bytes=10**6)
    np.testing.assert_array_equal(np.load(target), teacher)
    assert stats.method == "copy"


def test_streaming_output_replaced_atomically(tmp_path: Path) -> None:
    teacher = _table(100, 4, seed=15)
    source = _save(tmp_path, "teacher.npy", teacher)
    target = tmp_path / "student.npy"
    np.save(target, np.zeros((1, 1)))
    streaming_expand(source, target, 8, seed=1, memory_budget_bytes=10**6)
    assert np.load(target).shape == (100, 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student.npy", "teacher.npy"]


def test_streaming_rejects_nan_with_row(tmp_path: Path) -> None:
    teacher = _table(100, 8, seed=16)
    teacher[42, 0] = np.inf
    source = _save(tmp_path, "bad.npy", teacher)
    target = tmp_path / "out.npy"
    with pytest.raises(DataError, match="row 42"):
        streaming_pca_reduce(source, target, 4, chunk_budget(8, 4, rows=10))
    assert not target.exists()


def test_streaming_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        streaming_expand(tmp_path / "absent.npy", tmp_path / "out.npy", 8, 0, 10**6)


def chunk_budget(d_in: int, d_out: int, rows: int) -> int:
    """Return the smallest budget for which chunk_rows_for_budget gives ``rows``."""
    return 8 * (3 * d_in * d_in + d_in * d_out) + rows * 8 * (3 * d_in + 2 * d_out)


def test_chunk_rows_bounded_by_budget() -> None:
    assert chunk_rows_for_budget(chunk_budget(16, 32, rows=1000), 16, 32) == 1000
    assert chunk_rows_for_budget(chunk_budget(16, 32, rows=1000) - 1, 16, 32) == 999
    with pytest.raises(ParamsError, match="memory_budget_bytes"):
        chunk_rows_for_budget(100, 16, 32)


@pytest.mark.parametrize("operation", ["expand", "reduce"])
def test_streaming_peak_memory_within_budget(tmp_path: Path, operation: str) -> None:
    # 200k x 16 float32 is 12.8 MB and the budget is 1 MB. The table is read and written
    # with plain file I/O, so tracemalloc sees every buffer, the read buffer included.
    rows, d_t = 200_000, 16
    source = _save(tmp_path, "teacher.npy", _table(rows, d_t, seed=17))
    target = tmp_path / "student.npy"
    budget = 1_000_000

    tracemalloc.start()
    try:
        if operation == "expand":
            streaming_expand(source, target, 32, seed=0, memory_budget_bytes=budget)
        else:
            streaming_pca_reduce(source, target, 8, memory_budget_bytes=budget)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < budget
    assert np.load(target, mmap_mode="r").shape[0] == rows
